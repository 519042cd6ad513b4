"""Tumbling windows of a fixed number of rows, independent of how rows arrive in batches."""

from __future__ import annotations


def window_segments(filled: int, size: int, rows: int) -> list[tuple[int, int, bool]]:
    """Split ``rows`` new rows into ``(start, end, closes_window)`` slices, given ``filled`` rows
    already in the open window of ``size`` rows. A window therefore always holds the same rows
    whether they came in one batch or many, so alarms do not depend on batching.

    >>> window_segments(filled=900, size=1000, rows=1500)
    [(0, 100, True), (100, 1100, True), (1100, 1500, False)]
    """
    if size < 1 or not 0 <= filled < size:
        raise ValueError("need size >= 1 and 0 <= filled < size")
    out: list[tuple[int, int, bool]] = []
    start = 0
    while start < rows:
        end = min(start + size - filled, rows)
        closes = filled + (end - start) == size
        out.append((start, end, closes))
        filled = 0 if closes else filled + (end - start)
        start = end
    return out
