"""Operating on the dead-letters topic: selecting letters, listing them, requeueing them.

A requeue sends each selected letter's original key and value bytes back to its source topic.
It reads with a consumer group of its own, from the group's committed offsets up to the end the
topic had when it started (letters a running worker adds meanwhile wait for the next run), and
commits a batch's offsets only after Kafka acknowledged every record of it: running it twice
never sends a letter twice, and a crash in between sends a batch again rather than losing it.
Letters that are not selected (``--kind``/``--source-topic``) are passed over for good.

Only the catalogue's input topics (:data:`schemas.topics.INPUT_TOPICS`, with the deployment's
prefix) are ever written: a letter is data from the dead-letters topic, which any client may
write, so the topic it names is not trusted. A letter naming another topic is refused, counted
and passed over.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from connectors.kafka import BlockingProducer, OffsetRange, RangeReader
from schemas import DeadLetter, DeadLetterKind
from schemas.topics import INPUT_TOPICS, topic_name


def requeueable_topics(prefix: str) -> frozenset[str]:
    """The topics a requeue may write to: the catalogue's input topics, with ``prefix``."""
    return frozenset(topic_name(base, prefix) for base in INPUT_TOPICS)


@dataclass(frozen=True)
class LetterFilter:
    """Which letters to select; None selects any."""

    since: datetime | None = None
    kind: DeadLetterKind | None = None
    source_topic: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (self.since is None or letter.failed_at >= self.since)
            and (self.kind is None or letter.kind is self.kind)
            and (self.source_topic is None or letter.source_topic == self.source_topic)
        )


def parse_letter(value: bytes | None) -> DeadLetter | None:
    """The letter in a dead-letters message, or None when it is not one."""
    if not value:
        return None
    try:
        return DeadLetter.model_validate_json(value)
    except ValidationError:
        return None


def letter_line(letter: DeadLetter, *, width: int = 200) -> str:
    """One line: when it failed, where it came from, what kind, why."""
    reason = " ".join(letter.error.split())
    if len(reason) > width:
        reason = reason[: width - 1] + "…"
    source = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
    return f"{letter.failed_at.isoformat()}  {source}  {letter.kind.value:<10}  {reason}"


@dataclass
class Listing:
    shown: int = 0
    not_matching: int = 0
    unreadable: int = 0


def list_letters(
    reader: RangeReader,
    topic: str,
    selection: LetterFilter,
    *,
    limit: int | None,
    listing: Listing,
) -> Iterator[DeadLetter]:
    """The selected letters of ``topic`` as it is now, oldest first per partition, at most
    ``limit``; ``listing`` counts what was shown and skipped."""
    marks = reader.watermarks(topic)
    starts: dict[int, int] = {}
    if selection.since is not None:
        # A letter's Kafka timestamp is its production time, at or after its failed_at.
        at_ms = int(selection.since.timestamp() * 1000)
        starts = reader.offsets_for_time(topic, sorted(marks), at_ms)
    ranges = []
    for p, (low, high) in sorted(marks.items()):
        start = starts.get(p, low)
        ranges.append(OffsetRange(p, high if start < 0 else max(start, low), high))
    batches = reader.read(topic, ranges)
    try:
        for batch in batches:
            for message in batch:
                letter = parse_letter(message.value())
                if letter is None:
                    listing.unreadable += 1
                elif not selection.matches(letter):
                    listing.not_matching += 1
                else:
                    listing.shown += 1
                    yield letter
                    if limit is not None and listing.shown >= limit:
                        return
    finally:
        batches.close()


@dataclass
class RequeueReport:
    sent: Counter[str] = field(default_factory=Counter)  # per source topic
    passed_over: int = 0  # not selected
    unreadable: int = 0
    missing_topic: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # per named topic, not an input topic
    truncated: int = 0  # only the start of the original is kept: never sent back
    examined: int = 0

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())


def requeue_ranges(
    reader: RangeReader, topic: str
) -> tuple[list[OffsetRange], dict[int, int | None]]:
    """From the group's committed offset (the oldest letter when none) to the end, per
    partition; and the committed offsets themselves."""
    marks = reader.watermarks(topic)
    committed = reader.committed(topic, sorted(marks))
    ranges = []
    for p, (low, high) in sorted(marks.items()):
        start = committed.get(p)
        ranges.append(OffsetRange(p, low if start is None else min(max(start, low), high), high))
    return ranges, committed


def requeue(
    reader: RangeReader,
    producer: BlockingProducer | None,
    topic: str,
    ranges: list[OffsetRange],
    selection: LetterFilter,
    *,
    existing_topics: set[str],
    allowed_topics: frozenset[str],
    on_letter: Callable[[DeadLetter, bool], None] = lambda _l, _s: None,
    on_batch: Callable[[int], None] = lambda _: None,
    batch_size: int = 500,
) -> RequeueReport:
    """Send the selected letters of ``ranges`` back to their source topics and commit.

    Only topics in ``allowed_topics`` (:func:`requeueable_topics`) are written; a selected
    letter naming another is counted in ``refused`` and passed over.

    ``producer`` None is a dry run: nothing sent, nothing committed. ``on_letter(letter, sent)``
    is told of each selected letter. Raises DeliveryFailed (nothing of that batch committed)
    or KafkaReadError.
    """
    report = RequeueReport()
    batches = reader.read(topic, ranges, max_batch=batch_size)
    try:
        for batch in batches:
            next_offsets: dict[int, int] = {}
            for message in batch:
                _route(
                    message, producer, selection, existing_topics, allowed_topics, report, on_letter
                )
                partition, offset = message.partition(), message.offset()
                if partition is not None and offset is not None:
                    next_offsets[partition] = offset + 1
            report.examined += len(batch)
            if producer is not None:
                producer.flush()  # raises when any record was not acknowledged
                reader.commit(topic, next_offsets)
            on_batch(len(batch))
    finally:
        batches.close()
    return report


def _route(
    message: Any,
    producer: BlockingProducer | None,
    selection: LetterFilter,
    existing_topics: set[str],
    allowed_topics: frozenset[str],
    report: RequeueReport,
    on_letter: Callable[[DeadLetter, bool], None],
) -> None:
    letter = parse_letter(message.value())
    if letter is None:
        report.unreadable += 1
    elif not selection.matches(letter):
        report.passed_over += 1
    elif letter.source_topic not in allowed_topics:
        report.refused[letter.source_topic] += 1
        on_letter(letter, False)
    elif letter.truncated:  # its bytes are a cut-off start: sending them would fail again
        report.truncated += 1
        on_letter(letter, False)
    elif letter.source_topic not in existing_topics:
        report.missing_topic[letter.source_topic] += 1
        on_letter(letter, False)
    else:
        if producer is not None:
            producer.send(letter.source_topic, letter.source_key, letter.original_value)
        report.sent[letter.source_topic] += 1
        on_letter(letter, True)
