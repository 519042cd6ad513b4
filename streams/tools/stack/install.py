"""Installing what the local stack needs: Redis and PostgreSQL from Debian, Kafka from Maven
(and, for the tests, Debian's chromium and the docker compose plugin).

Every ``make test`` and ``make demo`` runs this, so when everything is present it only looks
(a few file checks) and touches neither apt nor the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from streams.tools.stack.compose_tool import compose_binary, ensure_compose_binary
from streams.tools.stack.errors import StackError
from streams.tools.stack.kafka_jars import ensure_kafka_libs, libs_complete
from streams.tools.stack.postgres_server import find_pg_bindir
from streams.tools.stack.redis_server import find_redis_server

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Another apt run (a colleague's install, unattended upgrades) holds the dpkg lock for a while.
_APT_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=300"]


def missing_packages(*, for_tests: bool = False) -> list[str]:
    """The Debian packages to install: ``redis-server`` and/or ``postgresql``, and with
    ``for_tests`` what the tests drive besides the stack."""
    missing = []
    if for_tests:
        # chromium: the dashboard's browser test; jq and curl: the runbooks' commands.
        missing += [name for name in ("chromium", "jq", "curl") if shutil.which(name) is None]
    if find_redis_server() is None:
        missing.append("redis-server")
    if find_pg_bindir() is None:
        missing.append("postgresql")
    return missing


def _privileged(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return argv
    if shutil.which("sudo") is None:
        raise StackError(f"installing needs root; run as root: {' '.join(argv)} (or install sudo)")
    # -n: fail instead of prompting; the message then tells the user what to run.
    return ["sudo", "-n", *argv]


def _apt(args: list[str], say: Callable[[str], None]) -> None:
    cmd = _privileged(["apt-get", *_APT_LOCK_WAIT, *args])
    for attempt in range(3):
        done = subprocess.run(
            cmd, env={**os.environ, **_APT_ENV}, capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return
        output = (done.stdout + done.stderr).strip()
        # `apt-get update` does not honour DPkg::Lock::Timeout for the lists lock.
        if "Could not get lock" in output and attempt < 2:
            say("apt is busy (another install is running); waiting")
            time.sleep(20)
            continue
        hint = ""
        if cmd[0] == "sudo":
            hint = f"\nwithout sudo rights, have an administrator run: {' '.join(cmd[2:])}"
        raise StackError(f"{' '.join(cmd)} failed:\n{output[-3000:]}{hint}")


def install(
    *, kafka_libs: Path, for_tests: bool = False, say: Callable[[str], None] = print
) -> list[str]:
    """Install what is missing and return what was installed (empty when nothing was)."""
    installed: list[str] = []
    packages = missing_packages(for_tests=for_tests)
    if packages:
        say(f"installing {', '.join(packages)} with apt-get")
        _apt(["update", "-q"], say)
        _apt(["install", "-y", "-q", *packages], say)
        still = missing_packages(for_tests=for_tests)
        if still:
            raise StackError(f"apt-get installed, but {', '.join(still)} is still not found")
        installed.extend(packages)
    if not libs_complete(kafka_libs):
        say(f"fetching the Kafka jars from Maven Central into {kafka_libs}")
        ensure_kafka_libs(kafka_libs)
        installed.append("kafka")
    if for_tests and not compose_binary().is_file():
        say("fetching the docker compose plugin from the Debian archive")
        ensure_compose_binary()
        installed.append("docker-compose")
    return installed
