"""Turning raw Kafka records into valid events, or into dead letters that say why not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import DeadLetter, DeadLetterKind

E = TypeVar("E", bound=BaseModel)

_MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class Inbound:
    """One record as consumed, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Decoded(Generic[E]):
    record: Inbound
    event: E


def describe_validation_error(exc: ValidationError) -> tuple[DeadLetterKind, str]:
    """A short, human-readable reason: which fields are wrong and how."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(err["type"] == "json_invalid" for err in errors):
        return DeadLetterKind.DECODE, "not valid UTF-8 JSON: " + errors[0]["msg"]
    parts = []
    for err in errors[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "(event)"
        parts.append(f"{where}: {err['msg']}")
    if len(errors) > 8:
        parts.append(f"... and {len(errors) - 8} more")
    return DeadLetterKind.VALIDATION, "; ".join(parts)


def dead_letter(
    record: Inbound, kind: DeadLetterKind, error: str, *, agent: str, now: datetime
) -> DeadLetter:
    return DeadLetter(
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        source_key_b64=DeadLetter.encode_bytes(record.key),
        original_value_b64=DeadLetter.encode_bytes(record.value or b"") or "",
        kind=kind,
        error=error[:_MAX_REASON],
        failed_at=now,
        agent=agent,
    )


def decode_batch(
    records: list[Inbound], model: type[E], *, agent: str, now: datetime
) -> tuple[list[Decoded[E]], list[DeadLetter]]:
    """Validate every record against ``model``; the bad ones become dead letters."""
    good: list[Decoded[E]] = []
    bad: list[DeadLetter] = []
    for record in records:
        if not record.value:
            bad.append(
                dead_letter(record, DeadLetterKind.DECODE, "empty value", agent=agent, now=now)
            )
            continue
        try:
            event = model.model_validate_json(record.value)
        except ValidationError as exc:
            kind, reason = describe_validation_error(exc)
            bad.append(dead_letter(record, kind, reason, agent=agent, now=now))
            continue
        good.append(Decoded(record, event))
    return good, bad
