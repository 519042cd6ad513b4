"""``delaycast topics``: create delaycast's Kafka topics, list the cluster's topics."""

from __future__ import annotations

import click

from connectors.kafka_admin import KafkaAdminError, ensure_topics, list_topics
from schemas.topics import TOPICS, topic_name
from streams.settings import load_settings


@click.group()
def topics() -> None:
    """Create or list delaycast's Kafka topics.

    \b
    Examples:
      delaycast topics create
      delaycast topics list
    """


@topics.command()
@click.option(
    "--partitions", type=click.IntRange(1, 256), help="Default: TOPIC_PARTITIONS (settings)."
)
@click.option("--prefix", help="Default: TOPIC_PREFIX (settings).")
def create(partitions: int | None, prefix: str | None) -> None:
    """Create every topic of the catalogue that does not exist yet.

    Exit status 1 when an existing topic has a different partition count: joins need
    co-partitioned topics, so that needs an operator's decision.

    \b
    Examples:
      delaycast topics create
      delaycast topics create --partitions 8 --prefix staging.
    """
    settings = load_settings()
    prefix = settings.topic_prefix if prefix is None else prefix
    partitions = partitions or settings.topic_partitions
    names = [topic_name(spec.name, prefix) for spec in TOPICS]
    try:
        result = ensure_topics(settings.kafka_bootstrap_servers, names, partitions)
    except KafkaAdminError as exc:
        raise click.ClickException(str(exc)) from exc
    for name in names:
        if name in result.mismatched:
            actual, wanted = result.mismatched[name]
            click.echo(f"{name}: exists with {actual} partitions, wanted {wanted}")
        else:
            click.echo(f"{name}: {'created' if name in result.created else 'exists'}")
    if result.mismatched:
        raise SystemExit(1)


@topics.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include Kafka's internal topics.")
def list_cmd(show_all: bool) -> None:
    """Print each topic with its partition count, one per line.

    \b
    Example:
      delaycast topics list
    """
    settings = load_settings()
    try:
        found = list_topics(settings.kafka_bootstrap_servers)
    except KafkaAdminError as exc:
        raise click.ClickException(str(exc)) from exc
    for name in sorted(found):
        if show_all or not name.startswith("__"):
            click.echo(f"{name}\t{found[name]}")
