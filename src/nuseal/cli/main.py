"""The ``nuseal`` command: one group, thin commands, one place that turns errors into a line and an exit code.

Exit codes: 0 success; 1 a verification or check failed (the command's result); 2 usage or input error
(bad option, unreadable file, invalid configuration); 3 an unexpected internal error (reported in one line;
``NUSEAL_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from nuseal import __version__
from nuseal.cli._exit import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE
from nuseal.cli.admin import admin_group
from nuseal.cli.audit import audit_command
from nuseal.cli.dev import dev_group
from nuseal.cli.restore import restore_command
from nuseal.cli.revocation import revocation_group
from nuseal.cli.scan import scan_command
from nuseal.cli.serve import serve_command
from nuseal.cli.sign import repo_sign_command, sign_command
from nuseal.cli.verify import verify_command
from nuseal.errors import NusealError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nuseal")
def cli() -> None:
    """nuseal: sign, verify, serve, restore and scan NuGet packages."""


def _register(group: click.Group) -> None:
    """Every command, registered explicitly. The command modules import only click and what their options need at
    module level; the feed (Starlette, uvicorn, SQLAlchemy) loads inside the serve and admin commands."""
    for command in (
        verify_command,
        sign_command,
        repo_sign_command,
        serve_command,
        admin_group,
        dev_group,
        scan_command,
        restore_command,
        audit_command,
        revocation_group,
    ):
        group.add_command(command)


_register(cli)


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
            traceback.print_exc()
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set NUSEAL_DEBUG=1 for details; please report it)",
            err=True,
        )
        return EXIT_INTERNAL
    return rv if isinstance(rv, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
