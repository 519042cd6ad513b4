"""Property tests of the decode path, with events drawn from the exported JSON Schemas (what a
producer in another language reads): every valid event accepted, every invalid one refused with
a kind and a reason, nothing raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import ActualDelay, BookingRequested
from streams.decode import Inbound, decode_one

JSON_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CONTRACTS = {
    "bookings": (BookingRequested, "booking_requested"),
    "actual-delays": (ActualDelay, "actual_delay"),
}
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def schema(name: str) -> dict[str, Any]:
    return json.loads((JSON_DIR / f"{name}.schema.json").read_text())


def from_schema(root: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid under ``root``, for the subset of JSON Schema the exported files use."""

    def draw(node: dict[str, Any]) -> st.SearchStrategy[Any]:
        if "$ref" in node:
            return draw(root["$defs"][node["$ref"].rsplit("/", 1)[-1]])
        if "anyOf" in node:
            return st.one_of([draw(option) for option in node["anyOf"]])
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        kind = node.get("type")
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind in ("number", "integer"):
            low, high = node.get("minimum"), node.get("maximum")
            if kind == "integer":
                return st.integers(low, high)
            high_open = node.get("exclusiveMaximum")
            return st.floats(
                low,
                high if high_open is None else high_open,
                exclude_max=high_open is not None,
                allow_nan=False,
                allow_infinity=False,
            )
        if kind == "string":
            if "pattern" in node:
                text = st.from_regex(node["pattern"], fullmatch=True)
                low, high = node.get("minLength", 0), node.get("maxLength", 10**6)
                return text.filter(lambda s: low <= len(s) <= high)
            return st.text(min_size=node.get("minLength", 0), max_size=node.get("maxLength", 30))
        if kind == "object":
            required = set(node.get("required", ()))
            fields = {name: draw(sub) for name, sub in node.get("properties", {}).items()}
            optional = {k: v for k, v in fields.items() if k not in required}
            return st.fixed_dictionaries(
                {k: v for k, v in fields.items() if k in required}, optional=optional
            )
        raise AssertionError(f"no strategy for {node}")

    return draw(root)


minutes = st.floats(min_value=-600, max_value=600, allow_nan=False)


def in_window(topic: str, data: dict[str, Any], offsets: tuple[float, float]) -> dict[str, Any]:
    """``data`` with its times moved inside the contract's windows around NOW."""
    a, b = offsets
    if topic == "bookings":
        created = NOW - timedelta(minutes=abs(a))
        data |= {
            "created_at": created.isoformat(),
            "scheduled_pickup_at": (created + timedelta(minutes=abs(b))).isoformat(),
        }
    else:
        data |= {"observed_at": (NOW - timedelta(minutes=abs(a))).isoformat()}
    return data


def decode(topic: str, key: bytes | None, value: bytes):
    record = Inbound(topic, 0, 1, key, value, timestamp_ms=NOW.timestamp() * 1000)
    return decode_one(record, CONTRACTS[topic][0], now=NOW)


@pytest.mark.parametrize("topic", sorted(CONTRACTS))
def test_every_schema_valid_event_in_its_time_window_is_accepted(topic):
    @PROFILE
    @given(
        data=from_schema(schema(CONTRACTS[topic][1])),
        offsets=st.tuples(minutes, minutes),
        keyed=st.booleans(),
    )
    def check(data, offsets, keyed):
        data = in_window(topic, data, offsets)
        key = data["booking_id"].encode() if keyed else None
        result = decode(topic, key, json.dumps(data).encode())
        assert not isinstance(result, tuple), (result, data)
        assert result.booking_id == data["booking_id"]

    check()


def broken(data: dict[str, Any], field: str, how: int) -> dict[str, Any] | list[Any]:
    """``data`` made invalid at ``field`` in one of several ways."""
    data = dict(data)
    value = data.get(field)
    if how == 0:
        data.pop(field, None)
    elif how == 1:
        data[field] = str(value) if not isinstance(value, str) else 12345
    elif how == 2:
        data[field] = [value]
    elif how == 3:
        data[field] = {"value": value}
    elif how == 4:
        data[field] = None if field != "patient_priority" and field != "operator_id" else 7
    elif how == 5:
        return [data]
    return data


@pytest.mark.parametrize("topic", sorted(CONTRACTS))
def test_every_broken_event_is_refused_with_a_kind_and_a_reason(topic):
    _, name = CONTRACTS[topic]
    required = schema(name)["required"]

    @PROFILE
    @given(
        data=from_schema(schema(name)),
        offsets=st.tuples(minutes, minutes),
        field=st.sampled_from(required),
        how=st.integers(0, 5),
    )
    def check(data, offsets, field, how):
        bad = broken(in_window(topic, data, offsets), field, how)
        result = decode(topic, None, json.dumps(bad).encode())
        assert isinstance(result, tuple), (bad, result)
        kind, reason = result
        assert kind.value in {"decode", "validation"} and reason

    check()


@PROFILE
@given(value=st.binary(max_size=2000), key=st.one_of(st.none(), st.binary(max_size=300)))
def test_arbitrary_bytes_never_raise_and_are_refused_or_valid(value, key):
    for topic in CONTRACTS:
        result = decode(topic, key, value)
        if isinstance(result, tuple):
            assert result[1]
        else:
            assert result.booking_id.encode() == (key or result.booking_id.encode())


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=30,
)


@PROFILE
@given(value=json_values)
def test_arbitrary_json_never_raises(value):
    raw = json.dumps(value).encode()  # NaN and Infinity included, as Python writes them
    for topic in CONTRACTS:
        result = decode(topic, None, raw)
        assert isinstance(result, tuple) and result[1]
