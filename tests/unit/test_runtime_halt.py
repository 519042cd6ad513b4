"""A batch that must not be committed ends the worker at once, with its own exit code and the
reason in the log (run in a child interpreter: halting ends the process)."""

from __future__ import annotations

import subprocess
import sys

from streams.worker.runtime import EXIT_HALTED


def test_halting_exits_at_once_with_its_code_and_says_why():
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level='INFO', stream=sys.stderr)\n"
        "from streams.worker.runtime import Runtime\n"
        "Runtime.halt('a join batch of 3 events failed', ValueError('boom'))\n"
        "print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == EXIT_HALTED == 70
    assert "still running" not in done.stdout
    assert (
        "a join batch of 3 events failed: ValueError('boom'); the worker exits now" in done.stderr
    )
