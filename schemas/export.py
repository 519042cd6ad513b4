"""Export the JSON Schema of every event contract into ``schemas/json``.

Run ``python -m schemas.export`` after changing a contract; a test fails while the files and the
code disagree.
"""

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.actual import ActualDelay
from schemas.alert import Alert
from schemas.booking import BookingRequested
from schemas.dead_letter import DeadLetter
from schemas.outcome import Outcome
from schemas.prediction import Prediction
from schemas.weather import Weather

CONTRACTS: dict[str, type[BaseModel]] = {
    "booking_requested": BookingRequested,
    "prediction": Prediction,
    "actual_delay": ActualDelay,
    "dead_letter": DeadLetter,
    "outcome": Outcome,
    "alert": Alert,
    "weather": Weather,
}

JSON_DIR = Path(__file__).with_name("json")


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def expected_files() -> dict[str, str]:
    return {f"{name}.schema.json": render(model) for name, model in CONTRACTS.items()}


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for filename, text in expected_files().items():
        (JSON_DIR / filename).write_text(text)
        print(f"wrote {JSON_DIR / filename}")


if __name__ == "__main__":
    main()
