"""``delaycast replay``: re-predict a range of past bookings, or move a consumer group in time."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import TYPE_CHECKING

import click

from streams.operate.cli.params import ISO_TIME, epoch_ms

if TYPE_CHECKING:
    from connectors.kafka import OffsetRange, RangeReader
    from streams.settings import Settings


@click.group()
def replay() -> None:
    """Re-predict past bookings, or reset a consumer group to a point in time.

    \b
    Examples:
      delaycast replay bookings --since 2026-11-22T08:00:00+01:00 --until 2026-11-22T09:00:00+01:00
      delaycast replay bookings --partition 2 --from-offset 1500 --to-offset 1999 --dry-run
      delaycast replay reset-group --to 2026-11-22T08:00:00+01:00      # the workers stopped
    """


def replay_mode(
    since: datetime | None,
    until: datetime | None,
    partition: int | None,
    from_offset: int | None,
    to_offset: int | None,
) -> str:
    """``"time"`` or ``"offsets"``, from which options were given; a UsageError otherwise."""
    by_time = since is not None or until is not None
    by_offset = partition is not None or from_offset is not None or to_offset is not None
    if by_time and by_offset:
        raise click.UsageError(
            "give either --since/--until (message times) or --partition/--from-offset/"
            "--to-offset (offsets), not both"
        )
    if by_time:
        if since is None:
            raise click.UsageError("--until needs --since: the start of the range")
        if until is not None and until <= since:
            raise click.BadParameter(
                f"{until.isoformat()} is not after --since {since.isoformat()}",
                param_hint="--until",
            )
        return "time"
    if by_offset:
        missing = [
            name
            for name, value in (
                ("--partition", partition),
                ("--from-offset", from_offset),
                ("--to-offset", to_offset),
            )
            if value is None
        ]
        if missing:
            raise click.UsageError(f"an offset range needs {', '.join(missing)} too")
        return "offsets"
    raise click.UsageError(
        "say what to replay: --since ISO [--until ISO], or --partition P --from-offset A "
        "--to-offset B"
    )


def _ranges(
    reader: RangeReader,
    topic: str,
    mode: str,
    *,
    since: datetime | None,
    until: datetime | None,
    partition: int | None,
    from_offset: int | None,
    to_offset: int | None,
) -> list[OffsetRange]:
    from connectors.kafka import range_of_offsets, ranges_between_times

    marks = reader.watermarks(topic)
    if mode == "offsets":
        assert partition is not None and from_offset is not None and to_offset is not None
        try:
            return [range_of_offsets(marks, partition, from_offset, to_offset)]
        except ValueError as exc:
            hint = "--partition/--from-offset/--to-offset"
            raise click.BadParameter(str(exc), param_hint=hint) from None
    assert since is not None
    partitions = sorted(marks)
    starts = reader.offsets_for_time(topic, partitions, epoch_ms(since))
    ends = None if until is None else reader.offsets_for_time(topic, partitions, epoch_ms(until))
    return ranges_between_times(marks, starts, ends)


@replay.command("bookings")
@click.option("--since", type=ISO_TIME, help="First message time to replay (Kafka timestamp).")
@click.option("--until", type=ISO_TIME, help="Replay messages before this time [default: now].")
@click.option("--partition", type=click.IntRange(min=0), help="Partition of an offset range.")
@click.option("--from-offset", type=click.IntRange(min=0), help="First offset (included).")
@click.option("--to-offset", type=click.IntRange(min=0), help="Last offset (included).")
@click.option(
    "--dry-run", is_flag=True, help="Print the range that would be replayed; send nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def bookings(
    since: datetime | None,
    until: datetime | None,
    partition: int | None,
    from_offset: int | None,
    to_offset: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Re-predict the bookings of a time or offset range and publish the predictions.

    A time range goes by the messages' Kafka timestamps: on every partition, from the first
    offset at or after --since up to (not including) the first at or after --until. The
    bookings go through the worker's own prediction code with the flags now in Redis, the
    current champion and the configured weather; the predictions go to the predictions topic
    with replay=true, which the join skips: a replay never adds outcomes to the live metrics.
    Malformed bookings are counted, not dead-lettered again. Nothing is committed anywhere.

    \b
    Examples:
      delaycast replay bookings --since 2026-11-22T08:00:00Z --until 2026-11-22T09:00:00Z
      delaycast replay bookings --since 2026-11-22T08:00:00Z --dry-run
      delaycast replay bookings --partition 0 --from-offset 100 --to-offset 199
    """
    from connectors.kafka import KafkaReadError, RangeReader, describe_ranges
    from streams.settings import get_settings

    mode = replay_mode(since, until, partition, from_offset, to_offset)
    settings = get_settings()
    topic = settings.topic("bookings")
    try:
        with RangeReader(settings.kafka_bootstrap_servers) as reader:
            ranges = _ranges(
                reader,
                topic,
                mode,
                since=since,
                until=until,
                partition=partition,
                from_offset=from_offset,
                to_offset=to_offset,
            )
    except KafkaReadError as exc:
        raise click.ClickException(str(exc)) from None
    total = sum(r.count for r in ranges)
    if dry_run:
        for line in describe_ranges(topic, ranges):
            click.echo(line)
        click.echo(f"would replay {total} bookings from {topic}; dry run, nothing sent")
        return
    _run_replay(settings, ranges, total, as_json)


