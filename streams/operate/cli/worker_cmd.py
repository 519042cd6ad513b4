"""``delaycast worker``: run the Faust worker (the agents)."""

from __future__ import annotations

import sys

import click


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--loglevel",
    "-l",
    default=None,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level (default: LOG_LEVEL).",
)
@click.option(
    "--role",
    type=click.Choice(["all", "predict", "outcomes"], case_sensitive=False),
    default=None,
    help="Which path this worker runs (default: WORKER_ROLE, else all).",
)
@click.argument("faust_args", nargs=-1, type=click.UNPROCESSED)
def worker(loglevel: str | None, role: str | None, faust_args: tuple[str, ...]) -> None:
    """Run a stream worker: bookings in, predictions out; actual delays in, outcomes out.

    Start as many as there are partitions; they share the work. With --role, the prediction
    path (predict) and the outcome path (outcomes: join, history, alerts, drift) run in
    processes of their own, so neither slows the other; stop every worker before changing how
    they are split. Extra arguments go to Faust's own worker command.

    \b
    Examples:
      delaycast worker
      delaycast worker --role predict      # and, in another process:
      delaycast worker --role outcomes
      delaycast worker -l debug
    """
    from connectors.kafka_admin import ensure_topics
    from schemas import TOPICS
    from streams.settings import delaycast_home, load_settings
    from streams.worker.app import create_app

    overrides: dict[str, str] = {}
    if role is not None:
        overrides["worker_role"] = role.lower()
    if loglevel is not None:
        overrides["log_level"] = loglevel.lower()
    settings = load_settings(**overrides)
    (delaycast_home() / "faust").mkdir(parents=True, exist_ok=True)
    ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.topic(t.name) for t in TOPICS],
        partitions=settings.topic_partitions,
    )
    app = create_app(settings)
    level = settings.log_level.lower()
    sys.argv = ["delaycast", "worker", "--loglevel", level, "--without-web", *faust_args]
    app.main()
