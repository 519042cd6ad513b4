"""Bringing the local stack up and down, and telling how it is.

``StackManager(home).up()`` starts what is not running (Kafka, Redis, PostgreSQL on loopback),
reuses what is, waits until each answers, creates delaycast's topics and writes the endpoints file
that ``streams.settings`` reads. ``down()`` stops exactly the processes recorded in
``state.json`` that are still the ones it started. Servers named by the environment
(``External``) are checked and used, never started or stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator
from pathlib import Path

from connectors.kafka_admin import ensure_topics
from schemas.topics import TOPICS, topic_name
from streams import settings as _settings
from streams.tools.stack.config import External, Ports
from streams.tools.stack.endpoints import ENV_NAMES, Endpoints, redact_url
from streams.tools.stack.errors import StackError
from streams.tools.stack.kafka_jars import default_libs_dir
from streams.tools.stack.kafka_server import KafkaServer
from streams.tools.stack.paths import StackPaths
from streams.tools.stack.postgres_server import PostgresServer
from streams.tools.stack.process import owns
from streams.tools.stack.redis_server import RedisServer
from streams.tools.stack.results import ServerStatus, UpResult
from streams.tools.stack.server import ORDER, Server
from streams.tools.stack.state import ServerRecord, StackState, load_state, save_state

DEFAULT_PARTITIONS: int = _settings.Settings.model_fields["topic_partitions"].default


class StackManager:
    """The local stack living in ``home/stack``.

    ``ports`` are preferences; ``external`` names servers to use instead of starting them.
    Topics are named ``topic_prefix + base`` for every topic of ``schemas.topics.TOPICS``.
    Several managers with different homes can run side by side (they pick different ports).
    """

    def __init__(
        self,
        home: Path,
        *,
        ports: Ports | None = None,
        external: External | None = None,
        topic_prefix: str = "",
        topic_partitions: int = DEFAULT_PARTITIONS,
        kafka_libs: Path | None = None,
        kafka_heap: str = "768m",
        start_timeout_s: float = 120.0,
    ) -> None:
        self.paths = StackPaths(home.resolve())
        self.ports = ports or Ports()
        self.external = external or External()
        self.topic_prefix = topic_prefix
        self.topic_partitions = topic_partitions
        self.start_timeout_s = start_timeout_s
        root = self.paths
        self.servers: dict[str, Server] = {
            "kafka": KafkaServer(
                root.server_dir("kafka"),
                libs=kafka_libs or default_libs_dir(),
                port=self.ports.kafka,
                controller_port=self.ports.kafka_controller,
                partitions=topic_partitions,
                heap=kafka_heap,
            ),
            "redis": RedisServer(root.server_dir("redis"), port=self.ports.redis),
            "postgres": PostgresServer(root.server_dir("postgres"), port=self.ports.postgres),
        }

    @classmethod
    def from_environment(cls) -> StackManager:
        """The stack of DELAYCAST_HOME, honouring KAFKA_BOOTSTRAP_SERVERS, REDIS_URL,
        DATABASE_URL, TOPIC_PREFIX and TOPIC_PARTITIONS."""
        settings = _settings.load_settings()
        return cls(
            _settings.delaycast_home(),
            external=External.from_environ(),
            topic_prefix=settings.topic_prefix,
            topic_partitions=settings.topic_partitions,
        )

    @property
    def topic_names(self) -> list[str]:
        return [topic_name(spec.name, self.topic_prefix) for spec in TOPICS]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `up`s at once on one home would start two of everything.
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with self.paths.lock_file.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def up(self) -> UpResult:
        """Start or reuse every server, wait until healthy, create the topics.

        On any failure, the servers this call started are stopped again and StackError says
        which log to read; servers an earlier ``up`` started are left running.
        """
        with self._locked():
            state = before = load_state(self.paths.state_file)
            launched: list[str] = []
            reused: list[str] = []
            external: list[str] = []
            urls: dict[str, str] = {}
            try:
                for name in ORDER:
                    record, how = self._bring_up(self.servers[name], state.servers.get(name))
                    {"started": launched, "reused": reused, "external": external}[how].append(name)
                    urls[self.servers[name].endpoint_key] = (
                        self.external.get(self.servers[name].endpoint_key) or record.endpoint
                    )
                    state = state.with_server(record)
                    # Saved before waiting, so that `down` finds a server that hangs.
                    save_state(self.paths.state_file, state)
                for name in (*launched, *reused):
                    self.servers[name].wait_ready(state.servers[name], self.start_timeout_s)
                endpoints = Endpoints(**urls)
                topics = ensure_topics(
                    endpoints.kafka_bootstrap_servers, self.topic_names, self.topic_partitions
                )
                endpoints.write(self.paths.endpoints_file)
            except BaseException:
                self._stop_launched(state, launched)
                save_state(self.paths.state_file, before)
                raise
            return UpResult(
                endpoints=endpoints,
                records=dict(state.servers),
                started=tuple(launched),
                reused=tuple(reused),
                external=tuple(external),
                topics=topics,
            )

    def _bring_up(self, server: Server, old: ServerRecord | None) -> tuple[ServerRecord, str]:
        env_name = ENV_NAMES[server.endpoint_key]
        given = self.external.get(server.endpoint_key)
        ours_running = (
            old is not None and old.managed and old.process is not None and owns(old.process)
        )
        if given:
            if ours_running:
                raise StackError(
                    f"{server.name} of this stack is running, but {env_name} names another "
                    f"server; run `delaycast stack down` first, or unset {env_name}"
                )
            if not server.healthy(given, 5.0):
                raise StackError(f"{env_name}={redact_url(given)} does not answer")
            return ServerRecord(server.name, managed=False, endpoint=redact_url(given)), "external"
        if ours_running:
            assert old is not None
            return old, "reused"
        found = server.unrecorded()
        if found is not None:
            return found, "reused"
        return server.launch(old if old is not None and old.managed else None), "started"

    def _stop_launched(self, state: StackState, launched: list[str]) -> None:
        for name in reversed(launched):
            # Best effort: the original error is the one to report.
            with contextlib.suppress(Exception):
                self.servers[name].stop(state.servers[name])

    def down(self, only: Iterable[str] | None = None) -> list[str]:
        """Stop the servers ``up`` started (or those in ``only``); return the names stopped.

        A recorded PID that is no longer the process started (it exited, or the number was
        reused) is forgotten without being signalled.
        """
        names = set(ORDER if only is None else only)
        with self._locked():
            state = load_state(self.paths.state_file)
            stopped = []
            for name in reversed(ORDER):
                if name not in names:
                    continue
                record = state.servers.get(name) or self.servers[name].unrecorded()
                if record is None:
                    continue
                if record.managed and self.servers[name].stop(record):
                    stopped.append(name)
                state = state.without(name)
            if not state.managed():
                # Nothing of ours is left: forget the external servers too.
                state = StackState()
                self.paths.endpoints_file.unlink(missing_ok=True)
            save_state(self.paths.state_file, state)
            return stopped

    def endpoints(self) -> Endpoints | None:
        """The endpoints of the running stack, or None when ``up`` has not run (or ``down`` has)."""
        return Endpoints.read(self.paths.endpoints_file)

    def status(self) -> list[ServerStatus]:
        """One status per server, checking each process and asking each server to answer."""
        state = load_state(self.paths.state_file)
        endpoints = self.endpoints()
        out = []
        for name in ORDER:
            server = self.servers[name]
            record = state.servers.get(name)
            if record is None:
                out.append(ServerStatus(name, managed=True, running=False, healthy=False))
            elif not record.managed:
                url = getattr(endpoints, server.endpoint_key) if endpoints else None
                healthy = bool(url) and server.healthy(str(url), 3.0)
                out.append(ServerStatus(name, False, healthy, healthy, endpoint=record.endpoint))
            else:
                running = record.process is not None and owns(record.process)
                out.append(
                    ServerStatus(
                        name,
                        managed=True,
                        running=running,
                        healthy=running and server.healthy(record.endpoint, 3.0),
                        endpoint=record.endpoint,
                        port=record.port,
                        pid=record.process.pid if record.process else None,
                        log_file=record.log_file,
                    )
                )
        return out
