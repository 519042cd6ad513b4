"""A single-node Apache Kafka in KRaft mode (broker and controller in one JVM) on loopback.

Files under its directory: ``server.properties`` (rewritten at each start, ports may change),
``log4j.properties``, ``data/`` (the log dirs, formatted once), ``logs/server.log`` (the broker's
log) and ``kafka.out`` (JVM output before logging starts, e.g. a bad heap option).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from streams.tools.stack.errors import StackError
from streams.tools.stack.health import kafka_healthy, log_size, wait_healthy
from streams.tools.stack.kafka_jars import ensure_kafka_libs, project_kafka_dir
from streams.tools.stack.ports import HOST, pick_port
from streams.tools.stack.process import owns, ref_for, spawn_detached, terminate
from streams.tools.stack.state import ServerRecord

NODE_ID = 1


def new_cluster_id() -> str:
    """A random cluster id in Kafka's format: 16 bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Kafka rejects ids that start with "-" (they read as command-line options).
        if not text.startswith("-"):
            return text


def server_properties(*, port: int, controller_port: int, data: Path, partitions: int) -> str:
    return "\n".join(
        [
            "# Written by `delaycast stack up`; edits are lost at the next start.",
            "process.roles=broker,controller",
            f"node.id={NODE_ID}",
            f"controller.quorum.voters={NODE_ID}@{HOST}:{controller_port}",
            f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data}",
            # Topics created implicitly by a client get the configured count, so joins stay
            # co-partitioned even then.
            f"num.partitions={partitions}",
            # One broker: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            # Fewer internal partitions than the default 50: the first consumer group and the
            # first transaction of a test run do not wait for 50 partitions to be created.
            "offsets.topic.num.partitions=10",
            "transaction.state.log.num.partitions=10",
            # Workers and tests join their group at once instead of after 3 s.
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


def find_java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise StackError("java (17 or newer) is needed for Kafka; install openjdk-17-jre-headless")
    return java


class KafkaServer:
    name = "kafka"
    endpoint_key = "kafka_bootstrap_servers"

    def __init__(
        self,
        directory: Path,
        *,
        libs: Path,
        port: int,
        controller_port: int,
        partitions: int,
        heap: str = "768m",
    ) -> None:
        self.dir = directory
        self.libs = libs
        self.port = port
        self.controller_port = controller_port
        self.partitions = partitions
        self.heap = heap
        self.logs = [directory / "logs" / "server.log", directory / "kafka.out"]
        self._log_marks: dict[Path, int] = {}

    def _java(self, java: str, main: str, *args: str) -> list[str]:
        logs = self.dir / "logs"
        return [
            java,
            "-Xms128m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={logs}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def launch(self, previous: ServerRecord | None = None) -> ServerRecord:
        ensure_kafka_libs(self.libs)
        java = find_java()
        port = pick_port(previous.port if previous and previous.port else self.port)
        controller_port = pick_port(
            previous.controller_port
            if previous and previous.controller_port
            else self.controller_port,
            avoid={port},
        )
        data = self.dir / "data"
        for d in (self.dir, data, self.dir / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project_kafka_dir() / "log4j.properties", self.dir / "log4j.properties")
        props = self.dir / "server.properties"
        props.write_text(
            server_properties(
                port=port, controller_port=controller_port, data=data, partitions=self.partitions
            )
        )
        if not (data / "meta.properties").is_file():
            self._format(java, props)
        self._log_marks = {path: log_size(path) for path in self.logs}
        pid = spawn_detached(
            self._java(java, "kafka.Kafka", str(props)),
            cwd=self.dir,
            log_file=self.dir / "kafka.out",
        )
        return ServerRecord(
            name=self.name,
            managed=True,
            endpoint=f"{HOST}:{port}",
            port=port,
            controller_port=controller_port,
            process=ref_for(pid, self.dir),
            data_dir=data,
            log_file=self.dir / "logs" / "server.log",
        )

    def _format(self, java: str, props: Path) -> None:
        cmd = self._java(
            java,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            new_cluster_id(),
            "--config",
            str(props),
            "--ignore-formatted",
        )
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-3000:]
            raise StackError(f"formatting Kafka storage in {self.dir / 'data'} failed:\n{output}")

    def wait_ready(self, record: ServerRecord, timeout_s: float) -> None:
        ref = record.process
        wait_healthy(
            self.name,
            lambda: self.healthy(record.endpoint, 3.0),
            timeout_s=timeout_s,
            alive=lambda: ref is not None and owns(ref),
            log_files={path: self._log_marks.get(path, 0) for path in self.logs},
        )

    def healthy(self, endpoint: str, timeout_s: float) -> bool:
        return kafka_healthy(endpoint, timeout_s)

    def unrecorded(self) -> ServerRecord | None:
        # Started and recorded within milliseconds; there is no PID file to recover from.
        return None

    def stop(self, record: ServerRecord) -> bool:
        # A controlled shutdown of one node takes a few seconds; give it time before SIGKILL.
        return record.process is not None and terminate(record.process, grace_s=30.0)
