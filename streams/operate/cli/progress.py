"""Progress of long commands on stderr, so that stdout stays the command's result.

On a terminal, a click progress bar; otherwise (a log file, a CI job, a test) one line every
``every_s`` seconds, which a bar would turn into an unreadable stream of carriage returns.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, TextIO, cast

import click


class Progress:
    """Counts work done out of ``total`` (None: unknown) and shows it on stderr."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        every_s: float = 5.0,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._every_s = every_s
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = self._last = clock()
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.total and _is_terminal(self._stream):
            self._bar = click.progressbar(
                length=self.total,
                label=self.label,
                file=cast(TextIO, self._stream),
                show_pos=True,
            ).__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self._clock()
        if now - self._last >= self._every_s:
            self._last = now
            click.echo(self.line(now), file=self._stream)

    def line(self, now: float | None = None) -> str:
        elapsed = (self._clock() if now is None else now) - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            share = 100.0 * self.done / self.total
            return f"{self.label}: {self.done}/{self.total} ({share:.0f} %), {rate:.0f}/s"
        return f"{self.label}: {self.done}, {rate:.0f}/s"

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def heartbeat(
    describe: Callable[[float], str], *, every_s: float = 5.0, stream: IO[str] | None = None
) -> Iterator[None]:
    """While the block runs, print ``describe(seconds elapsed)`` every ``every_s`` seconds:
    for one long call (fitting a forest) that cannot report progress itself."""
    out = stream if stream is not None else sys.stderr
    stop = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not stop.wait(every_s):
            click.echo(describe(time.monotonic() - started), file=out)

    thread = threading.Thread(target=beat, name="delaycast-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1.0)


class Stages:
    """A long command's stages on stderr, each line with the seconds since the start: call it
    with (stage, detail) as a training's progress; :meth:`still` is a :func:`heartbeat`'s line
    while one stage works on."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._stage = "start"

    def __call__(self, stage: str, detail: str) -> None:
        self._stage = stage
        click.echo(f"[{time.perf_counter() - self._started:7.1f}s] {stage}: {detail}", err=True)

    def still(self, _elapsed: float) -> str:
        return f"[{time.perf_counter() - self._started:7.1f}s] {self._stage}: still working"

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._started


@contextlib.contextmanager
def history_errors() -> Iterator[None]:
    """A PostgreSQL that cannot be read becomes one line for the operator (its class only: the
    driver's message may hold the connection URL)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"cannot read the history from PostgreSQL: {type(exc).__name__}"
        ) from None
