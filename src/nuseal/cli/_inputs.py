"""Turning command-line package arguments (files, folders, globs) into a list of .nupkg paths."""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from nuseal.errors import UsageError

__all__ = ["MAX_PACKAGES", "resolve_packages", "trust_root_options"]

_F = TypeVar("_F", bound=Callable[..., object])

#: Most packages one command expands to (a typo such as ``/`` should not walk a whole disk).
MAX_PACKAGES = 1_000_000


def resolve_packages(arguments: tuple[str, ...]) -> list[Path]:
    """Expand each argument: a ``.nupkg`` file, a folder (searched recursively for ``*.nupkg``) or a glob.

    The result keeps argument order, sorted within a folder or glob, without duplicates.

    Raises:
        UsageError: an argument matches nothing, or the expansion passes :data:`MAX_PACKAGES`.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".nupkg" and p.is_file())
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(arg):
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
        else:
            raise UsageError(f"package not found: {arg}")
        if not matches:
            raise UsageError(f"no .nupkg file matches {arg}")
        for m in matches:
            key = m.resolve()
            if key not in seen:
                seen.add(key)
                found.append(m)
            if len(found) > MAX_PACKAGES:
                raise UsageError(f"more than {MAX_PACKAGES} packages to check")
    return found


def trust_root_options(command: _F) -> _F:
    """``--code-signing-roots`` and ``--timestamping-roots`` (PEM bundles; default: found as the .NET SDK finds
    them on Linux), the same on every command that verifies."""
    command = click.option(
        "--timestamping-roots",
        type=click.Path(dir_okay=False, exists=True),
        help="PEM bundle of trusted timestamping roots (default: the .NET SDK's timestampctl.pem).",
    )(command)
    return click.option(
        "--code-signing-roots",
        type=click.Path(dir_okay=False, exists=True),
        help="PEM bundle of trusted code-signing roots (default: as the .NET SDK finds them on Linux).",
    )(command)
