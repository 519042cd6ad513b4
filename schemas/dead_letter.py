"""DeadLetter: an event that could not be processed, with everything needed to requeue it."""

import base64
from enum import StrEnum
from typing import Final, Literal

from pydantic import AwareDatetime, Field

from schemas._base import Event

DEAD_LETTER_SCHEMA_VERSION: Final = 1
# A dead letter must always fit where its source did: the original value is kept whole up to
# this size, and cut beyond it (``truncated``), so an oversized record never makes an oversized
# letter. A truncated letter cannot be requeued; its source offset says where the whole one is.
MAX_KEPT_VALUE_BYTES: Final = 32 * 1024
MAX_KEPT_KEY_BYTES: Final = 1024


class DeadLetterKind(StrEnum):
    DECODE = "decode"  # not UTF-8 JSON, or empty
    TOO_LARGE = "too_large"  # larger than the size cap, not parsed at all
    VALIDATION = "validation"  # JSON, but not a valid event (types, bounds, duplicate keys)
    TIME_BOUNDS = "time_bounds"  # valid, but its times disagree with its Kafka timestamp or now
    KEY_MISMATCH = "key_mismatch"  # the Kafka key is not the event's booking_id
    PROCESSING = "processing"  # valid, but processing failed
    UNDELIVERABLE = "undeliverable"  # its output was refused by Kafka for good (e.g. too large)


class DeadLetter(Event):
    schema_version: Literal[1] = DEAD_LETTER_SCHEMA_VERSION
    source_topic: str = Field(max_length=255)
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    source_key_b64: str | None = Field(description="The original key bytes, base64.")
    original_value_b64: str = Field(description="The original value bytes, base64.")
    original_size: int | None = Field(
        default=None, ge=0, description="The original value's size in bytes."
    )
    truncated: bool = Field(
        default=False, description="True when the key or value kept here is only their start."
    )
    kind: DeadLetterKind
    error: str = Field(max_length=2000, description="Why it failed, for a person to read.")
    failed_at: AwareDatetime
    agent: str

    @property
    def original_value(self) -> bytes:
        return base64.b64decode(self.original_value_b64)

    @property
    def source_key(self) -> bytes | None:
        return None if self.source_key_b64 is None else base64.b64decode(self.source_key_b64)

    @staticmethod
    def encode_bytes(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode("ascii")
