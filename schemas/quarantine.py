"""QuarantinedEvent: an event the recorder could not store, kept with its reason instead."""

from __future__ import annotations

from dataclasses import dataclass

#: Reasons are for a person to read; longer ones are cut.
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class QuarantinedEvent:
    """Where the event came from (topic, partition, offset: one row per record, so a
    redelivered batch quarantines nothing twice), its booking when known, why it was refused
    and its original value bytes."""

    source_topic: str
    source_partition: int
    source_offset: int
    booking_id: str | None
    reason: str
    payload: bytes

    def __post_init__(self) -> None:
        # PostgreSQL text cannot hold NUL; a reason quoting hostile input might.
        reason = self.reason.replace("\x00", "\\0")
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        object.__setattr__(self, "reason", reason)
        if self.booking_id is not None:
            object.__setattr__(self, "booking_id", self.booking_id.replace("\x00", "")[:200])
