"""The history recorder in a process of its own, beside an outcome worker.

The recorder (:mod:`streams.outcomes.recorder`) decodes every prediction and outcome, writes them to
PostgreSQL and feeds the monitors (threshold rules, river's drift detectors): pure-Python work
that, in a thread, would share one interpreter lock with the join agent and slow it down. It
needs nothing of the worker but its settings (the environment) and has a consumer group of its
own, so it runs in a spawned process: the join and the recorder get a core each.

The worker supervises it: a recorder that dies (a bug, out of memory, a signal) is started
again after a pause, and loses nothing, since it commits its offsets only after PostgreSQL has
the batch. The recorder ends when its pipe closes, so it never outlives its worker, even one
killed with SIGKILL; an orderly stop lets it save its drift checkpoints first.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Protocol

from connectors.failures import RECORDER_RESTART_S
from streams.helper_process import end_helper, prepare_helper_process, spawn_helper

log = logging.getLogger("delaycast.recorder")

RESTART_PAUSES_S = RECORDER_RESTART_S  # after the first, second and every later unplanned end
HEALTHY_AFTER_S = 600.0  # a recorder that ran this long restarts after the first pause again
STOP_TIMEOUT_S = 20.0  # a batch being written, then the drift checkpoints


class RecorderProcess:
    """Starts the recorder process, starts it again when it ends unplanned, stops it in order."""

    def __init__(
        self,
        log_level: str,
        restart_pauses_s: tuple[float, ...] = RESTART_PAUSES_S,
        target: Callable[[Connection, str], None] | None = None,
    ) -> None:
        self._log_level = log_level
        self._target = target or recorder_main  # another only in tests
        self._pauses = restart_pauses_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._watcher: threading.Thread | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the recorder (blocking for the spawn only) and watch it from a thread."""
        if not self._spawn():
            return  # stopped already
        self._watcher = threading.Thread(target=self._watch, name="recorder-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> bool:
        """Start a recorder process; False when the recorder is stopping."""
        with self._lock:  # stop() never misses a process started while it stops
            if self._stopping.is_set():
                return False
            process, ours = spawn_helper(self._target, self._log_level, "delaycast-recorder")
            self._process, self._conn = process, ours
        self.starts += 1
        log.info("[ML] history recorder started in process %s", process.pid)
        return True

    def _watch(self) -> None:
        ends = 0
        while True:
            try:
                with self._lock:
                    process = self._process
                assert process is not None
                started = time.monotonic()
                wait([process.sentinel])
                with self._lock:  # stop() reaps the process itself once it set _stopping
                    if self._stopping.is_set():
                        return
                    process.join()  # reaped: its exit code is known
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                if time.monotonic() - started > HEALTHY_AFTER_S:
                    ends = 0  # it ran well for a while: the short pause again
                pause = self._pauses[min(ends, len(self._pauses) - 1)]
                ends += 1
                log.error(
                    "[ML] the history recorder process ended (exit code %s); starting it again "
                    "in %g s (history waits meanwhile, nothing is lost)",
                    process.exitcode,
                    pause,
                )
                if self._stopping.wait(pause) or not self._spawn():
                    return
            except Exception:  # never leave the recorder unwatched
                log.exception("[ML] cannot start the history recorder process")
                if self._stopping.wait(self._pauses[-1]):
                    return

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask the recorder to stop (blocking); kill it if it has not ended in ``timeout_s``."""
        with self._lock:
            self._stopping.set()
            process, conn = self._process, self._conn
            self._conn = None
        if process is None:
            return
        if conn is not None and process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)  # the recorder's signal to stop, after its current batch
        if end_helper(process, conn, timeout_s):
            log.error("[ML] the history recorder did not stop in %g s; killing it", timeout_s)
        if self._watcher is not None:
            self._watcher.join(5)


# ---- the recorder process ----


class Stoppable(Protocol):
    def stop(self) -> None: ...


class PipeWatch:
    """Watches the recorder's end of the pipe from the process's first moment.

    A stop message or the pipe's end stops the recorder once it runs. Before that (imports,
    the database, the drift checkpoints: seconds on a loaded machine), there is nothing to save,
    and the process ends at once through ``exit_now``: a worker killed while its recorder starts
    leaves no recorder behind.
    """

    def __init__(self, conn: Connection, exit_now: Callable[[], None]) -> None:
        self._conn = conn
        self._exit_now = exit_now
        self._lock = threading.Lock()
        self._stoppable: Stoppable | None = None
        self._told = False
        self._thread = threading.Thread(target=self._watch, name="recorder-pipe", daemon=True)

    def start(self) -> PipeWatch:
        self._thread.start()
        return self

    def running(self, stoppable: Stoppable) -> None:
        """The recorder is built: from now on, the pipe stops it. Told already: stops it now."""
        with self._lock:
            self._stoppable = stoppable
            told = self._told
        if told:
            stoppable.stop()

    def _watch(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while self._conn.recv() is not None:
                pass
        with self._lock:
            self._told = True
            stoppable = self._stoppable
        if stoppable is None:
            log.info("[ML] the history recorder was told to stop while starting: ending now")
            self._exit_now()
        else:
            stoppable.stop()  # a stop message, or the worker is gone


def recorder_main(conn: Connection, log_level: str) -> None:
    """The recorder process: record until the worker says stop or its pipe closes."""
    prepare_helper_process(log_level)
    watch = PipeWatch(conn, exit_now=lambda: os._exit(0)).start()
    # Imported here: the worker's process never needs river, scikit-learn or the database layer.
    from connectors.postgres import make_engine
    from streams.outcomes.recorder_wiring import build_recorder, run_recorder
    from streams.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.database_url.get_secret_value())
    recorder = build_recorder(settings, engine)
    watch.running(recorder)
    try:
        run_recorder(recorder, engine)
        log.info("[ML] history recorder stopped")
    finally:
        engine.dispose()
        conn.close()
