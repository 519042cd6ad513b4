"""What the manager needs from each kind of server it can start (Kafka, Redis, PostgreSQL)."""

from __future__ import annotations

from typing import Protocol

from streams.tools.stack.state import ServerRecord

#: The servers of a stack, in the order `up` starts them (`down` goes backwards).
ORDER = ("kafka", "redis", "postgres")


class Server(Protocol):
    """One server of the local stack, started on loopback from files in its own directory."""

    #: "kafka", "redis" or "postgres": the key in state.json.
    name: str
    #: The attribute of ``Endpoints`` this server provides, e.g. "redis_url".
    endpoint_key: str

    def launch(self, previous: ServerRecord | None = None) -> ServerRecord:
        """Pick free ports, start the process and return at once where the server allows it.

        The ports of ``previous`` (the record of this server's last run) come first, so that a
        server that stopped comes back where running clients look for it. The record is what
        ``stop`` needs later; readiness is ``wait_ready``'s job.
        """
        ...

    def wait_ready(self, record: ServerRecord, timeout_s: float) -> None:
        """Block until the server answers (and is provisioned); raise StackError otherwise."""
        ...

    def healthy(self, endpoint: str, timeout_s: float) -> bool:
        """True when the server at ``endpoint`` answers; for ours and for external ones."""
        ...

    def unrecorded(self) -> ServerRecord | None:
        """This stack's server running without a record in state.json (``up`` was killed
        between starting it and recording it), when the server itself leaves proof; else None."""
        ...

    def stop(self, record: ServerRecord) -> bool:
        """Stop the process of ``record`` if it is still the one started; False if it was not."""
        ...
