"""``delaycast produce``: publish bookings to Kafka."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import click

from streams.operate.cli.params import DEFAULT_WORLD_SEED, INCIDENT_RATE


@click.group()
def produce() -> None:
    """Publish bookings to the bookings topic.

    \b
    Examples:
      delaycast produce synthetic --count 1000 --rate 50
      delaycast produce synthetic --count 0 --rate 20        # endless, Ctrl-C to stop
      delaycast produce synthetic --count 500 --invalid-fraction 0.05
      delaycast produce synthetic --count 0 --actual-after-s 10 --incidents 0.03
      delaycast produce csv data/history.csv --actuals --rate 200
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
@click.option(
    "--world-seed",
    type=int,
    default=DEFAULT_WORLD_SEED,
    show_default=True,
    help="The synthetic world's seed: the one `delaycast synthetic history --seed` used.",
)
@click.option("--id-prefix", default=None, help="Booking id prefix (default: a random one).")
@click.option(
    "--actual-after-s",
    type=click.FloatRange(min=0),
    default=None,
    help="Also publish each booking's actual delay (its ground truth), observed about S "
    "seconds later (up to 5 minutes more); it is published once observed, never earlier.",
)
@click.option(
    "--incidents",
    type=INCIDENT_RATE,
    default=0.0,
    show_default=True,
    help="Share of bookings hit by the world's incidents (road closures, accidents, hospital "
    "queues), each 20–120 minutes later, clustered by area and hour; 0 = none. Changes the "
    "actual delays only: use the rate the history was generated with.",
)
def synthetic(
    count: int,
    rate: float,
    invalid_fraction: float,
    seed: int | None,
    world_seed: int,
    id_prefix: str | None,
    actual_after_s: float | None,
    incidents: float,
) -> None:
    """Publish synthetic bookings around Geneva, created now (and their actual delays).

    With --actual-after-s, each booking reaches the stream with its pickup placed so that its
    actual is observed about S seconds later: the time between booking and pickup is
    compressed (created_at lies its realistic lead time before the pickup), event time stays
    at the wall clock, and no event is published before it happened. When --count is reached
    the command waits for the last actuals to be observed.

    With --incidents, a booking whose pickup an incident hits is observed its extra delay
    (20–120 minutes) later than S, as a real late pickup would be; waiting for the last
    actuals may then take two hours more.

    \b
    Examples:
      delaycast produce synthetic --count 1000 --rate 50 --id-prefix DEMO
      delaycast produce synthetic --count 200 --rate 0 --actual-after-s 5
      delaycast produce synthetic --count 0 --rate 50 --actual-after-s 10 --incidents 0.03
    """
    from connectors.kafka import BlockingProducer, paced
    from models.synthetic import IncidentConfig
    from streams.clock import utc_now
    from streams.operate.cli.produce_plan import Schedule, synthetic_plans
    from streams.settings import get_settings

    settings = get_settings()
    topic, actuals_topic = settings.topic("bookings"), settings.topic("actual-delays")
    producer = BlockingProducer(settings.kafka_bootstrap_servers)
    prefix = id_prefix or f"SYN-{secrets.token_hex(3)}"
    plans = synthetic_plans(
        count=count,
        invalid_fraction=invalid_fraction,
        seed=seed,
        prefix=prefix,
        world_seed=world_seed,
        actual_after=None if actual_after_s is None else timedelta(seconds=actual_after_s),
        clock=utc_now,
        incidents=IncidentConfig(rate=incidents) if incidents else None,
    )
    schedule = Schedule()
    sent = invalid = actuals_sent = 0
    started = last_report = time.monotonic()

    def send_due() -> None:
        nonlocal sent, invalid, actuals_sent
        for record in schedule.pop_due(utc_now()):
            producer.send(settings.topic(record.topic), record.key, record.value)
            if record.topic == "actual-delays":
                actuals_sent += 1
            else:
                sent += 1
                invalid += not record.valid

    def report() -> None:
        nonlocal last_report
        if time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            waiting = f", {len(schedule)} waiting for their time" if len(schedule) else ""
            click.echo(f"  sent {sent} ({invalid} malformed){waiting}", err=True)

    try:
        for plan in paced(plans, rate):
            schedule.add(plan)
            send_due()
            report()
        # The stream ended: the rest (actuals observed later) as they fall due, never earlier.
        while schedule:
            time.sleep(min(1.0, max(0.0, (schedule.next_due - utc_now()).total_seconds())))
            send_due()
            report()
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush()
    elapsed = time.monotonic() - started
    click.echo(
        f"produced {sent} events to {topic} ({sent - invalid} bookings, {invalid} malformed) "
        f"in {elapsed:.1f} s ({sent / elapsed if elapsed else 0:.0f}/s), id prefix {prefix}"
        + (
            f"; {actuals_sent} actual delays to {actuals_topic}"
            if actual_after_s is not None
            else ""
        )
        + (f"; {len(schedule)} not yet due left unsent" if schedule else "")
    )


