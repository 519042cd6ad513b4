"""`make demo` as a newcomer uses it: the dashboard URL it prints answers, the numbers move,
every screen (the live line, `delaycast ab report`, the API and the dashboard in a browser) tells
the same story for the same window, the rollout flips from the API (the dashboard's path) and
from the CLI, and Ctrl-C stops it all."""

from __future__ import annotations

import contextlib
import json
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

from streams.tools.stack.ports import any_free_port
from tests.integration.browser import launched_browser
from tests.integration.workers import worker_env

DASHBOARD = re.compile(r"dashboard: (http://\S+)/ml-monitoring")
# The live line's window part (streams.tools.demo.window_part).
ARM = r"n (\d+) MAE (\S+) R² (\S+)"
LIVE_WINDOW = re.compile(rf"\| last 24 h: outcomes (\d+)  ML {ARM}  heuristic {ARM}  A/B (\w+)")
LOAD_TIMEOUT_MS = 30_000


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
    # A session long enough for the predict worker to stay in its group while the test stops
    # it (SIGSTOP) to see it called stalled: no rebalance when it resumes.
    env = worker_env(
        stack,
        topic_prefix,
        home,
        API_PORT=str(api_port),
        DEMO_RATE="20",
        CONSUMER_SESSION_TIMEOUT_S="80",
        # The pipeline panel sampled and judged faster than by default: the stall is seen
        # sooner, the test waits less.
        PIPELINE_SAMPLE_S="3",
        PIPELINE_STALL_S="12",
    )
    env.pop("API_TOKEN", None)
    started = time.monotonic()
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams.tools.demo"],
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

        time.sleep(max(0.0, 60 - (time.monotonic() - started)))  # a minute into the demo
        screens_agree(url, env, output, home, session_dir)

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

        a_stalled_worker_shows_on_the_pipeline_panel(url, home)
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


