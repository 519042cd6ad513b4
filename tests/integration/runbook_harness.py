"""Running a runbook's blocks as runbooks/README.md says, and the processes around them.

``run_runbook(path, env, workdir)`` runs every ``sh`` block in order, each in a fresh
``bash -euo pipefail`` with ``env`` and ``workdir``; a block must exit 0, or N for ``exit=N``;
``background`` blocks stay up until the context ends, then get SIGTERM (their whole process group)
and SIGKILL after a grace period. ``before`` maps a section title to a function called once, just
before the first block of that section: what the outside world does between two steps of the
procedure (the provider comes back, the workers are stopped by the deployment, a row is lost).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.runbook_parser import Block, read_runbook

BLOCK_TIMEOUT_S = 150.0
STOP_GRACE_S = 30.0
_TAIL = 3000


@dataclass
class BlockResult:
    block: Block
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class RunbookRun:
    """What a runbook run did so far; ``output(section)`` joins the stdout of a section."""

    path: Path
    results: list[BlockResult] = field(default_factory=list)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def output(self, section: str) -> str:
        return "".join(r.stdout for r in self.results if r.block.section == section)

    def timings(self) -> str:
        return ", ".join(
            f"{r.block.line}:{r.seconds:.1f}s"
            for r in self.results
            if r.block.expected_exit is not None
        )


def _describe(path: Path, block: Block) -> str:
    return f"{path.name} line {block.line} (section {block.section!r})"


def _run_block(path: Path, block: Block, env: Mapping[str, str], workdir: Path) -> BlockResult:
    began = time.monotonic()
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            env=dict(env),
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{_describe(path, block)} still running after {BLOCK_TIMEOUT_S:.0f} s:\n"
            f"{block.code}\nstdout:\n{exc.stdout!r}\nstderr:\n{exc.stderr!r}"
        )
    result = BlockResult(block, done.returncode, done.stdout, done.stderr, time.monotonic() - began)
    if done.returncode != block.expected_exit:
        pytest.fail(
            f"{_describe(path, block)} exited {done.returncode}, expected "
            f"{block.expected_exit}:\n{block.code}\n--- stdout\n{done.stdout[-_TAIL:]}"
            f"\n--- stderr\n{done.stderr[-_TAIL:]}"
        )
    return result


def _start_background(
    path: Path, block: Block, env: Mapping[str, str], workdir: Path, logs: Path
) -> subprocess.Popen[bytes]:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{path.stem}-line{block.line}.log"
    with log.open("ab") as handle:
        return subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", block.code],
            env=dict(env),
            cwd=workdir,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )


def stop_group(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process group ``process`` leads, SIGKILL after ``grace_s``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def run_runbook(
    path: Path,
    env: Mapping[str, str],
    workdir: Path,
    *,
    logs: Path,
    before: Mapping[str, Callable[[], None]] | None = None,
) -> Iterator[RunbookRun]:
    """Run every ``sh`` block of ``path``; background ones are stopped when the context ends."""
    blocks = read_runbook(path)
    hooks = dict(before or {})
    unknown = set(hooks) - {b.section for b in blocks if b.runs}
    assert not unknown, f"{path.name} has no section with commands named {sorted(unknown)}"
    run = RunbookRun(path)
    try:
        for block in blocks:
            if not block.runs:
                continue
            hook = hooks.pop(block.section, None)
            if hook is not None:
                hook()
            if block.background:
                run.background.append(_start_background(path, block, env, workdir, logs))
            else:
                result = _run_block(path, block, env, workdir)
                run.results.append(result)
                logs.mkdir(parents=True, exist_ok=True)
                (logs / f"{path.stem}-line{block.line}.out").write_text(
                    f"$ {block.code}\n{result.stdout}\n--- stderr\n{result.stderr}"
                )
        yield run
    finally:
        for process in reversed(run.background):
            stop_group(process)
        print(f"{path.name} blocks (line: seconds): {run.timings()}")  # shown with -s or -rP


@dataclass
class Service:
    """A process of the deployment (API, producer) around a runbook; see :func:`service`."""

    argv: list[str]
    process: subprocess.Popen[bytes]
    log: Path
    ready: Callable[[], bool] | None

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ready is not None and not self.ready():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{' '.join(self.argv)} exited ({self.process.returncode}):\n"
                    f"{self.log.read_text(errors='replace')[-_TAIL:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{' '.join(self.argv)} not ready after {timeout_s:.0f} s:\n"
                    f"{self.log.read_text(errors='replace')[-_TAIL:]}"
                )
            time.sleep(0.2)


@contextlib.contextmanager
def service(
    argv: list[str],
    env: Mapping[str, str],
    log: Path,
    *,
    ready: Callable[[], bool] | None = None,
    wait: bool = True,
) -> Iterator[Service]:
    """Start ``argv``, wait until ``ready()`` (unless ``wait`` is False: call ``wait_ready``
    later, to start something else meanwhile), and stop its process group at the end."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            argv, env=dict(env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        started = Service(argv, process, log, ready)
        if wait:
            started.wait_ready()
        yield started
    finally:
        stop_group(process)


def answers(url: str) -> bool:
    """True when an HTTP server answers ``url`` (whatever the status)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
