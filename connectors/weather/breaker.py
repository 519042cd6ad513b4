"""A circuit breaker for calls to a weather provider, driven by the caller's clock."""

from __future__ import annotations

from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls flow
    OPEN = "open"  # calls refused until the reset time has passed
    HALF_OPEN = "half_open"  # reset time passed: one trial call decides


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; ``reset_s`` later lets one trial through.

    A successful trial closes it, a failed one opens it for another ``reset_s``. ``now`` is in
    seconds on any clock that only moves forward, as long as the caller always uses the same.

    >>> breaker = CircuitBreaker(failures=2, reset_s=10)
    >>> breaker.failure(now=0), breaker.failure(now=1)
    (False, True)
    >>> breaker.allow(now=5), breaker.allow(now=11), breaker.allow(now=11)
    (False, True, False)
    >>> breaker.success(); breaker.state(now=12)
    <BreakerState.CLOSED: 'closed'>
    """

    def __init__(self, failures: int, reset_s: float) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be >= 1 and reset_s > 0")
        self._threshold = failures
        self._reset_s = reset_s
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now < self._opened_at + self._reset_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self, now: float) -> bool:
        """Whether a call may start now; in half-open state only the first asker gets True."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial_running = False

    def abandon(self) -> None:
        """Forgets a call that ended without an answer (cancelled), so a new trial may start."""
        self._trial_running = False

    def failure(self, now: float) -> bool:
        """Records a failed call; True when this failure opened the breaker."""
        self._consecutive += 1
        was_closed = self._opened_at is None
        if not was_closed or self._consecutive >= self._threshold:
            self._open(now)
        return was_closed and self._opened_at is not None

    def trip(self, now: float) -> bool:
        """Opens at once, whatever the count (a refused API key); True when it was closed."""
        was_closed = self._opened_at is None
        self._open(now)
        return was_closed

    def _open(self, now: float) -> None:
        # A late failure of a call started before the breaker opened must not extend the wait
        # while no trial ran; a failed trial (or a trip) starts a new wait.
        if (
            self._opened_at is None
            or self._trial_running
            or self.state(now) is not BreakerState.OPEN
        ):
            self._opened_at = now
        self._trial_running = False
