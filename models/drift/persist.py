"""Saving and restoring a monitor's state as JSON, checked against the monitor's configuration.

A saved state is plain data: numbers, strings, lists and objects, written with each float's
shortest round-trip text so that a restored monitor continues bit for bit. Restoring parses JSON
and checks every field's type and range; it never runs code named in the data. States of an
older format (format 1 was a pickle, read from the project's database) are refused unread: the
monitor then starts afresh.

>>> state = dump_state("demo", {"window": 10}, {"counts": [1, 2], "last": encode_float(-math.inf)})
>>> data = load_state("demo", {"window": 10}, state)
>>> int_list(data, "counts"), decode_float(data["last"])
([1, 2], -inf)
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

_FORMAT = 2
#: The first byte of every pickle of protocol 2 and above (format 1 states).
_PICKLE_MARK = 0x80
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def encode_float(value: float) -> float | str:
    """``value`` itself when finite, else "inf", "-inf" or "nan" (strict JSON has none of them)."""
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def decode_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, str):
        if value not in _NON_FINITE:
            raise ValueError(f"not a number: {value!r}")
        return _NON_FINITE[value]
    return float(value)


def encode_floats(values: Any) -> list[float | str]:
    return [encode_float(v) for v in values]


def jsonable(value: Any) -> Any:
    """A configuration as comparable JSON data: durations in seconds, tuples as lists."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return encode_float(value)
    return value


def dump_state(monitor: str, config: Any, data: Any) -> bytes:
    """``data`` (JSON data: use :func:`encode_float` for floats that may be infinite) with the
    monitor's name and configuration, as UTF-8 JSON."""
    saved = {"format": _FORMAT, "monitor": monitor, "config": jsonable(config), "data": data}
    return json.dumps(saved, allow_nan=False, separators=(",", ":")).encode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


def load_state(monitor: str, config: Any, state: bytes) -> dict[str, Any]:
    """The saved data; ValueError when it is not a JSON state of this format (an old pickle
    included, which is never unpickled), or was saved by another monitor or configuration (the
    caller then starts afresh rather than mixing two configurations)."""
    if state[:1] == bytes([_PICKLE_MARK]):
        raise ValueError("an old pickled state (format 1), ignored unread")
    try:
        saved = json.loads(state.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not a saved monitor state: {exc}") from exc
    if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
        raise ValueError("not a saved monitor state of this format")
    if saved.get("monitor") != monitor:
        raise ValueError(f"state of a {saved.get('monitor')} monitor, not of a {monitor} monitor")
    if saved.get("config") != jsonable(config):
        raise ValueError("state saved with another configuration")
    data = saved.get("data")
    if not isinstance(data, dict):
        raise ValueError("a saved state without its data")
    return data


def _get(data: Any, key: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise ValueError(f"saved state lacks {key!r}")
    return data[key]


def int_of(data: Any, key: str, *, low: int = 0, high: int | None = None) -> int:
    value = _get(data, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"saved {key!r} is not an integer")
    if value < low or (high is not None and value > high):
        raise ValueError(f"saved {key!r} = {value} is out of range")
    return value


def float_of(data: Any, key: str) -> float:
    try:
        return decode_float(_get(data, key))
    except ValueError as exc:
        raise ValueError(f"saved {key!r}: {exc}") from exc


def optional_float_of(data: Any, key: str) -> float | None:
    return None if _get(data, key) is None else float_of(data, key)


def list_of(data: Any, key: str, *, length: int | None = None) -> list[Any]:
    value = _get(data, key)
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise ValueError(f"saved {key!r} is not a list" + (f" of {length}" if length else ""))
    return value


def int_list(data: Any, key: str, *, length: int | None = None) -> list[int]:
    values = list_of(data, key, length=length)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValueError(f"saved {key!r} holds something other than counts")
    return values


def float_list(data: Any, key: str, *, length: int | None = None) -> list[float]:
    try:
        return [decode_float(v) for v in list_of(data, key, length=length)]
    except ValueError as exc:
        raise ValueError(f"saved {key!r}: {exc}") from exc


def dict_of(data: Any, key: str) -> dict[str, Any]:
    value = _get(data, key)
    if not isinstance(value, dict):
        raise ValueError(f"saved {key!r} is not an object")
    return value


def time_of(data: Any, key: str) -> datetime | None:
    """A timezone-aware datetime saved as ISO 8601 text, or None."""
    value = _get(data, key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"saved {key!r} is not a time")
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError(f"saved {key!r} has no time zone")
    return at
