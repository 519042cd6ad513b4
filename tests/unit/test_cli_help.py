"""Every command and group says how it is used: `delaycast X --help` shows an example."""

from __future__ import annotations

import click
from click.testing import CliRunner

from streams.operate.cli.main import COMMANDS, HELP, cli


def every_command() -> list[tuple[list[str], click.Command]]:
    ctx = click.Context(cli)
    found: list[tuple[list[str], click.Command]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, [*path, name]
                walk(sub, [*path, name])

    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None, f"{name} is listed but cannot be loaded"
        walk(command, [name])
    return found


def test_the_top_level_help_lists_every_command_with_a_summary() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    assert set(HELP) == set(COMMANDS)
    for name, summary in HELP.items():
        assert f"{name}  " in out and summary in out


def test_every_command_has_help_with_an_example() -> None:
    commands = every_command()
    assert len(commands) > 40
    missing = [" ".join(path) for path, cmd in commands if "Example" not in (cmd.help or "")]
    assert missing == []
    for path, _cmd in commands:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output
