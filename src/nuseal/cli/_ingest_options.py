"""``nuseal serve`` options of the ingestion checks (issue 16), gathered into one ``ingest`` argument
(:class:`nuseal.feed.config.IngestConfig`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["ingest_options", "parse_duration"]

F = TypeVar("F", bound=Callable[..., Any])

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NAMES = (
    "min_release_age",
    "hold_severity",
    "block_rules",
    "author_policy",
    "trusted_signers",
    "osv_path",
    "osv_refresh",
    "popular_id_files",
    "scan_rules",
    "upstream_revocation_mode",
    "push_signer_continuity",
)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h``, ``3d``, ``2w`` -> seconds.

    Raises:
        click.BadParameter: anything else.
    """
    m = _DURATION.match(text)
    if m is None:
        raise click.BadParameter(f"{text!r} is not a duration (a number with s, m, h, d or w, e.g. 3d)")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def ingest_options(func: F) -> F:
    """Add the ingestion options to a command; the command receives ``ingest: IngestConfig``.

    Raises (at run time): UsageError-like ``click.BadParameter`` for a bad value; ``ConfigError`` for a bad
    combination (the allow-list policy without ``--trusted-signer``).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from nuseal.feed.config import IngestConfig  # noqa: PLC0415

        values = {name: kwargs.pop(name) for name in _NAMES}
        kwargs["ingest"] = IngestConfig(
            hold_severity=values["hold_severity"],
            block_rules=tuple(values["block_rules"]),
            author_policy=values["author_policy"],
            trusted_signers=tuple(values["trusted_signers"]),
            min_release_age_seconds=parse_duration(values["min_release_age"]),
            osv_path=values["osv_path"],
            osv_refresh_seconds=parse_duration(values["osv_refresh"]),
            popular_id_files=tuple(values["popular_id_files"]),
            rules_files=tuple(values["scan_rules"]),
            revocation_mode=values["upstream_revocation_mode"],
            push_signer_continuity=values["push_signer_continuity"],
        )
        return func(*args, **kwargs)

    options = [
        click.option(
            "--min-release-age",
            default="0",
            show_default=True,
            help="Upstream versions younger than this (e.g. 3d, 12h) are left out until old enough (cooldown).",
        ),
        click.option(
            "--hold-severity",
            type=click.Choice(["note", "warning", "error", "never"]),
            default="error",
            show_default=True,
            help="Scan findings at or above this hold the version in quarantine (pushed and upstream packages).",
        ),
        click.option(
            "--block-rule",
            "block_rules",
            multiple=True,
            metavar="RULE",
            help="Scan rule id or glob (NS1110, NS2*) whose findings refuse a push with 400 (repeatable).",
        ),
        click.option(
            "--author-policy",
            type=click.Choice(["none", "any", "allow-list"]),
            default="none",
            show_default=True,
            help="Author signatures upstream packages need: none, any valid one, or one by a --trusted-signer.",
        ),
        click.option(
            "--trusted-signer",
            "trusted_signers",
            multiple=True,
            metavar="SHA256",
            help="SHA-256 fingerprint of an author certificate the allow-list policy accepts (repeatable).",
        ),
        click.option(
            "--osv",
            "osv_path",
            type=click.Path(exists=True),
            default=None,
            help="OSV records (folder or zip; OpenSSF malicious-packages, GitHub advisories): known-bad versions.",
        ),
        click.option(
            "--osv-refresh",
            "osv_refresh",
            default="1h",
            show_default=True,
            metavar="DURATION",
            help="How often the feed looks for changes in --osv (file names, sizes, times) and takes them without a "
            "restart: the known-bad check and VulnerabilityInfo (e.g. 15m; 0: read once at start).",
        ),
        click.option(
            "--popular-ids",
            "popular_id_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="Extra popular-id list for the look-alike check (one id a line; repeatable).",
        ),
        click.option(
            "--scan-rules",
            "scan_rules",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="Scan rules file overriding or adding rules (repeatable).",
        ),
        click.option(
            "--upstream-revocation-mode",
            type=click.Choice(["online", "offline"]),
            default="online",
            show_default=True,
            help="Revocation checks when verifying upstream packages' signatures.",
        ),
        click.option(
            "--push-signer-continuity",
            is_flag=True,
            help="Also hold pushed versions whose author signer changed or that lost their signature.",
        ),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]
