"""A PostgreSQL cluster on loopback from the Debian package, with a ``delaycast`` role and database.

Files under its directory: ``data/`` (the cluster; its unix socket too) and ``postgres.log``.
Authentication is ``trust`` and the server listens on 127.0.0.1 only: a developer stack without
passwords, unreachable from other machines. PostgreSQL refuses to run as root, so when the stack
runs as root every PostgreSQL command runs as the ``postgres`` user, which then owns the directory.
That user cannot enter a home only its owner may enter (root's, or a clone in a 0700 directory):
the cluster then lives under ``OUTSIDE_ROOT``, in a directory named after the stack's, and the
stack's ``postgres`` directory is a link to it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import psycopg2
from psycopg2 import sql

from streams.tools.stack.errors import StackError
from streams.tools.stack.health import (
    libpq_url,
    log_size,
    log_tail,
    postgres_healthy,
    wait_healthy,
)
from streams.tools.stack.ports import HOST, pick_port
from streams.tools.stack.process import ProcessRef, owns, ref_for, start_time, terminate
from streams.tools.stack.state import ServerRecord

DATABASE = "delaycast"
ROLE = "delaycast"
SUPERUSER = "postgres"
OS_USER = "postgres"
_CONF = "delaycast.conf"
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_SOCKET_PATH_MAX = 107
# Where a cluster lives when the postgres user cannot enter the stack's own directory.
OUTSIDE_ROOT = Path("/var/lib/delaycast/postgres")


def others_may_enter(path: Path) -> bool:
    """Whether every existing directory from ``path`` up to ``/`` lets other users through (its
    "others" execute bit): what the postgres user needs to reach a directory below ``path``.

    >>> others_may_enter(Path("/"))
    True
    """
    for directory in (path, *path.parents):
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            continue  # made later, with the usual 0755
        if not mode & stat.S_IXOTH:
            return False
    return True


def cluster_dir(directory: Path, outside_root: Path = OUTSIDE_ROOT) -> Path:
    """Where the cluster of a stack whose postgres directory is ``directory`` lives when the
    postgres user runs it: ``directory`` itself when that user can reach it, else a directory
    under ``outside_root`` named after it (the same one at every start)."""
    parent = directory.parent.resolve()
    if others_may_enter(parent):
        return directory
    digest = hashlib.sha256(str(parent / directory.name).encode()).hexdigest()[:16]
    return outside_root / digest


def find_pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<n>/bin`` with initdb, else the directory of initdb on
    PATH."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def database_url(port: int, *, user: str = ROLE, database: str = DATABASE) -> str:
    return f"postgresql+psycopg2://{user}@{HOST}:{port}/{database}"


class PostgresServer:
    name = "postgres"
    endpoint_key = "database_url"

    def __init__(self, directory: Path, *, port: int, outside_root: Path = OUTSIDE_ROOT) -> None:
        # As root, run PostgreSQL's programs as its own OS user, in a directory it can reach.
        self.run_as = OS_USER if os.geteuid() == 0 else None
        self.link = directory
        self.dir = cluster_dir(directory, outside_root) if self.run_as else directory
        self.port = port
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._log_mark = 0

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else list(argv)
        done = subprocess.run(
            cmd,
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=False,
            # pg_ctl leaves the postmaster in this session: keep it away from the terminal's
            # Ctrl-C.
            start_new_session=True,
        )
        if check and done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-3000:]
            tail = log_tail(self.log, since=self._log_mark)
            raise StackError(
                f"{' '.join(argv[:2])} failed; see {self.log}\n{output}"
                + (f"\nlast lines of {self.log}:\n{tail}" if tail else "")
            )
        return done

    def _prepare_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.dir != self.link and not self.link.exists():
            self.link.parent.mkdir(parents=True, exist_ok=True)
            if self.link.is_symlink():  # a link to a cluster removed meanwhile
                self.link.unlink()
            self.link.symlink_to(self.dir, target_is_directory=True)
        if self.run_as is None:
            return
        try:
            user = pwd.getpwnam(self.run_as)
        except KeyError:
            raise StackError(
                f"running as root needs the '{self.run_as}' OS user of the postgresql package; "
                "run `delaycast stack install`"
            ) from None
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.dir.chmod(0o700)
        if self._run("test", "-w", str(self.dir), check=False).returncode != 0:
            raise StackError(
                f"the '{self.run_as}' user cannot reach {self.dir}; choose a DELAYCAST_HOME "
                "whose parent directories other users may enter (not under /root or a 0700 "
                "temporary directory)"
            )

    def _initdb(self, bindir: Path) -> None:
        self._run(
            str(bindir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=trust",
            "--encoding=UTF8",
            "--no-locale",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\n# Ports and sockets chosen by `delaycast stack up`.\ninclude '{_CONF}'\n"
            )

    def _write_conf(self, port: int) -> None:
        socket_dir = str(self.data)
        if len(f"{socket_dir}/.s.PGSQL.{port}") > _SOCKET_PATH_MAX:
            # Too long for a unix socket; clients use TCP on loopback anyway.
            socket_dir = ""
        conf = self.data / _CONF
        conf.write_text(
            "# Written by `delaycast stack up`; edits are lost at the next start.\n"
            f"listen_addresses = '{HOST}'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{socket_dir}'\n"
        )
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(conf, user.pw_uid, user.pw_gid)

    def _record(self, pid: int, port: int) -> ServerRecord:
        return ServerRecord(
            name=self.name,
            managed=True,
            endpoint=database_url(port),
            port=port,
            process=ref_for(pid, self.data),
            data_dir=self.data,
            log_file=self.log,
        )

    def launch(self, previous: ServerRecord | None = None) -> ServerRecord:
        bindir = find_pg_bindir()
        if bindir is None:
            raise StackError("PostgreSQL is not installed; run `delaycast stack install`")
        self._prepare_dir()
        if not (self.data / "PG_VERSION").is_file():
            self._initdb(bindir)
        port = pick_port(previous.port if previous and previous.port else self.port)
        self._write_conf(port)
        self._log_mark = log_size(self.log)
        # -w: return once the server accepts connections, so its PID file is complete.
        self._run(
            str(bindir / "pg_ctl"),
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--wait",
            "--timeout=60",
            "--silent",
        )
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self._record(pid, port)

    def wait_ready(self, record: ServerRecord, timeout_s: float) -> None:
        assert record.port is not None
        admin_url = database_url(record.port, user=SUPERUSER, database="postgres")
        ref = record.process
        wait_healthy(
            self.name,
            lambda: postgres_healthy(admin_url, 2.0),
            timeout_s=timeout_s,
            alive=lambda: ref is not None and owns(ref),
            log_files={self.log: self._log_mark},
        )
        self._provision(admin_url)

    def _provision(self, admin_url: str) -> None:
        """Create the role and database delaycast uses, unless they exist."""
        conn = psycopg2.connect(libpq_url(admin_url), connect_timeout=5)
        # CREATE DATABASE cannot run inside a transaction.
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
                if cur.fetchone() is None:
                    cur.execute(
                        sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(ROLE))
                    )
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(DATABASE), sql.Identifier(ROLE)
                        )
                    )
        finally:
            conn.close()

    def healthy(self, endpoint: str, timeout_s: float) -> bool:
        return postgres_healthy(endpoint, timeout_s)

    def unrecorded(self) -> ServerRecord | None:
        # postmaster.pid: PID on line 1, port on line 4; written by the postmaster itself.
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        ticks = start_time(pid)
        if ticks is None or not owns(ProcessRef(pid, ticks, self.data)):
            return None
        return self._record(pid, port)

    def stop(self, record: ServerRecord) -> bool:
        ref = record.process
        if ref is None or not owns(ref):
            return False
        bindir = find_pg_bindir()
        if bindir is not None:
            # pg_ctl signals the PID in postmaster.pid, the very process just verified.
            self._run(
                str(bindir / "pg_ctl"),
                "stop",
                "--pgdata",
                str(self.data),
                "--mode=fast",
                "--wait",
                "--timeout=60",
                "--silent",
                check=False,
            )
        # SIGINT is PostgreSQL's own "fast shutdown", should pg_ctl have failed.
        terminate(ref, grace_s=30.0, sig=signal.SIGINT)
        return True
