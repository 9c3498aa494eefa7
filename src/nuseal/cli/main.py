"""The ``nuseal`` command: one group, thin commands, one place that turns errors into a line and an exit code.

Exit codes: 0 success; 1 a verification or check failed (the command's result); 2 usage or input error
(bad option, unreadable file, invalid configuration); 3 an unexpected internal error (reported in one line;
``NUSEAL_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NamedTuple

import click

from nuseal import __version__
from nuseal.cli._exit import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE
from nuseal.errors import NusealError

__all__ = ["COMMANDS", "CommandRef", "LazyGroup", "cli", "main"]


class CommandRef(NamedTuple):
    """Where a command lives and its one-line help for ``nuseal --help`` (the first sentence of its docstring)."""

    module: str
    attribute: str
    short_help: str


#: Every command, registered explicitly: name -> where it lives. The map is static (no discovery, no command that
#: disappears when its module fails to import); a command module is imported only when that command runs, its help
#: is shown, or the shell completes it, so ``nuseal verify`` does not pay for the feed, restore, audit or scan.
#: ``tests/test_cli_main.py`` checks each entry against the command it names (name, short help).
COMMANDS: dict[str, CommandRef] = {
    "admin": CommandRef("nuseal.cli.admin", "admin_group", "Manage a feed: users, API keys, package owners."),
    "audit": CommandRef(
        "nuseal.cli.audit",
        "audit_command",
        "Check every package in a global-packages folder: the .nupkg against its .sha512 and .nupkg.metadata, every "
        "extracted file against the .nupkg, the signature under the policy, and the scan.",
    ),
    "dev": CommandRef(
        "nuseal.cli.dev", "dev_group", "Development tools: a throw-away PKI and a local timestamp authority."
    ),
    "repo-sign": CommandRef(
        "nuseal.cli.sign",
        "repo_sign_command",
        "Repository-sign PACKAGES: a repository primary signature on unsigned packages, a repository "
        "countersignature on author-signed ones.",
    ),
    "restore": CommandRef(
        "nuseal.cli.restore",
        "restore_command",
        "Restore PATH (a project, a .sln, packages.config, packages.lock.json, or a folder holding one) into the "
        "global-packages folder; every package is verified (signatureValidationMode, trustedSigners) and scanned "
        "before it is extracted.",
    ),
    "revocation": CommandRef(
        "nuseal.cli.revocation",
        "revocation_group",
        "The revocation cache ($NUSEAL_CACHE/revocation, else ~/.cache/nuseal/revocation).",
    ),
    "scan": CommandRef(
        "nuseal.cli.scan",
        "scan_command",
        "Scan TARGETS for install- and build-time code, look-alike ids and known-bad versions.",
    ),
    "serve": CommandRef(
        "nuseal.cli.serve",
        "serve_command",
        "Serve a NuGet V3 feed: push with `nuget push`, install with `nuget install` / `dotnet restore`.",
    ),
    "sign": CommandRef(
        "nuseal.cli.sign",
        "sign_command",
        "Author-sign PACKAGES (files, folders or globs) as NuGet's `sign` does, on any OS.",
    ),
    "verify": CommandRef(
        "nuseal.cli.verify",
        "verify_command",
        "Verify the signatures of PACKAGES (.nupkg files, folders or globs) as NuGet does.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands come from a static name -> :class:`CommandRef` map and are imported on first use.

    Click's documented pattern for lazily loaded subcommands ("Advanced Groups and Context", lazily loading
    subcommands). The group's own ``--help`` lists the map's names with the map's short help, so it imports no
    command module; ``nuseal COMMAND --help``, completion and "No such command" behave as with a plain group.
    """

    def __init__(self, *args: object, lazy_commands: dict[str, CommandRef], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        ref = self.lazy_commands.get(cmd_name)
        if ref is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(ref.module), ref.attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise TypeError(f"{ref.module}:{ref.attribute} is not the click command {cmd_name!r}")
        self.add_command(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As :meth:`click.Group.format_commands`, with the short help of commands not yet loaded from the map."""
        names = self.list_commands(ctx)
        rows = []
        limit = formatter.width - 6 - max((len(name) for name in names), default=0)
        for name in names:
            command = self.commands.get(name) or click.Command(name, help=self.lazy_commands[name].short_help)
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="nuseal")
def cli() -> None:
    """nuseal: sign, verify, serve, restore and scan NuGet packages."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (also used by in-process tests)."""
    try:
        rv = cli.main(args=argv, prog_name="nuseal", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except NusealError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # the one place that turns surprises into a line
        if os.environ.get("NUSEAL_DEBUG"):
            import traceback  # noqa: PLC0415 - only on this path (~9 ms at start-up otherwise)

            traceback.print_exc()
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set NUSEAL_DEBUG=1 for details; please report it)",
            err=True,
        )
        return EXIT_INTERNAL
    return rv if isinstance(rv, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
