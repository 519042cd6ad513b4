"""Starting, recognising and stopping the stack's server processes (Linux, via ``/proc``).

The stack must never signal a process it did not start. A PID alone is not proof: after a reboot or
a long time the number may belong to someone else. So a server is identified by a ``ProcessRef``:
its PID, the kernel's start time of that PID, and a directory only that server uses, which must
appear in its command line or be (a parent of) its working directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.tools.stack.errors import StackError

# The shell forks the server in the background and prints its PID, then exits. The server is thus
# never a child of the Python process: it outlives the CLI, and the caller collects no zombies.
_DETACH = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


@dataclass(frozen=True)
class ProcessRef:
    """A process the stack started, with what it takes to recognise it later."""

    pid: int
    start_time: int
    marker: Path

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "start_time": self.start_time, "marker": str(self.marker)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRef:
        return cls(int(str(data["pid"])), int(str(data["start_time"])), Path(str(data["marker"])))


def spawn_detached(
    argv: Sequence[str], *, cwd: Path, log_file: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start ``argv`` in its own session, output appended to ``log_file``; return its PID."""
    out = subprocess.run(
        ["/bin/sh", "-c", _DETACH, "sh", str(log_file), *argv],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        check=True,
        text=True,
        # A new session: Ctrl-C in the terminal that ran `stack up` must not reach the servers.
        start_new_session=True,
    )
    return int(out.stdout.strip())


def start_time(pid: int) -> int | None:
    """Clock ticks after boot at which ``pid`` started, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after it do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and has not exited (a zombie counts as gone)."""
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def ref_for(pid: int, marker: Path) -> ProcessRef:
    """Describe a process just started; raises StackError when it is already gone."""
    ticks = start_time(pid)
    if ticks is None:
        raise StackError(f"process {pid} exited right after it was started")
    return ProcessRef(pid, ticks, marker)


def owns(ref: ProcessRef) -> bool:
    """True when ``ref.pid`` is still the very process the stack started."""
    if not is_alive(ref.pid) or start_time(ref.pid) != ref.start_time:
        return False
    marker = str(ref.marker)
    try:
        cmdline = Path(f"/proc/{ref.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = ""
    if marker in cmdline:
        return True
    try:
        cwd = os.readlink(f"/proc/{ref.pid}/cwd")
    except OSError:
        return False
    return cwd == marker or cwd.startswith(marker.rstrip("/") + "/")


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)


def terminate(ref: ProcessRef, *, grace_s: float, sig: int = signal.SIGTERM) -> bool:
    """Stop the process if it is still ours: ``sig``, then SIGKILL after ``grace_s``.

    Returns False, signalling nothing, when ``ref`` no longer names the process the stack started.
    """
    if not owns(ref):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(ref.pid, sig)
    if not wait_gone(ref.pid, grace_s) and owns(ref):
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, signal.SIGKILL)
        wait_gone(ref.pid, 10.0)
    return True
