"""Offset ranges of a topic's partitions: which offsets a replay or a listing reads.

Pure code: the offsets come from :class:`connectors.kafka.reader.RangeReader`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NO_OFFSET = -1  # what offsets_for_times answers when no message is at or after the time


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """Offsets ``start`` (included) to ``end`` (excluded) of one partition."""

    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


Watermarks = Mapping[int, tuple[int, int]]  # partition -> (low, high): first and next offset


def ranges_between_times(
    watermarks: Watermarks,
    since: Mapping[int, int],
    until: Mapping[int, int] | None,
) -> list[OffsetRange]:
    """Per partition, from the first offset at/after the start time to the first offset at/after
    the end time (``until`` None: to the partition's end).

    ``since`` and ``until`` are what offsets_for_times answered per partition; -1 (no message
    that late) means the partition's end.

    >>> ranges_between_times({0: (0, 10), 1: (5, 8)}, {0: 3, 1: -1}, {0: 7, 1: -1})
    [OffsetRange(partition=0, start=3, end=7), OffsetRange(partition=1, start=8, end=8)]
    """
    ranges = []
    for partition, (low, high) in sorted(watermarks.items()):
        start = _within(since.get(partition, NO_OFFSET), low, high)
        end = high if until is None else _within(until.get(partition, NO_OFFSET), low, high)
        ranges.append(OffsetRange(partition, start, max(start, end)))
    return ranges


def _within(offset: int, low: int, high: int) -> int:
    if offset < 0:
        return high
    return min(max(offset, low), high)


def range_of_offsets(watermarks: Watermarks, partition: int, first: int, last: int) -> OffsetRange:
    """The offsets ``first`` to ``last`` (both included) of ``partition``.

    Raises ValueError saying what is wrong when the partition does not exist or the offsets are
    not all in it.

    >>> range_of_offsets({0: (0, 10)}, 0, 2, 4)
    OffsetRange(partition=0, start=2, end=5)
    """
    if partition not in watermarks:
        known = ", ".join(str(p) for p in sorted(watermarks))
        raise ValueError(f"partition {partition} does not exist; the topic has {known}")
    if last < first:
        raise ValueError(f"the last offset ({last}) is before the first ({first})")
    low, high = watermarks[partition]
    if high == low:
        raise ValueError(f"partition {partition} is empty (next offset {high})")
    if first < low or last >= high:
        raise ValueError(
            f"partition {partition} holds offsets {low} to {high - 1}; "
            f"{first} to {last} is not within them"
        )
    return OffsetRange(partition, first, last + 1)


def describe_ranges(topic: str, ranges: list[OffsetRange]) -> list[str]:
    """One line per partition, for ``--dry-run`` and logs."""
    return [
        f"{topic}[{r.partition}] offsets {r.start} to {r.end - 1} ({r.count} messages)"
        if r.count
        else f"{topic}[{r.partition}] nothing (next offset {r.start})"
        for r in ranges
    ]
