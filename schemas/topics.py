"""The topic catalogue: every topic, what it carries and how it is keyed."""

from dataclasses import dataclass

from pydantic import BaseModel

from schemas.actual import ActualDelay
from schemas.alert import Alert
from schemas.booking import BookingRequested
from schemas.dead_letter import DeadLetter
from schemas.outcome import Outcome
from schemas.prediction import Prediction


@dataclass(frozen=True)
class TopicSpec:
    name: str
    value: type[BaseModel] | None
    description: str
    co_partitioned: bool = True


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("bookings", BookingRequested, "Bookings from dispatch, keyed by booking_id."),
    TopicSpec("predictions", Prediction, "One prediction per booking, keyed by booking_id."),
    TopicSpec("actual-delays", ActualDelay, "Observed delays, keyed by booking_id."),
    TopicSpec(
        "actual-delays-routed",
        ActualDelay,
        "Internal: actual delays the join found on another partition than their booking_id's "
        "(a producer with another partitioner, or no key), re-keyed onto it.",
    ),
    TopicSpec("outcomes", Outcome, "Predictions joined with actual delays."),
    TopicSpec("alerts", Alert, "Drift, thresholds and experiment results.", co_partitioned=False),
    TopicSpec("dead-letters", DeadLetter, "Events that failed, with the reason.", False),
)

#: Topics written by producers outside delaycast: the only ones a dead letter may be sent back to
#: (``delaycast dead-letters requeue``). The others are written by delaycast's own agents, and a
#: letter naming one is either a bug or forged.
INPUT_TOPICS: tuple[str, ...] = ("bookings", "actual-delays")


def topic_name(base: str, prefix: str = "") -> str:
    """The full topic name for ``base`` with the deployment's optional prefix."""
    return f"{prefix}{base}"
