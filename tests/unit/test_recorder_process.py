"""The recorder's supervision, with stand-in recorders (no servers): restarted when it ends
unplanned, stopped by a message, killed when it does not stop; and its watch on the pipe, from
the recorder process's first moment."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from streams.outcomes.recorder_process import PipeWatch, RecorderProcess


def ends_at_once(conn: Connection, log_level: str) -> None:
    os._exit(3)


def stops_when_told(conn: Connection, log_level: str) -> None:
    while conn.recv() is not None:
        pass


def never_stops(conn: Connection, log_level: str) -> None:
    while True:
        time.sleep(1)


def ended(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def wait_until(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_recorder_that_ends_is_started_again_after_its_pause(caplog):
    recorder = RecorderProcess("info", restart_pauses_s=(0.05, 0.1), target=ends_at_once)
    recorder.start()
    try:
        assert wait_until(lambda: recorder.starts >= 3)
    finally:
        recorder.stop(timeout_s=5)
    assert "ended (exit code 3); starting it again in 0.05 s" in caplog.text
    assert "ended (exit code 3); starting it again in 0.1 s" in caplog.text


def test_a_stop_message_ends_the_recorder_and_no_restart_follows():
    recorder = RecorderProcess("info", restart_pauses_s=(0.05,), target=stops_when_told)
    recorder.start()
    pid = recorder.pid
    assert pid is not None
    recorder.stop(timeout_s=30)
    time.sleep(0.3)
    assert recorder.starts == 1
    assert ended(pid)


def test_a_recorder_that_does_not_stop_is_killed(caplog):
    recorder = RecorderProcess("info", target=never_stops)
    recorder.start()
    started = time.monotonic()
    recorder.stop(timeout_s=1)
    assert time.monotonic() - started < 10
    assert recorder.starts == 1
    assert "did not stop in 1 s; killing it" in caplog.text


class Recording:
    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


def watching() -> tuple[PipeWatch, Connection, threading.Event]:
    ours, theirs = multiprocessing.Pipe(duplex=True)
    exited = threading.Event()
    return PipeWatch(theirs, exit_now=exited.set).start(), ours, exited


def test_a_recorder_still_starting_ends_at_once_when_its_worker_goes():
    watch, worker_end, exited = watching()
    worker_end.close()  # the worker died (SIGKILL closes its end too)
    assert exited.wait(10)
    recorder = Recording()
    watch.running(recorder)  # had the exit been late, the recorder would stop at once
    assert recorder.stopped.is_set()


def test_a_running_recorder_is_stopped_not_exited_by_a_stop_message_or_the_pipes_end():
    for end in ("message", "close"):
        watch, worker_end, exited = watching()
        recorder = Recording()
        watch.running(recorder)
        assert not recorder.stopped.wait(0.2)  # nothing said yet: it records
        if end == "message":
            worker_end.send(None)
        else:
            worker_end.close()
        assert recorder.stopped.wait(10)
        assert not exited.is_set()  # its checkpoints get saved on the way out
