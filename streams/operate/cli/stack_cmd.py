"""``delaycast stack``: install, start, stop and inspect the local Kafka, Redis and PostgreSQL.

The stack lives in ``$DELAYCAST_HOME/stack`` (default ``./.delaycast/stack``). Servers named by
KAFKA_BOOTSTRAP_SERVERS, REDIS_URL or DATABASE_URL are used as they are, never started.
"""

from __future__ import annotations

import time

import click

from streams.tools.stack import StackError, StackManager, default_libs_dir, install


def _manager() -> StackManager:
    return StackManager.from_environment()


@click.group()
def stack() -> None:
    """Start, stop and inspect the local Kafka, Redis and PostgreSQL.

    \b
    Examples:
      delaycast stack up && eval "$(delaycast stack env)"
      delaycast stack status
      delaycast stack down
    """


@stack.command("install")
@click.option(
    "--for-tests",
    is_flag=True,
    help="Also what the tests drive: Debian's chromium (the dashboard's browser test), jq and "
    "curl (the runbooks) and the docker compose plugin (to check docker-compose.yml).",
)
def install_cmd(for_tests: bool) -> None:
    """Install what is missing: redis-server and postgresql (apt-get), the Kafka jars (Maven).

    Quick when everything is present.

    \b
    Examples:
      delaycast stack install
      delaycast stack install --for-tests   # what `make test` runs
    """
    try:
        installed = install(kafka_libs=default_libs_dir(), for_tests=for_tests, say=click.echo)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"installed: {', '.join(installed)}" if installed else "stack: everything is installed"
    )


@stack.command()
def up() -> None:
    """Start what is not running, wait until healthy, create the topics.

    Running it again reports the running stack and changes nothing; a server that stopped is
    started again on its port.

    \b
    Example:
      delaycast stack up
    """
    manager = _manager()
    began = time.monotonic()
    try:
        result = manager.up()
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in result.lines():
        click.echo(line)
    topics = result.topics
    if topics.created:
        click.echo(f"topics created: {', '.join(topics.created)}")
    for name, (actual, wanted) in topics.mismatched.items():
        click.echo(
            f"warning: topic {name} has {actual} partitions, TOPIC_PARTITIONS is {wanted}", err=True
        )
    click.echo(f"stack up in {time.monotonic() - began:.1f} s; state in {manager.paths.root}")
    click.echo('use it from a shell with: eval "$(delaycast stack env)"')


@stack.command()
def down() -> None:
    """Stop the servers `up` started (nothing else), and forget the endpoints.

    \b
    Example:
      delaycast stack down
    """
    manager = _manager()
    try:
        stopped = manager.down()
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing of this stack was running")


@stack.command()
def status() -> None:
    """One line per server; exit status 1 when any is not running and healthy.

    \b
    Example:
      delaycast stack status
    """
    try:
        statuses = _manager().status()
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    for entry in statuses:
        click.echo(entry.line())
    if not all(entry.ok for entry in statuses):
        raise SystemExit(1)


@stack.command()
def env() -> None:
    """Print `export` lines for the running stack.

    \b
    Example:
      eval "$(delaycast stack env)"
    """
    endpoints = _manager().endpoints()
    if endpoints is None:
        raise click.ClickException("no stack is running here; run `delaycast stack up`")
    for line in endpoints.export_lines():
        click.echo(line)
