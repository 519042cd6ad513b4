"""Shared configuration for every event contract."""

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """Base of all event contracts: immutable, unknown fields ignored, no NaN or infinity.

    Unknown fields are ignored rather than rejected so that a producer can add a field before
    every consumer knows it; a breaking change bumps ``schema_version`` instead.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)
