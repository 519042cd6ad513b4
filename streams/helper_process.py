"""Processes a worker spawns beside itself: how the history recorder is started and ended from
the worker, and what a helper (the recorder, the prediction engine) does first.

A helper gets one end of a pipe as its first argument; the worker keeps the other. The worker's
end closing (an orderly stop, or the worker's death, SIGKILL included) is the helper's signal to
end, so a helper never outlives its worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess


def spawn_helper(
    target: Callable[[Connection, str], None], log_level: str, name: str
) -> tuple[BaseProcess, Connection]:
    """Start ``target(conn, log_level)`` in a spawned process (blocking); returns the process
    and the worker's end of its pipe."""
    context = multiprocessing.get_context("spawn")  # never fork a process with threads
    ours, theirs = context.Pipe(duplex=True)
    process = context.Process(target=target, args=(theirs, log_level), name=name, daemon=True)
    process.start()
    theirs.close()  # the helper holds the only other end: its EOF tells us it ended
    return process, ours


def end_helper(process: BaseProcess, conn: Connection | None, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for the helper to end, kill it if it has not, close the pipe
    (blocking). Returns whether it had to be killed."""
    process.join(timeout_s)
    killed = process.is_alive()
    if killed:
        process.kill()
        process.join(5)
    if conn is not None:
        conn.close()
    return killed


def prepare_helper_process(log_level: str) -> None:
    """Ignore Ctrl-C and log to the worker's stderr, in the worker's format.

    Ctrl-C in a terminal reaches the whole process group: the worker stops in order and then
    stops its helpers (a stop message, or the end of their pipe). SIGTERM ends one at once.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=log_level.upper(),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
        stream=sys.stderr,
    )
