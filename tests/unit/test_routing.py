import json
import random
from pathlib import Path

import pytest

from models.routing import bucket, routes_to_ml

VECTORS = json.loads(
    (Path(__file__).parents[2] / "schemas" / "vectors" / "bucket_hash.json").read_text()
)["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['salt']}/{v['booking_id'][:12]}")
def test_bucket_matches_the_published_test_vectors(vector):
    assert bucket(vector["salt"], vector["booking_id"]) == vector["bucket"]


def test_bucket_is_in_range_with_two_decimals():
    for i in range(5000):
        b = bucket("salt", f"B-{i}")
        assert 0 <= b < 100
        assert round(b, 2) == b


def test_buckets_are_roughly_uniform():
    values = [bucket("delaycast-v1", f"B-{i:06d}") for i in range(20_000)]
    share_below_30 = sum(v < 30 for v in values) / len(values)
    assert abs(share_below_30 - 0.30) < 0.015


def test_salt_changes_the_assignment():
    same = sum(bucket("a", f"B-{i}") == bucket("b", f"B-{i}") for i in range(1000))
    assert same < 10


def test_raising_the_percentage_never_moves_a_booking_off_ml():
    ids = [f"B-{random.Random(7).random()}-{i}" for i in range(3000)]
    for low, high in [(0, 10), (10, 25), (25, 50), (50, 100), (30, 60)]:
        for booking_id in ids:
            b = bucket("delaycast-v1", booking_id)
            if routes_to_ml(b, enabled=True, percentage=low):
                assert routes_to_ml(b, enabled=True, percentage=high)


def test_disabled_routes_nothing_to_ml_and_100_routes_everything():
    for i in range(1000):
        b = bucket("s", str(i))
        assert not routes_to_ml(b, enabled=False, percentage=100)
        assert routes_to_ml(b, enabled=True, percentage=100)
        assert not routes_to_ml(b, enabled=True, percentage=0)
