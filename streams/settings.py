"""The one settings object of delaycast, read from the environment once.

Every variable is documented in the README and in ``.env.example``. Where KAFKA_BOOTSTRAP_SERVERS,
REDIS_URL or DATABASE_URL is not set, the endpoints of the stack started by ``delaycast stack up``
(recorded in ``$DELAYCAST_HOME/stack/endpoints.json``) are used, then the stack's default ports.
Only the wiring code in ``streams/`` reads settings; connectors and models take plain arguments.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from models.area import ServiceArea
from schemas.bounds import TimeBounds
from streams.decode import Contract

DEFAULT_KAFKA = "127.0.0.1:19092"
MIN_API_TOKEN_CHARS = 32
DEFAULT_REDIS = "redis://127.0.0.1:16379/0"
DEFAULT_DATABASE = "postgresql+psycopg2://delaycast@127.0.0.1:15432/delaycast"


class WeatherProvider(StrEnum):
    OPENWEATHER = "openweather"
    RECORDED = "recorded"
    DEFAULT = "default"


class WorkerRole(StrEnum):
    """Which agents a worker runs: all of them, or one path in processes of its own."""

    ALL = "all"  # predict, join and record in one process
    PREDICT = "predict"  # bookings -> predictions only
    OUTCOMES = "outcomes"  # the join, the history recorder, alerts and drift


class PredictEngine(StrEnum):
    """Where a predict worker computes its batches (see :mod:`streams.predict.engine`)."""

    PROCESS = "process"  # an engine process next to the worker: a second core
    INLINE = "inline"  # the worker's own event loop


def delaycast_home() -> Path:
    """Where the stack, models and caches live: DELAYCAST_HOME, else ``./.delaycast``."""
    return Path(os.environ.get("DELAYCAST_HOME", ".delaycast")).resolve()


def stack_endpoints_file(home: Path | None = None) -> Path:
    return (home or delaycast_home()) / "stack" / "endpoints.json"


class _StackEndpoints(PydanticBaseSettingsSource):
    """Endpoints of a running ``delaycast stack``; weaker than the environment."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = stack_endpoints_file()
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        keys = ("kafka_bootstrap_servers", "redis_url", "database_url")
        return {k: data[k] for k in keys if isinstance(data.get(k), str)}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        hide_input_in_errors=True,  # a secret given in the environment is never echoed
        frozen=True,
        case_sensitive=False,
        extra="ignore",
        env_ignore_empty=True,
    )

    # Servers
    kafka_bootstrap_servers: str = DEFAULT_KAFKA
    redis_url: SecretStr = SecretStr(DEFAULT_REDIS)
    database_url: SecretStr = SecretStr(DEFAULT_DATABASE)

    # Topics
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    topic_partitions: int = Field(default=4, ge=1, le=256)
    consumer_group: str = Field(default="delaycast", min_length=1)
    consumer_session_timeout_s: float = Field(
        default=10.0, ge=3, le=300, description="How soon a dead worker's partitions move."
    )
    worker_instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="A name of this worker that stays the same across its restarts (the pod's, "
        "the host's): Kafka's static membership, so a worker back within "
        "CONSUMER_SESSION_TIMEOUT_S gets its partitions again without a rebalance.",
    )

    # Routing flags: the initial values written to Redis when it has none yet.
    ml_enabled: bool = False
    ml_traffic_percentage: float = Field(default=0.0, ge=0, le=100)
    ml_hash_salt: str = Field(default="delaycast-v1", min_length=1, max_length=64)
    flags_poll_interval_s: float = Field(default=0.2, gt=0, le=5)
    flags_redis_key: str = "delaycast:flags"
    p90_tracking_rate: float = Field(
        default=0.005,
        ge=0,
        le=0.1,
        description="How fast the served P90 follows its misses (per outcome); 0 turns the "
        "online tracking off and serves the calibrated P90.",
    )
    p90_tracking_redis_key: str = "delaycast:p90-tracking"

    # Models
    model_dir: Path = Field(default_factory=lambda: delaycast_home() / "models")
    risk_medium_minutes: float = Field(default=5.0, ge=0)
    risk_high_minutes: float = Field(default=15.0, ge=0)
    # A booking is at a risk level when its chance of a delay beyond that level's threshold
    # reaches this (models.risk); used where the model's interval is calibrated.
    # Within the calibrated levels (0.05-0.95), beyond which a chance is not known.
    risk_probability: float = Field(default=0.3, gt=0.05, lt=0.95)
    # The service area (models.area): local time and the distance to the centre are computed
    # here; a model trained for another area is not served.
    service_area_timezone: str = Field(default="Europe/Zurich", min_length=1)
    service_area_center_lat: float = Field(default=46.2044, ge=-90, le=90)
    service_area_center_lon: float = Field(default=6.1432, ge=-180, le=180)
    service_area_radius_km: float = Field(default=30.0, gt=0, le=20_000)

    # Weather
    weather_provider: WeatherProvider = WeatherProvider.OPENWEATHER
    openweather_api_key: SecretStr | None = None
    openweather_url: str = "https://api.openweathermap.org/data/2.5/weather"
    weather_history_csv: Path | None = None
    weather_timeout_s: float = Field(default=2.0, gt=0, le=30)
    weather_retries: int = Field(default=2, ge=0, le=5)
    weather_cache_ttl_s: float = Field(default=1800.0, gt=0)
    weather_failure_ttl_s: float = Field(default=60.0, gt=0)
    weather_cell_deg: float = Field(default=0.05, gt=0, le=1)
    weather_breaker_failures: int = Field(default=5, ge=1)
    weather_breaker_reset_s: float = Field(default=30.0, gt=0)
    weather_wait_ms: float = Field(
        default=250.0, ge=0, le=5000, description="How long a batch waits for weather."
    )

    # Input contract (streams/decode.py, schemas/bounds.py): what a record must meet.
    event_max_bytes: int = Field(
        default=64 * 1024, ge=1024, le=1024 * 1024, description="Larger values are refused."
    )
    event_clock_skew_s: float = Field(
        default=300.0, ge=0, le=3600, description="How far ahead a producer's clock may run."
    )
    event_max_age_days: float = Field(
        default=30.0, gt=0, le=366, description="How old an event may be when published."
    )

    # Outcome path
    join_horizon_days: float = Field(
        default=7.0, gt=0, le=90, description="Unmatched entries expire."
    )
    join_done_retention_minutes: float = Field(
        default=5.0,
        gt=0,
        le=7 * 24 * 60,
        description="A joined booking is remembered this long (wall-clock time) to count its "
        "duplicates once; pending entries wait JOIN_HORIZON_DAYS (event time).",
    )
    join_sweep_interval_s: float = Field(default=60.0, gt=0)
    mae_alert_minutes: float = Field(
        default=3.0, gt=0, description="Alert when an arm's MAE exceeds it."
    )
    coverage_alert_low: float = Field(
        default=0.85, ge=0, lt=1, description="Alert when an arm's P90 coverage falls below it."
    )
    coverage_alert_high: float = Field(
        default=0.95, gt=0, le=1, description="Alert when an arm's P90 coverage rises above it."
    )
    alert_window: int = Field(
        default=200, ge=20, le=100_000, description="Events per alert window."
    )
    coverage_alert_window: int = Field(
        default=1000,
        ge=20,
        le=100_000,
        description="Outcomes with a P90 per window of the interval_coverage alert.",
    )
    ml_error_rate_alert: float = Field(default=0.2, gt=0, le=1)
    fallback_storm_share: float = Field(default=0.5, gt=0, le=1)
    recorder_max_poll_interval_s: float = Field(
        default=300.0,
        ge=10,
        le=3600,
        description="How long the recorder may wait (for PostgreSQL, say) between two reads "
        "before Kafka gives its partitions to another member; it rejoins afterwards.",
    )
    alert_webhook_url: SecretStr | None = None
    alert_webhook_timeout_s: float = Field(default=3.0, gt=0, le=30)
    ab_min_samples: int = Field(default=200, ge=10)
    ab_interval_s: float = Field(default=60.0, gt=0)
    shadow_enabled: bool = Field(
        default=True,
        description="Score the challenger (delaycast retrain) in shadow on every booking.",
    )
    shadow_wait_ms: float = Field(
        default=50.0,
        gt=0,
        le=5000,
        description="How long a batch waits for the challenger once the champion answered; "
        "a later answer is dropped, and batches while it still scores go without a shadow.",
    )
    label_wait_minutes: float = Field(
        default=30.0,
        ge=0,
        le=7 * 24 * 60,
        description="An actual delay is due this long after the booking's scheduled pickup.",
    )
    label_coverage_target: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Alert when an arm's share of due actuals that arrived falls below it.",
    )
    label_coverage_hours: float = Field(
        default=1.0,
        gt=0,
        le=168,
        description="The span of due pickups the label_coverage alert looks at.",
    )
    label_coverage_min_due: int = Field(default=100, ge=1)

    # Monitoring API (``delaycast api``); without API_TOKEN its POST endpoints are disabled.
    pipeline_sample_s: float = Field(
        default=5.0, ge=0.5, le=60, description="How often the API samples /metrics."
    )
    pipeline_stall_s: float = Field(
        default=30.0,
        ge=5,
        le=600,
        description="How long a group's lag must grow at every sample to be called stalled "
        "(its path making nothing) or lagging.",
    )
    api_host: str = Field(default="127.0.0.1", min_length=1)
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_token: SecretStr | None = Field(
        default=None,
        description=f"Bearer token for flag changes; at least {MIN_API_TOKEN_CHARS} characters.",
    )
    api_read_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the API's reads (all but /api/health); none: open.",
    )
    api_allowed_hosts: str = Field(
        default="localhost,127.0.0.1,::1",
        min_length=1,
        description="Comma-separated host names the API answers to (the Host header, port "
        "aside); '*' answers any. API_HOST is added when it is an address of its own.",
    )
    api_max_body_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=10 * 1024 * 1024,
        description="Largest request body the API reads; larger ones get 413.",
    )

    # Agent
    worker_role: WorkerRole = WorkerRole.ALL
    predict_engine: PredictEngine = Field(
        default=PredictEngine.PROCESS,
        description="Where predictions are computed: a process next to the worker's, or inline.",
    )
    predict_engine_start_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=600,
        description="How long an engine process may take to get ready; the worker predicts "
        "in its own process meanwhile if it does not.",
    )
    batch_max: int = Field(default=500, ge=1, le=50_000)
    batch_within_s: float = Field(default=0.05, gt=0, le=10)
    worker_threads: int = Field(default=4, ge=1, le=64)
    log_level: str = Field(default="info", pattern=r"^(?i:debug|info|warning|error)$")

    @field_validator("api_token", "api_read_token", mode="after")
    @classmethod
    def _token(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _checked_token(str(info.field_name).upper(), token)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.risk_high_minutes < self.risk_medium_minutes:
            raise ValueError("RISK_HIGH_MINUTES must be >= RISK_MEDIUM_MINUTES")
        if self.coverage_alert_low >= self.coverage_alert_high:
            raise ValueError("COVERAGE_ALERT_LOW must be below COVERAGE_ALERT_HIGH")
        if self.pipeline_stall_s < 2 * self.pipeline_sample_s:
            raise ValueError(
                "PIPELINE_STALL_S must span at least two PIPELINE_SAMPLE_S (a growth is seen "
                "between samples)"
            )
        if self.recorder_max_poll_interval_s < self.consumer_session_timeout_s:
            raise ValueError(
                "RECORDER_MAX_POLL_INTERVAL_S must be >= CONSUMER_SESSION_TIMEOUT_S (Kafka's rule)"
            )
        try:
            self.service_area  # noqa: B018 (validates the timezone name)
        except ValueError as exc:
            raise ValueError(f"SERVICE_AREA_TIMEZONE: {exc}") from None
        if self.weather_provider is WeatherProvider.RECORDED and self.weather_history_csv is None:
            raise ValueError("WEATHER_PROVIDER=recorded needs WEATHER_HISTORY_CSV")
        if not self.allowed_hosts:
            raise ValueError("API_ALLOWED_HOSTS names no host (expected e.g. 'localhost,::1')")
        return self

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """The host names the API answers to (lower case), API_HOST included when it is an
        address of its own rather than every interface."""
        names = [
            "*" if h.strip() == "*" else host_name(h.strip().encode())
            for h in self.api_allowed_hosts.split(",")
            if h.strip()
        ]
        host = host_name(self.api_host.strip().encode())
        if names and host not in ("0.0.0.0", "::", "") and host not in names:
            names.append(host)
        return tuple(names)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _StackEndpoints(settings_cls)

    @property
    def contract(self) -> Contract:
        return Contract(
            max_value_bytes=self.event_max_bytes,
            bounds=TimeBounds(
                max_skew=timedelta(seconds=self.event_clock_skew_s),
                max_age=timedelta(days=self.event_max_age_days),
            ),
        )

    @property
    def service_area(self) -> ServiceArea:
        return ServiceArea(
            timezone=self.service_area_timezone,
            center_lat=self.service_area_center_lat,
            center_lon=self.service_area_center_lon,
            radius_km=self.service_area_radius_km,
        )

    def topic(self, base: str) -> str:
        return f"{self.topic_prefix}{base}"

    @property
    def worker_group(self) -> str:
        """The Faust app id, i.e. the consumer group, of this worker's role.

        The bookings are always consumed under CONSUMER_GROUP (role ``all`` or ``predict``), so
        its offsets and lag mean the same whichever way the workers are split; the outcome path
        alone gets a group of its own.
        """
        if self.worker_role is WorkerRole.OUTCOMES:
            return self.topic(f"{self.consumer_group}-outcomes")
        return self.topic(self.consumer_group)

    @property
    def runs_predict(self) -> bool:
        return self.worker_role in (WorkerRole.ALL, WorkerRole.PREDICT)

    @property
    def runs_outcomes(self) -> bool:
        return self.worker_role in (WorkerRole.ALL, WorkerRole.OUTCOMES)


def _checked_token(name: str, token: SecretStr | None) -> SecretStr | None:
    """None for an empty token (``API_TOKEN=`` as in .env.example); ValueError, naming its
    length only (a secret is never repeated in an error), when it is too short to guess."""
    if token is None:
        return None
    length = len(token.get_secret_value())
    if length == 0:
        return None
    if length < MIN_API_TOKEN_CHARS:
        raise ValueError(
            f"{name} must be at least {MIN_API_TOKEN_CHARS} characters, not {length}; "
            "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


class SettingsError(SystemExit):
    """Raised at start when the environment is wrong; the message names the variables."""


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("delaycast: invalid settings:\n" + "\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def host_name(header: bytes) -> str:
    """The host of a ``Host`` header, lower case, without its port.

    >>> host_name(b"LocalHost:8000"), host_name(b"[::1]:8000"), host_name(b"::1"), host_name(b"")
    ('localhost', '::1', '::1', '')
    """
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):  # [v6] or [v6]:port
        end = text.find("]")
        return text[1:end] if end > 0 else text
    if text.count(":") == 1:  # name:port or v4:port
        return text.split(":", 1)[0]
    return text  # a name, or a bare IPv6 address
