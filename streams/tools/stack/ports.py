"""Choosing loopback ports for the stack's servers.

The preferred port is used when it is free; otherwise the next free ones above it are tried, so a
second stack (another checkout, the test stack) lands on predictable ports near the defaults.
There is a window between the check and the server binding the port; a server that then fails to
bind says so in its log, and ``stack up`` reports that log.
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from pathlib import Path

HOST = "127.0.0.1"
_SEARCH_SPAN = 200


def is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` and it can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections of a stopped server lingering in TIME_WAIT must not
        # push a restarted stack onto other ports. A listener still makes the bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return not is_listening(port, host)


def is_listening(port: int, host: str = HOST, timeout_s: float = 0.2) -> bool:
    """True when a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def ephemeral_ports() -> range:
    """The ports the system hands out to outgoing connections and to binds on port 0 (Linux's
    ip_local_port_range; its usual default when that cannot be read)."""
    try:
        low, high = (
            int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        )
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def pick_stable_port(seed: int, *, avoid: Collection[int] = ()) -> int:
    """A free port below the ephemeral range, from ``seed``, for a server that is stopped and
    started again on the same port (a fault test): while it is down, no outgoing connection
    and no bind on port 0 can be handed its port, so it finds the port free when it comes back.
    """
    ephemeral = ephemeral_ports()
    low, high = 10_000, max(10_001, min(ephemeral.start, 65_536) - _SEARCH_SPAN)
    preferred = low + seed % (high - low)
    port = pick_port(preferred, avoid=avoid)
    if port in ephemeral:
        raise RuntimeError(f"no free port between {preferred} and {ephemeral.start}")
    return port


def any_free_port(host: str = HOST) -> int:
    """A port the system says is free on ``host`` right now (for a server about to start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pick_port(preferred: int, *, avoid: Collection[int] = ()) -> int:
    """``preferred`` if free, else the first free port above it, else any free port."""
    for port in range(preferred, min(preferred + _SEARCH_SPAN, 65536)):
        if port not in avoid and is_free(port):
            return port
    while True:
        port = any_free_port()
        if port not in avoid:
            return port
