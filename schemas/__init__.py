"""Event contracts of delaycast, their JSON Schema export and the topic catalogue."""

from schemas.actual import ActualDelay
from schemas.alert import Alert, AlertKind, Severity
from schemas.booking import BookingRequested, PatientPriority, VehicleType
from schemas.dead_letter import DeadLetter, DeadLetterKind
from schemas.outcome import Outcome
from schemas.prediction import Arm, FallbackReason, FlagSource, Prediction, RiskLevel
from schemas.topics import TOPICS, TopicSpec, topic_name
from schemas.weather import Weather, WeatherSource

__all__ = [
    "TOPICS",
    "ActualDelay",
    "Alert",
    "AlertKind",
    "Arm",
    "BookingRequested",
    "DeadLetter",
    "DeadLetterKind",
    "FallbackReason",
    "FlagSource",
    "Outcome",
    "PatientPriority",
    "Prediction",
    "RiskLevel",
    "Severity",
    "TopicSpec",
    "VehicleType",
    "Weather",
    "WeatherSource",
    "topic_name",
]
