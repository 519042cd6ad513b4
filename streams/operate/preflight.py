"""Pre-flight checks of a deployment, one verdict each: what ``delaycast verify`` runs.

Each check talks to the real thing once (the model directory, Kafka, Redis, PostgreSQL, the
weather provider) and never raises: a failure is a ``Check`` that says what is wrong and, where
there is one, what to run. Details pass through :func:`streams.redaction.scrub`, so a driver's
error message cannot carry a password out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from streams.redaction import scrub, secrets_of
from streams.settings import Settings

if TYPE_CHECKING:
    from models.area import ServiceArea
    from models.predictor import Predictor


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name:<22} {self.detail}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "status": "PASS" if self.ok else "FAIL"}


def run_checks(settings: Settings, *, now: datetime) -> list[Check]:
    """Every check, in order: model, Kafka and topics, Redis, PostgreSQL, weather."""
    secrets = secrets_of(settings)
    groups: list[tuple[str, Callable[[], Iterator[Check]]]] = [
        ("model", lambda: model_checks(settings, now=now)),
        ("kafka", lambda: topic_checks(settings)),
        ("redis", lambda: redis_checks(settings)),
        ("postgres", lambda: postgres_checks(settings)),
        ("weather", lambda: weather_checks(settings, now=now)),
    ]
    checks: list[Check] = []
    for name, group in groups:
        try:
            checks.extend(group())
        except Exception as exc:  # a check must report, never crash the report
            checks.append(Check(name, False, f"{type(exc).__name__}: {exc}"))
    # One line each: drivers' messages may span several.
    return [Check(c.name, c.ok, " ".join(scrub(c.detail, secrets).split())) for c in checks]


def model_checks(settings: Settings, *, now: datetime) -> Iterator[Check]:
    from connectors.model_store import ArtifactError, champion_version, load_champion

    model_dir = settings.model_dir
    try:
        version = champion_version(model_dir)
    except ArtifactError as exc:
        yield Check("model champion", False, str(exc))
        return
    if version is None:
        yield Check(
            "model champion",
            False,
            f"no CHAMPION in {model_dir}: no model trained yet (delaycast train ... --out "
            f"{model_dir}); workers serve the heuristic",
        )
        return
    yield Check("model champion", True, f"{version} in {model_dir}")
    try:
        loaded = load_champion(model_dir, settings.service_area)
    except ArtifactError as exc:
        yield Check("model checksum+load", False, f"{exc}; workers serve the heuristic")
        return
    warnings = f" ({'; '.join(loaded.warnings)})" if loaded.warnings else ""
    yield Check("model checksum+load", True, f"sha256 verified, {version} loaded{warnings}")
    yield _predict_one(loaded.predictor, now, settings.service_area)


def _predict_one(predictor: Predictor, now: datetime, area: ServiceArea) -> Check:
    from connectors.weather import mild_weather
    from models.features import feature_matrix
    from schemas import BookingRequested, PatientPriority, VehicleType

    pickup = now + timedelta(hours=2)
    booking = BookingRequested(
        booking_id="VERIFY-1",
        created_at=now,
        scheduled_pickup_at=pickup,
        pickup_lat=area.center_lat,
        pickup_lon=area.center_lon,
        dropoff_lat=max(-90.0, area.center_lat - 0.01),
        dropoff_lon=area.center_lon,
        vehicle_type=VehicleType.WHEELCHAIR,
        patient_priority=PatientPriority.URGENT,
    )
    features = feature_matrix([booking], [mild_weather(pickup)], area)
    try:
        delays, confidences = predictor.predict(features)
        delay, confidence = float(delays[0]), float(confidences[0])
    except Exception as exc:
        return Check("model predict", False, f"the model failed: {type(exc).__name__}: {exc}")
    if not (math.isfinite(delay) and math.isfinite(confidence)):
        return Check(
            "model predict", False, f"the model answered {delay} (confidence {confidence})"
        )
    return Check(
        "model predict",
        True,
        f"{delay:.1f} min (confidence {confidence:.2f}) for a synthetic booking",
    )


def topic_checks(settings: Settings) -> Iterator[Check]:
    from connectors.kafka_admin import KafkaAdminError, broker_count, list_topics
    from schemas.topics import TOPICS

    bootstrap = settings.kafka_bootstrap_servers
    try:
        found = list_topics(bootstrap, timeout_s=5.0)
    except KafkaAdminError as exc:
        yield Check("kafka", False, f"{exc}")
        return
    yield Check("kafka", True, f"{bootstrap} answers, {broker_count(bootstrap)} broker(s)")
    wanted = settings.topic_partitions
    for spec in TOPICS:
        name = settings.topic(spec.name)
        label = f"topic {spec.name}"
        if name not in found:
            yield Check(label, False, f"{name} does not exist (delaycast topics create)")
        elif found[name] != wanted:
            yield Check(
                label,
                False,
                f"{name} has {found[name]} partitions, TOPIC_PARTITIONS is {wanted}",
            )
        else:
            yield Check(label, True, f"{name}, {found[name]} partitions")


def redis_checks(settings: Settings) -> Iterator[Check]:
    import redis

    from connectors.flags import FlagFormatError, parse_flags

    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
    )
    try:
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            yield Check("redis", False, f"no answer to PING: {type(exc).__name__}: {exc}")
            return
        yield Check("redis", True, "answers PING")
        key = settings.flags_redis_key
        try:
            state = parse_flags(client.hgetall(key))
        except (redis.RedisError, OSError, FlagFormatError) as exc:
            yield Check("redis flags", False, f"cannot read {key}: {type(exc).__name__}: {exc}")
            return
        if state is None:
            yield Check(
                "redis flags",
                True,
                f"{key} is empty: workers start with the settings' values "
                f"(ML {'enabled' if settings.ml_enabled else 'disabled'} at "
                f"{settings.ml_traffic_percentage:g} %)",
            )
        else:
            yield Check("redis flags", True, f"{key}: {state.describe()}, version {state.version}")
    finally:
        client.close()


def postgres_checks(settings: Settings) -> Iterator[Check]:
    import sqlalchemy as sa

    from connectors.postgres import current_revision, head_revision, make_engine

    engine = make_engine(settings.database_url.get_secret_value(), connect_timeout_s=3)
    try:
        try:
            with engine.connect() as connection:
                version = connection.execute(sa.text("SHOW server_version")).scalar_one()
            current = current_revision(engine)
        except sa.exc.SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            yield Check("postgres", False, f"no answer: {type(exc).__name__}: {detail}".strip())
            return
        yield Check("postgres", True, f"answers (PostgreSQL {version})")
        head = head_revision()
        if current == head:
            yield Check("postgres schema", True, f"at the migrations head {head}")
        else:
            yield Check(
                "postgres schema",
                False,
                f"at {current or 'no revision (empty)'}, the head is {head}: "
                "run delaycast db upgrade",
            )
    finally:
        engine.dispose()


def weather_checks(settings: Settings, *, now: datetime) -> Iterator[Check]:
    from streams.operate.weather_probe import ProbeStatus, describe_weather, probe_weather

    result = probe_weather(settings, at=now)
    if result.status is ProbeStatus.DEFAULT:
        yield Check("weather", True, f"note: {result.detail}")
        return
    detail = f"{result.provider} {result.status.value}: {result.detail}"
    if result.url:
        detail += f" [{result.url}]"
    if result.weather is not None and result.status is ProbeStatus.OK:
        detail += f"; {describe_weather(result.weather)}"
    yield Check("weather", result.status.passes, detail)
