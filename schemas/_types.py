"""Field types shared by the event contracts: strict times, bounded ids and numbers.

Every field an untrusted producer can set is bounded, so that no single event can overflow a sum,
move a clock to year 9999 or grow a worker's state without limit.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

# An ISO 8601 date-time with seconds optional, fractions optional and a UTC offset (Z or ±hh:mm).
_ISO_TEXT = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})"
)
EARLIEST_YEAR: Final = 1970
LATEST_YEAR: Final = 2100


def _iso_text_only(value: Any) -> Any:
    """Refuse what a lenient parser would turn into a time: epoch numbers, numeric strings,
    booleans. A ``datetime`` made in code passes through."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _ISO_TEXT.fullmatch(value) is None:
        raise ValueError(
            "expected an ISO 8601 date-time string with a timezone offset, "
            "e.g. 2026-11-23T08:30:00+01:00"
        )
    # Parsed here: under strict validation the datetime validator after this one takes no text.
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {exc}") from None


def _plausible_year(value: datetime) -> datetime:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"year {value.year} is outside {EARLIEST_YEAR}–{LATEST_YEAR}")
    return value


# The same rule for a producer that reads only the exported JSON Schema.
EVENT_TIME_PATTERN: Final = (
    r"^(19[7-9][0-9]|20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}"
    r"(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})$"
)
EventTime = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_text_only),
    AfterValidator(_plausible_year),
    Field(json_schema_extra={"pattern": EVENT_TIME_PATTERN}),
]
"""An aware date-time, given as ISO 8601 text, between the years 1970 and 2100."""

BookingId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
Label = Annotated[str, Field(min_length=1, max_length=128)]
"""A short name such as a model version or a source."""

DELAY_MINUTES_BOUND: Final = 10_080.0  # a week: anything beyond is not a pickup delay
DelayMinutes = Annotated[float, Field(ge=-DELAY_MINUTES_BOUND, le=DELAY_MINUTES_BOUND)]
DurationMs = Annotated[float, Field(ge=0, le=86_400_000)]
FEATURE_BOUND: Final = 1e9
FeatureName = Annotated[str, Field(min_length=1, max_length=64)]
FeatureValue = Annotated[float, Field(ge=-FEATURE_BOUND, le=FEATURE_BOUND)]
