"""The docker compose plugin, so that the tests can run ``docker compose config`` on our file.

This machine has Docker's client but no compose plugin; Debian packages it (``docker-compose``,
version 2 since trixie). One pinned package is fetched from the Debian archive, its sha256
checked, and its binary extracted into the user's cache; nothing is installed system-wide.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests

from streams.tools.stack.errors import StackError

PACKAGE_URL = (
    "http://deb.debian.org/debian/pool/main/d/docker-compose/docker-compose_2.26.1-4_amd64.deb"
)
PACKAGE_SHA256 = "47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea"
_BINARY_IN_PACKAGE = Path("usr/libexec/docker/cli-plugins/docker-compose")


def compose_binary() -> Path:
    """Where the extracted plugin lives (it may not be there yet)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "delaycast" / "docker-compose-2.26.1" / "docker-compose"


def ensure_compose_binary() -> bool:
    """Fetch and extract the plugin unless present; True when it fetched."""
    target = compose_binary()
    if target.is_file():
        return False
    if shutil.which("dpkg-deb") is None:
        raise StackError("dpkg-deb is needed to unpack the docker compose package (Debian only)")
    try:
        response = requests.get(PACKAGE_URL, timeout=120)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise StackError(f"cannot fetch {PACKAGE_URL}: {exc}") from None
    digest = hashlib.sha256(response.content).hexdigest()
    if digest != PACKAGE_SHA256:
        raise StackError(f"{PACKAGE_URL}: sha256 {digest}, expected {PACKAGE_SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        deb = Path(scratch) / "docker-compose.deb"
        deb.write_bytes(response.content)
        subprocess.run(["dpkg-deb", "-x", str(deb), scratch], check=True, capture_output=True)
        extracted = Path(scratch) / _BINARY_IN_PACKAGE
        extracted.chmod(0o755)
        os.replace(extracted, target)  # whole or absent: never a half-written binary
    return True
