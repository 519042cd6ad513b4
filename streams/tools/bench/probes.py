"""What the benchmark reads about a process from /proc: CPU time and peak resident memory.

The parsers are pure (they take the files' text); :class:`CpuSampler` reads a running process's
CPU time every few milliseconds so that the CPU spent between two instants (the first and the
last output) can be interpolated afterwards.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Fields of /proc/<pid>/stat after the command name, counted from "state" (field 3): utime,
# stime, cutime and cstime are fields 14 to 17.
_CPU_FIELDS = slice(14 - 3, 17 - 3 + 1)


def parse_stat_cpu_ticks(stat: str) -> int:
    """Clock ticks of CPU (user + system, waited-for children included) in a /proc/<pid>/stat.

    The command name is in parentheses and may hold spaces or parentheses itself, so the fields
    are counted from the last ')'.

    >>> parse_stat_cpu_ticks("42 (py (x)) S 1 2 3 4 5 6 7 8 9 10 100 20 3 4 20 0")
    127
    """
    rest = stat[stat.rindex(")") + 2 :].split()
    return sum(int(v) for v in rest[_CPU_FIELDS])


def parse_vmhwm_mb(status: str) -> float:
    """The peak resident set size (VmHWM) in a /proc/<pid>/status, in MB (10^6 bytes).

    >>> parse_vmhwm_mb("Name:\\tpython\\nVmHWM:\\t  204800 kB\\nVmRSS:\\t 1 kB\\n")
    209.7152
    """
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise ValueError("no VmHWM line")


def parse_machine_cpu_ticks(stat: str) -> tuple[int, int]:
    """Clock ticks, over all CPUs, spent busy (user, system, interrupts: neither idle, nor
    waiting for I/O, nor stolen) and stolen by the hypervisor for other guests, from /proc/stat.

    >>> parse_machine_cpu_ticks("cpu  100 5 30 900 20 1 2 7 0 0\\ncpu0 50 2 15 450 10 0 1 0 0 0")
    (138, 7)
    """
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in stat.splitlines()[0].split()[1:9]
    )
    return user + nice + system + irq + softirq, steal


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the machine spent busy, and those stolen from it, since boot (all cores)."""
    busy, steal = parse_machine_cpu_ticks(Path("/proc/stat").read_text())
    return busy / CLOCK_TICKS, steal / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process, its threads and its waited-for children."""
    return parse_stat_cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    return parse_vmhwm_mb(Path(f"/proc/{pid}/status").read_text())


def parse_vmrss_mb(status: str) -> float:
    """The resident set size now (VmRSS) in a /proc/<pid>/status, in MB (10^6 bytes).

    >>> parse_vmrss_mb("Name:\\tpython\\nVmHWM:\\t  204800 kB\\nVmRSS:\\t 102400 kB\\n")
    104.8576
    """
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise ValueError("no VmRSS line")


def rss_mb(pid: int) -> float:
    return parse_vmrss_mb(Path(f"/proc/{pid}/status").read_text())


def tree_rss_per_process_mb(pid: int) -> list[float]:
    """The resident set size now of ``pid``, then of each living descendant."""
    return _over_tree(pid, rss_mb)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (a worker and its prediction engine, say)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue.extend(int(child) for child in children.read_text().split())
            except OSError:
                continue  # the thread or the process ended meanwhile
    return found


def _over_tree(pid: int, read: Callable[[int], float]) -> list[float]:
    """``read`` of ``pid``, then of each living descendant (one that ended meanwhile is left
    out)."""
    values = [read(pid)]
    for child in process_tree(pid)[1:]:
        with contextlib.suppress(OSError, ValueError):
            values.append(read(child))
    return values


def _sum_over_tree(pid: int, read: Callable[[int], float]) -> float:
    return sum(_over_tree(pid, read))


def tree_peak_rss_per_process_mb(pid: int) -> list[float]:
    """The peak RSS of ``pid``, then of each living descendant (a worker, then its helpers)."""
    return _over_tree(pid, peak_rss_mb)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its living descendants (a descendant's CPU is lost with it
    once it ended, unless ``pid`` waited for it)."""
    return _sum_over_tree(pid, cpu_seconds)


def tree_peak_rss_mb(pid: int) -> float:
    """The sum of the peak RSS of ``pid`` and of its living descendants: an upper bound of the
    memory they held at once."""
    return _sum_over_tree(pid, peak_rss_mb)


def own_cpu_seconds() -> float:
    """CPU seconds of this process, all threads, at nanosecond resolution (/proc counts in
    clock ticks: too coarse for a client that consumes 50,000 messages in 50 ms)."""
    return time.process_time()


class CpuSampler:
    """Samples (wall time, CPU seconds) of one process and its descendants in a thread, until
    :meth:`stop`."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cpu-{pid}", daemon=True)

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                cpu = tree_cpu_seconds(self.pid)
            except (OSError, ValueError):
                return  # the process is gone
            self.samples.append((time.time(), cpu))
            self._stop.wait(self.interval_s)

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.samples
