"""`make demo` as a newcomer uses it: the dashboard URL it prints answers, the numbers move, the
rollout flips from the API (the dashboard's path) and from the CLI, and Ctrl-C stops it all."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from streams.stack.ports import any_free_port
from tests.integration.workers import worker_env

DASHBOARD = re.compile(r"dashboard: (http://\S+)/ml-monitoring")


class Output:
    """The demo's stdout, read by a thread so that the pipe never fills."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.text = ""
        assert process.stdout is not None
        self._stream = process.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for chunk in iter(lambda: self._stream.read(1), ""):
            self.text += chunk

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = pattern.search(self.text)
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"the demo never printed {pattern.pattern!r}:\n{self.text[-3000:]}")


def poll(fetch: Any, accept: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if accept(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: last value {value!r}")


def test_the_demo_prints_a_working_dashboard_url_and_stops_everything_on_ctrl_c(
    stack: Any, topic_prefix: str, session_dir: Path, trained_model_dir: Path
) -> None:
    home = session_dir / f"demo-{topic_prefix.strip('.')}"
    shutil.copytree(trained_model_dir, home / "models")
    api_port = any_free_port()
    env = worker_env(stack, topic_prefix, home, API_PORT=str(api_port), DEMO_RATE="20")
    env.pop("API_TOKEN", None)
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams.demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(demo)
    try:
        url = output.wait_for(DASHBOARD, 120).group(1)
        assert url == f"http://127.0.0.1:{api_port}"
        page = requests.get(f"{url}/ml-monitoring", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        token = (home / "api-token").read_text().strip()
        assert token not in output.text  # the token is in a file, never printed
        assert oct((home / "api-token").stat().st_mode & 0o777) == "0o600"

        def predictions_made() -> float:
            """The workers' prediction counters on /metrics: unlike a list of rows, which stops
            at the endpoint's limit, or its newest time, which a row stamped later can pin."""
            text = requests.get(f"{url}/metrics", timeout=10).text
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("delaycast_predictions_total{")
            )

        first = poll(predictions_made, lambda n: n > 0, 60, "predictions reach the API")
        poll(predictions_made, lambda n: n > first, 30, "the number of predictions moves")

        def summary() -> dict[str, Any]:
            return requests.get(f"{url}/api/ml-monitoring/summary", timeout=10).json()

        scored = poll(
            summary,
            lambda s: s["arms"]["ml"]["n"] > 0 and s["arms"]["heuristic"]["n"] > 0,
            90,
            "outcomes of both arms reach the summary",
        )
        assert scored["flags"]["ml_traffic_percentage"] == 50.0

        # The rollout, flipped as the dashboard does it (the API with the token) ...
        denied = requests.post(
            f"{url}/api/feature-flags/ml/enable", json={"percentage": 25}, timeout=10
        )
        assert denied.status_code == 401
        changed = requests.post(
            f"{url}/api/feature-flags/ml/enable",
            json={"percentage": 25, "actor": "newcomer"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["ml_traffic_percentage"] == 25.0
        # ... and from the CLI, which the API then shows.
        cli = subprocess.run(
            [sys.executable, "-m", "streams", "flags", "enable", "--percentage", "75"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        status = requests.get(f"{url}/api/feature-flags/status", timeout=10).json()
        assert status["ml_traffic_percentage"] == 75.0
        actors = [c["actor"] for c in status["recent_changes"][:2]]
        assert actors[1] == "api:newcomer"
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            masks = signal_masks(demo.pid)
            demo.send_signal(signal.SIGUSR1)  # the demo prints where its threads are
            time.sleep(2)
            os.killpg(demo.pid, signal.SIGKILL)
            for pid in processes_of(home):  # its children, in sessions of their own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise AssertionError(
                f"the demo did not stop within 60 s of Ctrl-C ({masks}):\n{output.text[-4000:]}"
            ) from None
    assert "stopping..." in output.text
    deadline = time.monotonic() + 10
    while processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Ctrl-C stopped the API (and the worker and producer with it).
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", api_port)) != 0
    assert processes_of(home) == []


def signal_masks(pid: int) -> str:
    """The signals a process blocks, ignores and has pending, from /proc (hexadecimal masks)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"no status: {exc}"
    return ", ".join(line for line in lines if line.startswith(("SigPnd", "SigBlk", "SigIgn")))


def processes_of(home: Path) -> list[int]:
    """PIDs whose environment names ``home`` as DELAYCAST_HOME: what the demo started."""
    marker = f"DELAYCAST_HOME={home}".encode() + b"\0"
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes() + b"\0":
                found.append(int(environ.parent.name))
        except OSError:
            continue  # gone, or not ours to read
    return found