def _run_replay(settings: Settings, ranges: list[OffsetRange], total: int, as_json: bool) -> None:
    from connectors.kafka import KafkaReadError
    from streams.operate.cli.progress import Progress
    from streams.predict.replay import replay_bookings

    topic = settings.topic("bookings")
    if total == 0:
        click.echo(f"nothing to replay: no booking of {topic} in that range")
        return
    progress = Progress("replay", total)

    def started(description: str) -> None:
        click.echo(f"replaying {total} bookings of {topic} with {description}", err=True)

    try:
        with progress:
            totals = asyncio.run(
                replay_bookings(settings, ranges, on_start=started, on_batch=progress.update)
            )
    except KafkaReadError as exc:
        raise click.ClickException(f"{exc} (after {progress.done} of {total})") from None
    seconds = progress.elapsed_s
    if totals.first_dead_letter:
        click.echo(f"first dead letter: {totals.first_dead_letter}", err=True)
    if as_json:
        click.echo(json.dumps({"topic": topic, "seconds": round(seconds, 2), **totals.to_dict()}))
    else:
        fallbacks = sum(totals.fallbacks.values())
        click.echo(
            f"replayed {totals.read} bookings in {seconds:.1f} s: {totals.predicted} predictions "
            f"(replay=true) to {settings.topic('predictions')}, ML share "
            f"{100 * totals.ml_share:.1f} %, {fallbacks} fallbacks, "
            f"{totals.dead_letters} dead letters (not re-sent)"
        )


@replay.command("reset-group")
@click.option(
    "--group",
    help="Consumer group id [default: the workers' group, TOPIC_PREFIX + CONSUMER_GROUP].",
)
@click.option(
    "--to", "to", type=ISO_TIME, required=True, help="Move to the first offset at/after this time."
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Topic (catalogue name, e.g. bookings; TOPIC_PREFIX is added) [default: every topic "
    "the group has offsets on]. Repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Print old → new offsets; change nothing.")
def reset_group(group: str | None, to: datetime, topics: tuple[str, ...], dry_run: bool) -> None:
    """Move a consumer group's committed offsets to a point in time.

    On every partition of each topic, the group's offset becomes the first offset whose
    timestamp is at or after --to (the partition's end when none is that late), so its
    consumers start there. Kafka moves only a group without members: stop the workers first;
    the command refuses while the group has active members. Prints old → new per partition.

    \b
    Examples:
      delaycast replay reset-group --to 2026-11-22T08:00:00+01:00 --dry-run
      delaycast replay reset-group --to 2026-11-22T08:00:00+01:00
      delaycast replay reset-group --group delaycast --to 2026-11-22T07:00Z --topic bookings
    """
    from connectors.kafka import (
        GroupError,
        KafkaReadError,
        RangeReader,
        alter_offsets,
        committed_offsets,
        describe_group,
    )
    from streams.settings import get_settings

    settings = get_settings()
    bootstrap = settings.kafka_bootstrap_servers
    group_id = group or settings.topic(settings.consumer_group)
    try:
        info = describe_group(bootstrap, group_id)
        if info.active:
            raise click.ClickException(
                f"consumer group {group_id} has {len(info.members)} active member(s) "
                f"({', '.join(info.members[:5])}): stop its consumers (the workers) first; "
                "Kafka only moves the offsets of a group without members"
            )
        old = committed_offsets(bootstrap, group_id)
        with RangeReader(bootstrap) as reader:
            names = _group_topics(reader, settings, group_id, topics, old)
            new: dict[tuple[str, int], int] = {}
            for name in names:
                marks = reader.watermarks(name)
                found = reader.offsets_for_time(name, sorted(marks), epoch_ms(to))
                for p, (_low, high) in marks.items():
                    offset = found.get(p, -1)
                    new[(name, p)] = high if offset < 0 else offset
        for (name, p), offset in sorted(new.items()):
            before = old.get((name, p))
            click.echo(f"{name}[{p}] {'none' if before is None else before} → {offset}")
        if not dry_run:
            alter_offsets(bootstrap, group_id, new)
    except (GroupError, KafkaReadError) as exc:
        raise click.ClickException(str(exc)) from None
    moved = sum(new[k] != old.get(k) for k in new)
    verb = "would move" if dry_run else "moved"
    click.echo(
        f"{verb} group {group_id} to {to.isoformat()} on {len(new)} partitions of "
        f"{len(names)} topic(s) ({moved} changed){'; dry run, nothing changed' if dry_run else ''}"
    )


def _group_topics(
    reader: RangeReader,
    settings: Settings,
    group_id: str,
    topics: tuple[str, ...],
    committed: dict[tuple[str, int], int],
) -> list[str]:
    from connectors.kafka import KafkaReadError

    if not topics:
        names = sorted({t for t, _ in committed})
        if not names:
            raise click.UsageError(
                f"consumer group {group_id} has no committed offsets; "
                "name the topic(s) with --topic"
            )
        return names
    resolved = []
    for name in topics:
        candidates = list(dict.fromkeys((settings.topic(name), name)))
        for candidate in candidates:
            try:
                reader.partitions(candidate)
            except KafkaReadError:
                continue
            resolved.append(candidate)
            break
        else:
            tried = " nor ".join(repr(c) for c in candidates)
            raise click.BadParameter(f"no topic {tried} in Kafka", param_hint="--topic")
    return resolved
