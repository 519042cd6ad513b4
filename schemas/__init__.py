"""Event contracts of delaycast, their JSON Schema export and the topic catalogue."""

from schemas.actual import ActualDelay
from schemas.booking import BookingRequested, PatientPriority, VehicleType
from schemas.dead_letter import DeadLetter, DeadLetterKind
from schemas.prediction import Arm, FallbackReason, FlagSource, Prediction, RiskLevel
from schemas.topics import TOPICS, TopicSpec, topic_name
from schemas.weather import Weather, WeatherSource

__all__ = [
    "TOPICS",
    "ActualDelay",
    "Arm",
    "BookingRequested",
    "DeadLetter",
    "DeadLetterKind",
    "FallbackReason",
    "FlagSource",
    "PatientPriority",
    "Prediction",
    "RiskLevel",
    "TopicSpec",
    "VehicleType",
    "Weather",
    "WeatherSource",
    "topic_name",
]