MAX_REPORTED_LINES = 50


def csv_records(
    path: Path, *, actuals: bool
) -> Iterator[tuple[int, tuple[bytes, bytes, bytes | None] | str]]:
    """(line, (key, booking, actual or None)) for each valid row of a history CSV, and
    (line, reason) for each invalid one."""
    from connectors.datasets import DatasetError, scan_history
    from schemas import ActualDelay

    for line, row in scan_history(path):
        if isinstance(row, DatasetError):
            yield line, str(row)
            continue
        booking = row.booking
        actual = None
        if actuals:
            delay = row.actual_delay_minutes
            actual = (
                ActualDelay(
                    booking_id=booking.booking_id,
                    actual_delay_minutes=delay,
                    observed_at=booking.scheduled_pickup_at + timedelta(minutes=delay),
                    source="csv",
                )
                .model_dump_json()
                .encode()
            )
        key = booking.booking_id.encode()
        yield line, (key, booking.model_dump_json().encode(), actual)


def _count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return max(0, sum(1 for line in handle if line.strip()) - 1)


@produce.command("csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--actuals",
    is_flag=True,
    help="Also publish each row's actual_delay_minutes to actual-delays (observed at the "
    "scheduled pickup plus the delay).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Bookings per second; 0 = as fast as possible.",
)
@click.option("--dry-run", is_flag=True, help="Validate the file and report; send nothing.")
def csv_cmd(file: Path, actuals: bool, rate: float, dry_run: bool) -> None:
    """Publish the bookings of a history CSV (the format `delaycast synthetic history` writes).

    Columns: booking_id, created_at, scheduled_pickup_at, pickup_lat, pickup_lon, dropoff_lat,
    dropoff_lon, vehicle_type, patient_priority (may be empty), actual_delay_minutes. A row that
    is not a valid booking is reported with its line number and not sent; the exit status is 1
    when any row was invalid (the valid ones are sent all the same).

    \b
    Examples:
      delaycast produce csv data/history.csv
      delaycast produce csv data/history.csv --actuals --rate 100
      delaycast produce csv bookings.csv --dry-run      # only validate
    """
    from connectors.datasets import DatasetError
    from connectors.kafka import BlockingProducer, DeliveryFailed, paced
    from streams.operate.cli.progress import Progress
    from streams.settings import get_settings

    settings = get_settings()
    topic, actuals_topic = settings.topic("bookings"), settings.topic("actual-delays")
    producer = None if dry_run else BlockingProducer(settings.kafka_bootstrap_servers)
    invalid: list[int] = []
    sent = actuals_sent = 0
    stopped = False
    progress = Progress(f"produce {file.name}", _count_rows(file))
    try:
        with progress:
            for line, item in paced(csv_records(file, actuals=actuals), rate):
                progress.update()
                if isinstance(item, str):
                    invalid.append(line)
                    if len(invalid) <= MAX_REPORTED_LINES:
                        click.echo(f"invalid: {item}", err=True)
                    continue
                key, value, actual = item
                if producer is not None:
                    producer.send(topic, key, value)
                    if actual is not None:
                        producer.send(actuals_topic, key, actual)
                sent += 1
                actuals_sent += actual is not None
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        stopped = True
    finally:
        if producer is not None:
            try:
                producer.flush()
            except DeliveryFailed as exc:
                raise click.ClickException(f"Kafka did not take every record: {exc}") from None
    if len(invalid) > MAX_REPORTED_LINES:
        click.echo(f"invalid: ... and {len(invalid) - MAX_REPORTED_LINES} more rows", err=True)
    verb = "would publish" if dry_run else "published"
    lines = ", ".join(str(n) for n in invalid[:20]) + (", ..." if len(invalid) > 20 else "")
    click.echo(
        f"{verb} {sent} bookings to {topic}"
        + (f" and {actuals_sent} actual delays to {actuals_topic}" if actuals else "")
        + f" from {file} in {progress.elapsed_s:.1f} s; {len(invalid)} invalid rows not sent"
        + (f" (lines {lines})" if invalid else "")
        + ("; interrupted" if stopped else "")
    )
    if invalid:
        raise SystemExit(1)
