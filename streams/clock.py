"""The wall clock, passed to code that must not call now() itself."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
