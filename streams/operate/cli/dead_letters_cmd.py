"""``delaycast dead-letters``: see what failed and why, and send it back once fixed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import click

from streams.operate.cli.params import ISO_TIME

if TYPE_CHECKING:
    from schemas import DeadLetter
    from streams.operate.dead_letters import LetterFilter

KINDS = click.Choice(
    [
        "decode",
        "too_large",
        "validation",
        "time_bounds",
        "key_mismatch",
        "processing",
        "undeliverable",
    ],
    case_sensitive=False,
)


def selection_of(
    since: datetime | None, kind: str | None, source_topic: str | None, prefix: str
) -> LetterFilter:
    """The letters the options select; a source topic is the catalogue name (the prefix is
    added) or already the full name.

    >>> selection_of(None, "Validation", "bookings", "t.").source_topic
    't.bookings'
    """
    from schemas import DeadLetterKind
    from streams.operate.dead_letters import LetterFilter

    topic = source_topic
    if source_topic is not None and not (prefix and source_topic.startswith(prefix)):
        topic = f"{prefix}{source_topic}"
    return LetterFilter(
        since=since,
        kind=DeadLetterKind(kind.lower()) if kind else None,
        source_topic=topic,
    )


@click.group("dead-letters")
def dead_letters() -> None:
    """List dead letters, or requeue them to the topic they came from.

    \b
    Examples:
      delaycast dead-letters list --since 2026-11-22T08:00:00Z --kind validation
      delaycast dead-letters list --json --max 10 | jq .error
      delaycast dead-letters requeue --kind processing --dry-run
      delaycast dead-letters requeue --source-topic bookings
    """


_since = click.option("--since", type=ISO_TIME, help="Only letters that failed at/after this time.")
_kind = click.option("--kind", type=KINDS, help="Only letters of this kind.")
_source = click.option(
    "--source-topic",
    help="Only letters from this topic (catalogue name, e.g. bookings; TOPIC_PREFIX is added).",
)


@dead_letters.command("list")
@_since
@_kind
@_source
@click.option("--max", "limit", type=click.IntRange(min=1), help="Print at most N letters.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per letter.")
def list_cmd(
    since: datetime | None,
    kind: str | None,
    source_topic: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Print the dead letters as they are now, one line each, oldest first per partition.

    A line: when it failed, its source topic[partition]@offset, the kind (decode, too_large,
    validation, time_bounds, key_mismatch, processing, undeliverable) and the reason. A count
    goes to stderr at the end.

    \b
    Examples:
      delaycast dead-letters list
      delaycast dead-letters list --since 2026-11-22T08:00:00+01:00 --kind decode --max 20
      delaycast dead-letters list --source-topic bookings --json
    """
    from connectors.kafka import KafkaReadError, RangeReader
    from streams.operate.dead_letters import Listing, letter_line, list_letters
    from streams.settings import get_settings

    settings = get_settings()
    topic = settings.topic("dead-letters")
    selection = selection_of(since, kind, source_topic, settings.topic_prefix)
    listing = Listing()
    try:
        with RangeReader(settings.kafka_bootstrap_servers) as reader:
            for letter in list_letters(reader, topic, selection, limit=limit, listing=listing):
                if as_json:
                    click.echo(letter.model_dump_json())
                else:
                    click.echo(letter_line(letter))
    except KafkaReadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{listing.shown} dead letters listed from {topic}"
        + (f" ({listing.not_matching} others not selected)" if listing.not_matching else "")
        + (f"; {listing.unreadable} unreadable messages skipped" if listing.unreadable else ""),
        err=True,
    )


