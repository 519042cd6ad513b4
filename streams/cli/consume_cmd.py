"""``delaycast consume``: print a topic's events as JSON lines."""

from __future__ import annotations

import click

CONSUMABLE = ("predictions", "outcomes", "alerts", "dead-letters", "bookings", "actual-delays")


def _consume(
    topic_base: str, count: int | None, timeout: float | None, from_beginning: bool
) -> None:
    from connectors.kafka import read_topic
    from streams.settings import get_settings

    settings = get_settings()
    messages = read_topic(
        settings.kafka_bootstrap_servers,
        settings.topic(topic_base),
        from_beginning=from_beginning,
        count=count,
        timeout_s=timeout,
    )
    try:
        for message in messages:
            click.echo(message.value().decode("utf-8", errors="replace"))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


def _help(topic_base: str) -> str:
    return (
        f"Print the {topic_base} topic (with TOPIC_PREFIX) as JSON lines, oldest first.\n\n"
        "Without --count or --timeout it follows the topic until Ctrl-C.\n\n"
        "\b\n"
        "Examples:\n"
        f"  delaycast consume {topic_base} --count 10\n"
        f"  delaycast consume {topic_base} --from-now --timeout 30\n"
        f"  delaycast consume {topic_base} --timeout 5 | jq -c .\n"
    )


def _command(topic_base: str) -> click.Command:
    @click.command(name=topic_base, help=_help(topic_base))
    @click.option(
        "--count", "-n", "--max", "count", type=click.IntRange(min=1), help="Stop after N events."
    )
    @click.option("--timeout", type=click.FloatRange(min=0), help="Stop after S seconds.")
    @click.option(
        "--from-beginning/--from-now",
        default=True,
        show_default=True,
        help="Start at the oldest event, or only print new ones.",
    )
    def command(count: int | None, timeout: float | None, from_beginning: bool) -> None:
        _consume(topic_base, count, timeout, from_beginning)

    return command


@click.group()
def consume() -> None:
    """Print events as JSON lines, one per line, for jq or a file.

    \b
    Examples:
      delaycast consume predictions --count 10
      delaycast consume predictions --from-now --timeout 30
      delaycast consume outcomes --timeout 5
      delaycast consume alerts --from-now
      delaycast consume dead-letters --timeout 5
    """


for _name in CONSUMABLE:
    consume.add_command(_command(_name))
