"""DeadLetter: an event that could not be processed, with everything needed to requeue it."""

import base64
from enum import StrEnum
from typing import Final, Literal

from pydantic import AwareDatetime, Field

from schemas._base import Event

DEAD_LETTER_SCHEMA_VERSION: Final = 1


class DeadLetterKind(StrEnum):
    DECODE = "decode"  # not UTF-8 JSON
    VALIDATION = "validation"  # JSON, but not a valid event
    PROCESSING = "processing"  # valid, but processing failed


class DeadLetter(Event):
    schema_version: Literal[1] = DEAD_LETTER_SCHEMA_VERSION
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    source_key_b64: str | None = Field(description="The original key bytes, base64.")
    original_value_b64: str = Field(description="The original value bytes, base64.")
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