@dead_letters.command()
@_kind
@_source
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send and commit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def requeue(kind: str | None, source_topic: str | None, dry_run: bool, as_json: bool) -> None:
    """Send each dead letter's original key and value back to its source topic.

    Only the input topics (TOPIC_PREFIX + bookings, TOPIC_PREFIX + actual-delays) are written:
    a letter naming any other topic is refused and counted, never sent.

    It reads with its own consumer group (TOPIC_PREFIX + CONSUMER_GROUP + "-requeue") from
    where the last requeue stopped to the end the topic has now, and commits only after Kafka
    acknowledged what it sent: a second run sends nothing already sent. Letters not selected
    by --kind/--source-topic are passed over for good (a later run will not see them); fix
    the cause first, since a booking that fails again is dead-lettered again.

    \b
    Examples:
      delaycast dead-letters requeue --dry-run
      delaycast dead-letters requeue --kind processing
      delaycast dead-letters requeue --source-topic bookings --json
    """
    from connectors.kafka import BlockingProducer, DeliveryFailed, KafkaReadError, RangeReader
    from connectors.kafka_admin import KafkaAdminError, list_topics
    from streams.operate.cli.progress import Progress
    from streams.operate.dead_letters import letter_line, requeue_ranges, requeueable_topics
    from streams.operate.dead_letters import requeue as run_requeue
    from streams.settings import get_settings

    settings = get_settings()
    bootstrap = settings.kafka_bootstrap_servers
    topic = settings.topic("dead-letters")
    group_id = settings.topic(f"{settings.consumer_group}-requeue")
    selection = selection_of(None, kind, source_topic, settings.topic_prefix)
    allowed = requeueable_topics(settings.topic_prefix)

    def show(letter: DeadLetter, sendable: bool) -> None:
        if dry_run:
            if sendable:
                mark = "would send"
            elif letter.source_topic not in allowed:
                mark = "refused, not an input topic"
            else:
                mark = "topic missing"
            click.echo(f"{mark}: {letter_line(letter)}")

    try:
        existing = set(list_topics(bootstrap))
        producer = None if dry_run else BlockingProducer(bootstrap)
        with RangeReader(bootstrap, group_id=group_id) as reader:
            ranges, _committed = requeue_ranges(reader, topic)
            with Progress("requeue", sum(r.count for r in ranges)) as progress:
                report = run_requeue(
                    reader,
                    producer,
                    topic,
                    ranges,
                    selection,
                    existing_topics=existing,
                    allowed_topics=allowed,
                    on_letter=show,
                    on_batch=progress.update,
                )
    except (KafkaReadError, KafkaAdminError) as exc:
        raise click.ClickException(str(exc)) from None
    except DeliveryFailed as exc:
        raise click.ClickException(
            f"Kafka did not take every requeued record ({exc}); that batch was not committed: "
            "run requeue again"
        ) from None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "group": group_id,
                    "dry_run": dry_run,
                    "examined": report.examined,
                    "sent": dict(report.sent),
                    "total_sent": report.total_sent,
                    "passed_over": report.passed_over,
                    "unreadable": report.unreadable,
                    "missing_topic": dict(report.missing_topic),
                    "refused": dict(report.refused),
                    "truncated": report.truncated,
                    "allowed_topics": sorted(allowed),
                }
            )
        )
        return
    per_topic = ", ".join(f"{t} {n}" for t, n in sorted(report.sent.items())) or "none"
    verb = "would requeue" if dry_run else "requeued"
    click.echo(
        f"{verb} {report.total_sent} of {report.examined} dead letters ({per_topic}); "
        f"{report.passed_over} not selected, {report.unreadable} unreadable"
        + (
            f", {report.truncated} truncated (only their start is kept; read the whole record "
            "at its source offset)"
            if report.truncated
            else ""
        )
        + (
            f", {sum(report.missing_topic.values())} for topics that no longer exist "
            f"({', '.join(sorted(report.missing_topic))})"
            if report.missing_topic
            else ""
        )
        + (
            f", {sum(report.refused.values())} refused: they name topics that are not input "
            f"topics ({', '.join(sorted(report.refused))}); requeue writes only to "
            f"{' and '.join(sorted(allowed))}"
            if report.refused
            else ""
        )
        + ("; dry run, nothing sent or committed" if dry_run else f"; group {group_id} committed")
    )
