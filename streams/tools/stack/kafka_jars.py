"""The Apache Kafka jars, fetched once from Maven Central by ``stack/kafka/pom.xml`` and cached.

The cache is ``${XDG_CACHE_HOME:-~/.cache}/delaycast/kafka-<version>/libs`` and is shared by every
checkout and every DELAYCAST_HOME on the machine. It counts as complete only once a marker file
lists its jars, so an interrupted download is redone, never half-used.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from streams.tools.stack.errors import StackError

KAFKA_VERSION = "3.9.2"
_MARKER = ".delaycast-complete"


def project_kafka_dir() -> Path:
    """``stack/kafka`` of the delaycast checkout: the Maven project and the log4j config."""
    return Path(__file__).resolve().parents[3] / "stack" / "kafka"  # streams/tools/stack/


def default_libs_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "delaycast" / f"kafka-{KAFKA_VERSION}" / "libs"


def libs_complete(libs: Path) -> bool:
    """True when ``libs`` holds every jar the last successful fetch put there."""
    marker = libs / _MARKER
    try:
        names = marker.read_text().split()
    except OSError:
        return False
    return bool(names) and all((libs / name).is_file() for name in names)


def ensure_kafka_libs(libs: Path | None = None, *, pom: Path | None = None) -> bool:
    """Fetch the jars into ``libs`` unless already complete; True when it fetched.

    Runs ``mvn dependency:copy-dependencies`` (Maven's local repository, ~/.m2, is reused).
    Raises StackError with Maven's output when the fetch fails.
    """
    libs = libs or default_libs_dir()
    if libs_complete(libs):
        return False
    pom = pom or project_kafka_dir() / "pom.xml"
    if not pom.is_file():
        raise StackError(f"{pom} is missing; run delaycast from its source checkout")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("mvn (Apache Maven) is needed to fetch the Kafka jars; install maven")
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Two `make test` at once must not interleave their copies into one directory.
    with (libs.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if libs_complete(libs):
            return False
        staging = libs.with_name(f"{libs.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-Dkafka.libs.dir={staging}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        jars = sorted(p.name for p in staging.glob("*.jar")) if staging.is_dir() else []
        if done.returncode != 0 or not jars:
            output = (done.stdout + done.stderr).strip()[-4000:]
            raise StackError(f"fetching the Kafka jars failed ({' '.join(cmd)}):\n{output}")
        (staging / _MARKER).write_text("\n".join(jars) + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return True