def live_window(output: Output, after: int) -> re.Match[str]:
    """The newest window part of the live line printed after ``after`` characters."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = list(LIVE_WINDOW.finditer(output.text, after))
        if found:
            return found[-1]
        time.sleep(0.5)
    raise AssertionError(f"no live line with the window's figures:\n{output.text[-2000:]}")


def settled_summary(url: str) -> dict[str, Any]:
    """The 24h summary once two reads 4 s apart agree: nothing left in flight."""
    previous: dict[str, Any] | None = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        summary = requests.get(f"{url}/api/ml-monitoring/summary?window=24h", timeout=10).json()
        if previous is not None and (summary["outcomes"], summary["predictions"]) == (
            previous["outcomes"],
            previous["predictions"],
        ):
            return summary
        previous = summary
        time.sleep(4)
    raise AssertionError(f"the figures never settled: {previous}")


def screens_agree(
    url: str, env: dict[str, str], output: Output, home: Path, session_dir: Path
) -> None:
    """With the producer paused and the pipeline drained, the live line, `delaycast ab
    report`, the API and the dashboard give the same n per arm, MAE and verdict for the 24 h
    window; then the producer goes on."""
    producers = [pid for pid in processes_of(home) if b"produce" in cmdline(pid)]
    assert len(producers) == 1, producers
    os.kill(producers[0], signal.SIGSTOP)
    try:
        summary = settled_summary(url)
        # The live line reads its window every WINDOW_REFRESH_S (5 s): one read after this.
        time.sleep(6)
        mark = len(output.text)
        line = live_window(output, mark)
        report = subprocess.run(
            [sys.executable, "-m", "streams", "ab", "report", "--window", "24h", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        cli = json.loads(report.stdout)
        api = requests.get(f"{url}/api/ab/report?window=24h", timeout=10).json()
        with launched_browser() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{url}/ml-monitoring")
            page.wait_for_selector("body[data-state=loaded]", timeout=LOAD_TIMEOUT_MS)

            def shown(testid: str) -> str:
                value = page.get_attribute(f"[data-testid={testid}]", "data-value")
                assert value is not None, testid
                return value

            board = {
                arm: (int(float(shown(f"ab-{arm}-n"))), float(shown(f"summary-{arm}-mae")))
                for arm in ("ml", "heuristic")
            }
            board_verdict = shown("ab-verdict")
            tag = page.locator("[data-testid=ab-window]")
            assert tag.get_attribute("data-label") == "last 24 h"
            board_n = int(tag.get_attribute("data-n") or -1)
            # The README's picture: DELAYCAST_SCREENSHOT_DIR keeps it past the session.
            shots = Path(os.environ.get("DELAYCAST_SCREENSHOT_DIR") or session_dir)
            screenshot = shots / "demo-dashboard.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 50_000
            print(f"demo dashboard screenshot: {screenshot}")
            page.close()
    finally:
        os.kill(producers[0], signal.SIGCONT)
    n_ml, n_heuristic = summary["arms"]["ml"]["n"], summary["arms"]["heuristic"]["n"]
    assert n_ml > 0 and n_heuristic > 0
    outcomes, *arms, verdict = line.groups()
    live = {
        "ml": (int(arms[0]), float(arms[1])),
        "heuristic": (int(arms[3]), float(arms[4])),
    }
    for arm, n in (("ml", n_ml), ("heuristic", n_heuristic)):
        mae = summary["arms"][arm]["mae"]
        assert live[arm] == (n, round(mae, 2)), (arm, line.group(0), summary["arms"][arm])
        assert cli[arm]["n"] == api["arms"][arm]["n"] == board[arm][0] == n, arm
        assert abs(cli[arm]["mae"] - mae) < 1e-9 and abs(api["arms"][arm]["mae"] - mae) < 1e-9
        assert abs(board[arm][1] - mae) < 1e-9, arm
    assert int(outcomes) == board_n == summary["outcomes"] == n_ml + n_heuristic
    assert verdict == cli["verdict"] == api["verdict"] == board_verdict == summary["ab"]["verdict"]


def pipeline(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/api/pipeline?minutes=15", timeout=10).json()


def a_stalled_worker_shows_on_the_pipeline_panel(url: str, home: Path) -> None:
    """The pipeline panel's rates flow; a predict worker stopped (SIGSTOP) while bookings keep
    coming is called stalled, on the API and on the dashboard; it then resumes."""

    def flows(answer: dict[str, Any]) -> bool:
        newest = answer["points"][-4:]  # 12 s: the producer was paused a moment ago
        return len(newest) == 4 and all(
            (p["bookings_per_s"] or 0) > 0 and (p["predictions_per_s"] or {}).get("ml", 0) > 0
            for p in newest
        )

    flowing = poll(lambda: pipeline(url), flows, 60, "bookings and predictions flow")
    groups = flowing["groups"]
    newest = flowing["points"][-4:]
    assert all(p["latency_p50_ms"] is not None for p in newest)
    assert all(p["latency_p50_ms"] <= p["latency_p99_ms"] for p in newest)
    assert set(newest[-1]["lag"]) >= {groups["predict"], groups["outcomes"], groups["history"]}
    # The producer sends 1 % malformed bookings: dead letters by kind.
    dead = [sum((p["dead_letters_per_s"] or {}).values()) for p in flowing["points"]]
    assert sum(dead) > 0
    poll(lambda: pipeline(url)["signals"], lambda s: s == [], 60, "no group stalled or lagging")

    workers = [pid for pid in processes_of(home) if b"predict" in cmdline(pid)]
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGSTOP)
    try:
        stalled = poll(
            lambda: pipeline(url)["signals"],
            lambda signals: any(s["kind"] == "stalled" for s in signals),
            75,
            "a stopped predict worker is called stalled",
        )
        assert [s["group"] for s in stalled if s["kind"] == "stalled"] == [groups["predict"]]
        with launched_browser() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{url}/ml-monitoring")
            page.wait_for_selector("body[data-state=loaded]", timeout=LOAD_TIMEOUT_MS)
            status = page.get_attribute("[data-testid=pipeline-status]", "data-value") or ""
            assert "stalled" in status.split(","), status
            rows = page.locator("[data-testid=pipeline-signal][data-kind=stalled]")
            assert rows.count() == 1
            assert rows.first.get_attribute("data-group") == groups["predict"]
            assert page.locator("[data-testid=pipeline-lag-chart]").count() == 1
            page.close()
    finally:
        os.kill(workers[0], signal.SIGCONT)
    poll(
        lambda: pipeline(url)["points"][-1]["predictions_per_s"]["ml"],
        lambda rate: rate is not None and rate > 0,
        90,
        "the worker predicts again once resumed",
    )


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


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
