"""``delaycast produce``: publish bookings to Kafka."""

from __future__ import annotations

import itertools
import random
import secrets
import time
from collections.abc import Iterator

import click


def synthetic_records(
    *, count: int, invalid_fraction: float, seed: int | None, prefix: str
) -> Iterator[tuple[bytes, bytes, bool]]:
    """(key, value, valid) for ``count`` bookings (endless when 0), some of them malformed."""
    from models.synthetic import SyntheticWorld, invalid_booking_payloads
    from streams.clock import utc_now

    rng = random.Random(seed)
    world = SyntheticWorld(seed if seed is not None else rng.randrange(2**31))
    numbers = itertools.count() if count == 0 else range(count)
    for n in numbers:
        booking_id = f"{prefix}-{n:08d}"
        if invalid_fraction and rng.random() < invalid_fraction:
            _kind, payload = rng.choice(invalid_booking_payloads(rng))
            yield booking_id.encode(), payload, False
            continue
        booking = world.booking(utc_now(), rng).model_copy(update={"booking_id": booking_id})
        yield booking_id.encode(), booking.model_dump_json().encode(), True


@click.group()
def produce() -> None:
    """Publish bookings to the bookings topic.

    \b
    Examples:
      delaycast produce synthetic --count 1000 --rate 50
      delaycast produce synthetic --count 0 --rate 20        # endless, Ctrl-C to stop
      delaycast produce synthetic --count 500 --invalid-fraction 0.05
    """


@produce.command()
@click.option(
    "--count", type=click.IntRange(min=0), default=100, show_default=True, help="0 = endless."
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Bookings per second; 0 = as fast as possible.",
)
@click.option(
    "--invalid-fraction",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of malformed events, to exercise dead-letters.",
)
@click.option("--seed", type=int, default=None, help="Make the stream reproducible.")
@click.option("--id-prefix", default=None, help="Booking id prefix (default: a random one).")
def synthetic(
    count: int, rate: float, invalid_fraction: float, seed: int | None, id_prefix: str | None
) -> None:
    """Publish synthetic bookings around Geneva, created now."""
    from connectors.kafka import BlockingProducer, paced
    from streams.settings import get_settings

    settings = get_settings()
    topic = settings.topic("bookings")
    producer = BlockingProducer(settings.kafka_bootstrap_servers)
    prefix = id_prefix or f"SYN-{secrets.token_hex(3)}"
    records = synthetic_records(
        count=count, invalid_fraction=invalid_fraction, seed=seed, prefix=prefix
    )
    sent = invalid = 0
    started = last_report = time.monotonic()
    try:
        for key, value, valid in paced(records, rate):
            producer.send(topic, key, value)
            sent += 1
            invalid += not valid
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                click.echo(f"  sent {sent} ({invalid} malformed)", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush()
    elapsed = time.monotonic() - started
    click.echo(
        f"produced {sent} events to {topic} ({sent - invalid} bookings, {invalid} malformed) "
        f"in {elapsed:.1f} s ({sent / elapsed if elapsed else 0:.0f}/s), id prefix {prefix}"
    )
