"""The ``nuseal`` group (``cli/main.py``): commands come from the static ``COMMANDS`` map and load on first use.

The map holds each command's short help so that ``nuseal --help`` imports no command module; these tests hold the
map to the commands themselves, so a command added, renamed or re-documented without its map entry fails here.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys

import click
from click.testing import CliRunner

import nuseal.cli
from nuseal.cli.main import COMMANDS, cli, main


def _load(name: str) -> click.Command:
    ref = COMMANDS[name]
    command = getattr(importlib.import_module(ref.module), ref.attribute)
    assert isinstance(command, click.Command)
    return command


def test_every_map_entry_names_its_command() -> None:
    for name in COMMANDS:
        assert _load(name).name == name


def test_the_map_holds_every_top_level_command() -> None:
    """Every click command defined in a ``nuseal.cli`` module that is not a group's subcommand is in the map."""
    found: dict[int, click.Command] = {}
    for info in pkgutil.iter_modules(nuseal.cli.__path__, "nuseal.cli."):
        module = importlib.import_module(info.name)
        found.update({id(value): value for value in vars(module).values() if isinstance(value, click.Command)})
    groups = [group for group in found.values() if isinstance(group, click.Group) and group is not cli]
    children = {id(sub) for group in groups for sub in group.commands.values()}
    top_level = sorted(str(command.name) for key, command in found.items()
                       if key not in children and command is not cli)
    assert top_level == sorted(COMMANDS)


def test_help_lists_every_command_as_an_eagerly_built_group_would() -> None:
    """``nuseal --help`` from the map is the help a plain click group holding every command prints (same names,
    same short help, same truncation)."""
    eager = click.Group(
        name="nuseal",
        callback=cli.callback,
        params=cli.params,
        help=cli.help,
        context_settings=cli.context_settings,
        commands=[_load(name) for name in COMMANDS],
    )
    expected = CliRunner().invoke(eager, ["--help"], prog_name="nuseal")
    fresh = type(cli)(
        name="nuseal",
        callback=cli.callback,
        params=cli.params,
        help=cli.help,
        context_settings=cli.context_settings,
        lazy_commands=COMMANDS,
    )
    got = CliRunner().invoke(fresh, ["--help"], prog_name="nuseal")
    assert got.exit_code == expected.exit_code == 0
    assert got.output == expected.output
    assert fresh.commands == {}  # the listing imported nothing
    assert all(f"\n  {name} " in got.output for name in COMMANDS)


def test_command_help_and_unknown_command() -> None:
    runner = CliRunner()
    verify_help = runner.invoke(cli, ["verify", "--help"], prog_name="nuseal")
    assert verify_help.exit_code == 0
    assert verify_help.output == runner.invoke(_load("verify"), ["--help"], prog_name="nuseal verify").output
    unknown = runner.invoke(cli, ["verfy"], prog_name="nuseal")
    assert unknown.exit_code == 2
    assert "No such command 'verfy'" in unknown.output
    assert main(["verfy"]) == 2


def _complete(words: str) -> list[str]:
    """Click's bash completion of ``words`` (the last word is the one being completed), run as the shell runs it."""
    cword = str(len(words.split()) - 1)
    env = {**os.environ, "_NUSEAL_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from nuseal.cli.main import main; sys.exit(main())"],
        capture_output=True, text=True, env=env, check=True,
    )
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines()]


def test_shell_completion_of_commands_and_of_a_lazy_commands_options() -> None:
    assert _complete("nuseal re") == sorted(name for name in COMMANDS if name.startswith("re"))
    assert _complete("nuseal verify --revocation-m") == ["--revocation-mode"]
