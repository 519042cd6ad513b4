"""Where a local PostgreSQL cluster lives when its own OS user runs it (no servers)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.tools.stack.postgres_server import cluster_dir, others_may_enter


@pytest.fixture
def open_home() -> Iterator[Path]:
    """A directory every user may enter, under the system's temporary directory (pytest's own
    is for its owner only)."""
    home = Path(tempfile.mkdtemp(prefix="delaycast-open-"))
    home.chmod(0o755)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_directory_others_may_enter_keeps_its_cluster(open_home: Path, tmp_path: Path) -> None:
    directory = open_home / ".delaycast" / "stack" / "postgres"  # not made yet
    assert others_may_enter(directory.parent)
    assert cluster_dir(directory, tmp_path / "outside") == directory


def test_a_home_only_its_owner_may_enter_puts_the_cluster_outside_the_same_each_time(
    tmp_path: Path,
) -> None:
    private = tmp_path / "home"
    private.mkdir()
    private.chmod(0o700)
    directory = private / "clone" / ".delaycast" / "stack" / "postgres"
    outside = tmp_path / "outside"
    assert not others_may_enter(directory.parent)
    chosen = cluster_dir(directory, outside)
    assert chosen.parent == outside and len(chosen.name) == 16
    assert cluster_dir(directory, outside) == chosen  # the next start finds it again
    other = private / "other-clone" / ".delaycast" / "stack" / "postgres"
    assert cluster_dir(other, outside) != chosen  # one cluster per stack
