"""The order files run in, for the parallel run of `make test`.

`make test` hands whole files to two workers (`--dist loadfile`), in the order collected
(`--no-loadscope-reorder`: pytest-xdist would otherwise send the files with the most tests
first, leaving the slow integration files, which hold few tests each, for the end, when one
worker may still run a two-minute test while the other has nothing left). Here the slow files
go first: the integration tests, then the unit tests, then the modules' docstring examples.
The many short files at the end then even out the two workers' finishing times.
"""

from __future__ import annotations

import pytest


def _rank(item: pytest.Item) -> int:
    path = item.path.as_posix()
    if "/tests/integration/" in path:
        return 0
    if "/tests/" in path:
        return 1
    return 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: the files keep their order within each rank
