"""docker-compose.yml checked by the real docker compose (the plugin `make test` fetches)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from streams.tools.stack.compose_tool import compose_binary

REPO = Path(__file__).resolve().parents[2]
LONG_RUNNING = {
    "kafka",
    "kafka-ui",
    "redis",
    "postgres",
    "worker-predict",
    "worker-outcomes",
    "api",
    "ramp",
    "producer",
}
ONE_SHOT = {"migrate", "model"}


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = compose_binary()
    assert binary.is_file(), f"{binary} missing: run `delaycast stack install --for-tests`"
    secrets = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "API_TOKEN"}
    clean = {k: v for k, v in os.environ.items() if k not in secrets}
    return subprocess.run(
        [str(binary), "--project-directory", str(REPO), *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


PASSWORDS = {"POSTGRES_PASSWORD": "change-me", "REDIS_PASSWORD": "redis-pw-7c1e"}


def test_docker_compose_config_accepts_the_file() -> None:
    done = compose("config", "--quiet", env=PASSWORDS)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "REDIS_PASSWORD"])
def test_a_missing_password_fails_fast_and_says_which_variable(missing: str) -> None:
    done = compose("config", "--quiet", env={k: v for k, v in PASSWORDS.items() if k != missing})
    assert done.returncode != 0
    assert missing in done.stderr


def test_every_service_is_there_with_health_checks_and_readable_topics() -> None:
    done = compose("config", "--format", "json", env=PASSWORDS)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT
    for name in {"kafka", "kafka-ui", "redis", "postgres", "api"}:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no"
    for role in ("predict", "outcomes"):
        worker = services[f"worker-{role}"]
        assert worker["command"] == ["worker", "--role", role]
        needs = worker["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["model"]["condition"] == "service_completed_successfully"
        assert needs["kafka"]["condition"] == "service_healthy"
    ui = services["kafka-ui"]["environment"]
    # Keys and JSON values shown as text, which Kafka UI pretty-prints.
    assert ui["KAFKA_CLUSTERS_0_DEFAULTVALUESERDE"] == "String"
    assert ui["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == "kafka:9092"
    api = services["api"]
    assert api["command"] == ["api"]
    assert api["environment"]["API_HOST"] == "0.0.0.0"
    assert [p["target"] for p in api["ports"]] == [8000]
    assert all(p["host_ip"] == "127.0.0.1" for s in services.values() for p in s.get("ports", []))
    assert "--actual-after-s" in services["producer"]["command"]
    assert services["ramp"]["command"][:2] == ["ramp", "run"]
    # The password reaches the apps only through the variable, never a default.
    assert "change-me" in services["worker-outcomes"]["environment"]["DATABASE_URL"]
    # Redis wants its password from every client, and never sees it on a command line.
    for name in ("worker-predict", "worker-outcomes", "api", "producer", "model", "ramp"):
        url = services[name]["environment"]["REDIS_URL"]
        assert url == "redis://:redis-pw-7c1e@redis:6379/0", name
    redis = services["redis"]
    assert "redis-pw-7c1e" not in json.dumps(redis["command"])
    assert "requirepass" in json.dumps(redis["command"])
    assert redis["environment"]["REDISCLI_AUTH"] == "redis-pw-7c1e"
    # Kafka UI browses topics; it cannot produce, delete or reconfigure them.
    assert ui["KAFKA_CLUSTERS_0_READONLY"] == "true"
