"""What every process a worker spawns beside itself (prediction engine, history recorder) does
first."""

from __future__ import annotations

import logging
import signal
import sys


def prepare_helper_process(log_level: str) -> None:
    """Ignore Ctrl-C and log to the worker's stderr, in the worker's format.

    Ctrl-C in a terminal reaches the whole process group: the worker stops in order and then
    stops its helpers (a stop message, or the end of their pipe). SIGTERM ends one at once.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=log_level.upper(),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
        stream=sys.stderr,
    )
