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
@click.argument("faust_args", nargs=-1, type=click.UNPROCESSED)
def worker(loglevel: str | None, faust_args: tuple[str, ...]) -> None:
    """Run a stream worker: bookings in, predictions out.

    Start as many as there are partitions; they share the work. Extra arguments go to Faust's
    own worker command.

    \b
    Examples:
      delaycast worker
      delaycast worker -l debug
    """
    from connectors.kafka_admin import ensure_topics
    from schemas import TOPICS
    from streams.settings import delaycast_home, get_settings

    settings = get_settings()
    (delaycast_home() / "faust").mkdir(parents=True, exist_ok=True)
    ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.topic(t.name) for t in TOPICS],
        partitions=settings.topic_partitions,
    )
    from streams.app import app

    level = (loglevel or settings.log_level).lower()
    sys.argv = ["delaycast", "worker", "--loglevel", level, "--without-web", *faust_args]
    app.main()
