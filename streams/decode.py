"""Turning raw Kafka records into valid events, or into dead letters that say why not.

The contract every input record must meet, checked in this order, each failure a dead letter of
its own kind (:class:`schemas.DeadLetterKind`), never an exception:

1. a value no larger than the size cap, checked before parsing (``too_large``);
2. strict JSON of the event's schema: no NaN or Infinity, no duplicate keys, no number, boolean
   or numeric string taken for a time, no string taken for a number, every number and string
   bounded (``decode`` when it is not JSON, ``validation`` otherwise);
3. times within :mod:`schemas.bounds`'s windows of the record's timestamp and the wall clock
   (``time_bounds``);
4. a key, when the record has one, equal to the event's ``booking_id`` (``key_mismatch``). A
   record without a key is accepted: the event's ``booking_id`` routes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import DeadLetter, DeadLetterKind
from schemas.bounds import DEFAULT_BOUNDS, TimeBounds, time_problem
from schemas.dead_letter import MAX_KEPT_KEY_BYTES, MAX_KEPT_VALUE_BYTES

E = TypeVar("E", bound=BaseModel)

_MAX_REASON = 2000
MAX_VALUE_BYTES = 64 * 1024


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


@dataclass(frozen=True)
class Contract:
    """What an input record must meet beyond its schema (see the module's docstring)."""

    max_value_bytes: int = MAX_VALUE_BYTES
    bounds: TimeBounds = DEFAULT_BOUNDS


DEFAULT_CONTRACT = Contract()


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
    """The dead letter of ``record``: never larger than the size cap, whatever the record's size."""
    value = record.value or b""
    key = record.key
    truncated = len(value) > MAX_KEPT_VALUE_BYTES or (
        key is not None and len(key) > MAX_KEPT_KEY_BYTES
    )
    return DeadLetter(
        source_topic=record.topic[:255],
        source_partition=max(record.partition, 0),
        source_offset=max(record.offset, 0),
        source_key_b64=DeadLetter.encode_bytes(None if key is None else key[:MAX_KEPT_KEY_BYTES]),
        original_value_b64=DeadLetter.encode_bytes(value[:MAX_KEPT_VALUE_BYTES]) or "",
        original_size=len(value),
        truncated=truncated,
        kind=kind,
        error=error[:_MAX_REASON],
        failed_at=now,
        agent=agent,
    )


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise ValueError(f"duplicate key {name[:64]!r}")
        seen[name] = value
    return seen


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _not_strict_json(value: bytes) -> str | None:
    """What makes ``value`` (already parsed once) less than strict JSON: a duplicate object key
    or a NaN or Infinity anywhere, even in a field the schema ignores; None when nothing does."""
    try:
        json.loads(value, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except ValueError as exc:
        return str(exc)
    except RecursionError:  # deeper than Python's parser goes: not an event of ours anyway
        return "nested too deeply"
    return None


def published_at(record: Inbound, now: datetime) -> datetime:
    """The record's timestamp, or ``now`` when it has none (Kafka's -1) or a nonsensical one."""
    ts = record.timestamp_ms
    if ts is None or not 0 < ts < 4_102_444_800_000:  # before 2100
        return now
    return datetime.fromtimestamp(ts / 1000.0, UTC)


def decode_one(
    record: Inbound, model: type[E], *, now: datetime, contract: Contract = DEFAULT_CONTRACT
) -> E | tuple[DeadLetterKind, str]:
    """The event in ``record``, or the kind and reason of its refusal."""
    value = record.value
    if not value:
        return DeadLetterKind.DECODE, "empty value"
    if len(value) > contract.max_value_bytes:
        return (
            DeadLetterKind.TOO_LARGE,
            f"value of {len(value)} bytes is larger than the cap of "
            f"{contract.max_value_bytes} bytes",
        )
    try:
        event = model.model_validate_json(value, strict=True)
    except ValidationError as exc:
        return describe_validation_error(exc)
    not_strict = _not_strict_json(value)
    if not_strict is not None:
        return DeadLetterKind.VALIDATION, f"not strict JSON: {not_strict}"
    problem = time_problem(
        event, published=published_at(record, now), now=now, bounds=contract.bounds
    )
    if problem is not None:
        return DeadLetterKind.TIME_BOUNDS, problem
    booking_id = getattr(event, "booking_id", None)
    if record.key is not None and booking_id is not None and record.key != booking_id.encode():
        shown = record.key[:64].decode("utf-8", "replace")
        return (
            DeadLetterKind.KEY_MISMATCH,
            f"the record's key {shown!r} is not its booking_id {booking_id!r}",
        )
    return event


def decode_batch(
    records: list[Inbound],
    model: type[E],
    *,
    agent: str,
    now: datetime,
    contract: Contract = DEFAULT_CONTRACT,
) -> tuple[list[Decoded[E]], list[DeadLetter]]:
    """Validate every record against ``model`` and the contract; the bad ones become dead
    letters, each with its own reason."""
    good: list[Decoded[E]] = []
    bad: list[DeadLetter] = []
    for record in records:
        outcome = decode_one(record, model, now=now, contract=contract)
        if isinstance(outcome, tuple):
            kind, reason = outcome
            bad.append(dead_letter(record, kind, reason, agent=agent, now=now))
        else:
            good.append(Decoded(record, outcome))
    return good, bad
