"""The recorder's supervision, with stand-in recorders (no servers): restarted when it ends
unplanned, stopped by a message, killed when it does not stop."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from pathlib import Path

from streams.recorder_process import RecorderProcess


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
