"""``delaycast consume``: print a topic's events as JSON lines."""

from __future__ import annotations

from datetime import UTC, datetime

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


def _consume_range(topic_base: str, partition: int, first: int, last: int) -> None:
    """Print the committed records of offsets ``first``..``last`` of one partition, and say on
    stderr how many there were: none means the offsets hold only a transaction's markers or
    aborted records (a Kafka consumer reads neither), so a worker that passed over them lost
    nothing."""
    from connectors.kafka import KafkaReadError, RangeReader, range_of_offsets
    from streams.settings import get_settings

    settings = get_settings()
    topic = settings.topic(topic_base)
    where = f"{topic}[{partition}] offsets {first}..{last}"
    found, first_at = 0, None
    try:
        with RangeReader(settings.kafka_bootstrap_servers) as reader:
            try:
                wanted = range_of_offsets(reader.watermarks(topic), partition, first, last)
            except ValueError as exc:
                hint = "--partition/--from-offset/--to-offset"
                raise click.BadParameter(f"{topic}: {exc}", param_hint=hint) from None
            for batch in reader.read(topic, [wanted]):
                for message in batch:
                    if first_at is None:
                        first_at = message.timestamp()[1]
                    found += 1
                    click.echo((message.value() or b"").decode("utf-8", errors="replace"))
    except KafkaReadError as exc:
        raise click.ClickException(str(exc)) from None
    if found == 0:
        click.echo(
            f"no committed record in {where}: only transaction markers or aborted records "
            "(nothing was lost there)",
            err=True,
        )
    else:
        published = datetime.fromtimestamp(first_at / 1000, UTC).isoformat() if first_at else "?"
        click.echo(
            f"{found} committed record(s) in {where}, the first published at {published}",
            err=True,
        )


def _help(topic_base: str) -> str:
    return (
        f"Print the {topic_base} topic (with TOPIC_PREFIX) as JSON lines, oldest first.\n\n"
        "Without --count or --timeout it follows the topic until Ctrl-C.\n\n"
        "\b\n"
        "Examples:\n"
        f"  delaycast consume {topic_base} --count 10\n"
        f"  delaycast consume {topic_base} --from-now --timeout 30\n"
        f"  delaycast consume {topic_base} --timeout 5 | jq -c .\n"
        f"  delaycast consume {topic_base} --partition 2 --from-offset 1041 --to-offset 1047\n"
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
    @click.option("--partition", type=click.IntRange(min=0), help="Read one partition's range.")
    @click.option("--from-offset", type=click.IntRange(min=0), help="First offset (included).")
    @click.option("--to-offset", type=click.IntRange(min=0), help="Last offset (included).")
    def command(
        count: int | None,
        timeout: float | None,
        from_beginning: bool,
        partition: int | None,
        from_offset: int | None,
        to_offset: int | None,
    ) -> None:
        if partition is None and from_offset is None and to_offset is None:
            _consume(topic_base, count, timeout, from_beginning)
            return
        if partition is None or from_offset is None or to_offset is None:
            raise click.UsageError(
                "an offset range needs --partition, --from-offset and --to-offset together"
            )
        if to_offset < from_offset:
            raise click.BadParameter(
                f"{to_offset} is before --from-offset {from_offset}", param_hint="--to-offset"
            )
        if count is not None or timeout is not None or not from_beginning:
            raise click.UsageError(
                "--count, --timeout and --from-now follow the topic; an offset range stops at "
                "its end: give one or the other"
            )
        _consume_range(topic_base, partition, from_offset, to_offset)

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
