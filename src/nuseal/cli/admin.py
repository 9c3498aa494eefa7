"""``nuseal admin``: users, API keys, owners and document rebuilds of a feed's database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from nuseal.cli.serve import DEFAULT_DATA_DIR

if TYPE_CHECKING:
    from nuseal.feed.publish.publisher import FeedService

__all__ = ["admin_group"]

F = TypeVar("F", bound=Callable[..., Any])


def _feed_options(func: F) -> F:
    func = click.option(
        "--database",
        "database_url",
        default=None,
        envvar="NUSEAL_FEED_DATABASE",
        help="SQLAlchemy URL (default: SQLite in the data folder).",
    )(func)
    func = click.option(
        "--data",
        "data_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        show_default=True,
        envvar="NUSEAL_FEED_DATA",
        help="The feed's data folder.",
    )(func)
    return func


def _database(data_dir: Path, database_url: str | None) -> Any:
    """The feed's database, migrated (:func:`nuseal.feed.accounts.service.open_database`); the caller disposes it."""
    from nuseal.feed.accounts.service import open_database  # noqa: PLC0415

    return open_database(data_dir, database_url)


@click.group("admin")
def admin_group() -> None:
    """Manage a feed: users, API keys, package owners."""


@admin_group.command("create-user")
@click.argument("name")
@_feed_options
def create_user_command(*, name: str, data_dir: Path, database_url: str | None) -> None:
    """Create the user NAME."""
    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        service.create_user(db, name, now=datetime.now(UTC))
    finally:
        db.dispose()
    click.echo(f"created user {name}")


@admin_group.command("create-api-key")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["push-new", "push-version", "unlist"]),
    help="What the key may do (repeatable; default: all three). Only a full-scope key (all three on '*') can use "
    "the account: 2FA, signing certificates, the /account pages.",
)
@click.option(
    "--glob", "globs", multiple=True, help="Package id glob the key covers, '*' wildcard (repeatable; default '*')."
)
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None, help="Expiry (default: never).")
@click.option("--description", default="", help="A note to recognize the key by.")
@_feed_options
def create_api_key_command(
    *,
    name: str,
    scopes: tuple[str, ...],
    globs: tuple[str, ...],
    expires_in_days: int | None,
    description: str,
    data_dir: Path,
    database_url: str | None,
) -> None:
    """Create an API key for user NAME and print it (on stdout, alone on its line). It is shown only once.

    Without --scope and --glob the key is full-scope (every scope on '*'): it can also use the account (2FA,
    signing certificates, the /account pages). A scoped key can only push and unlist, as on nuget.org."""
    from nuseal.feed.accounts import service  # noqa: PLC0415
    from nuseal.feed.accounts.keys import Scope, is_full_scope  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        created = service.create_api_key(
            db,
            name,
            now=datetime.now(UTC),
            scopes=frozenset(Scope(s) for s in scopes) if scopes else None,
            globs=globs or ("*",),
            expires_in_days=expires_in_days,
            description=description,
        )
    finally:
        db.dispose()
    expiry = created.expires_at.isoformat() if created.expires_at else "never"
    reach = (
        "full-scope: it can also use the account"
        if is_full_scope(created.scopes, created.globs)
        else "scoped: it cannot use the account (2FA, certificates, /account)"
    )
    click.echo(
        f"API key {created.key[:10]}... for {created.user_name}: scopes {', '.join(sorted(created.scopes))};"
        f" globs {', '.join(created.globs)}; expires {expiry}; {reach}. Store it now: it is not shown again.",
        err=True,
    )
    click.echo(created.key)


@admin_group.command("revoke-api-key")
@click.argument("prefix")
@_feed_options
def revoke_api_key_command(*, prefix: str, data_dir: Path, database_url: str | None) -> None:
    """Revoke the API key(s) whose first characters (as shown at creation, e.g. nsk_AbC123) are PREFIX."""
    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        n = service.revoke_api_key(db, prefix)
    finally:
        db.dispose()
    click.echo(f"revoked {n} key(s)")


@admin_group.command("add-owner")
@click.argument("package_id", metavar="ID")
@click.argument("name")
@_feed_options
def add_owner_command(*, package_id: str, name: str, data_dir: Path, database_url: str | None) -> None:
    """Make user NAME an owner of package ID."""
    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        service.add_owner(db, package_id, name)
    finally:
        db.dispose()
    click.echo(f"{name} now owns {package_id}")


@admin_group.command("rebuild")
@click.option("--base-url", required=True, help="Public URL of the feed the documents point to.")
@click.option("--id", "package_id", default=None, help="Only this package id.")
@_feed_options
def rebuild_command(*, base_url: str, package_id: str | None, data_dir: Path, database_url: str | None) -> None:
    """Rewrite the static documents (service index, version lists, registrations) from the database."""
    from nuseal.feed.config import FeedConfig  # noqa: PLC0415
    from nuseal.feed.publish.publisher import FeedService  # noqa: PLC0415

    service = FeedService.open(FeedConfig(data_dir=data_dir, base_url=base_url, database_url=database_url))
    try:
        service.setup()
        n = service.rebuild(package_id.lower() if package_id else None)
    finally:
        service.db.dispose()
    click.echo(f"rewrote the documents of {n} package id(s)")


# ------------------------------------------------------------------------------------------------ 2FA
@admin_group.command("enable-2fa")
@click.argument("name")
@_feed_options
def enable_2fa_command(*, name: str, data_dir: Path, database_url: str | None) -> None:
    """Begin two-factor enrolment for user NAME: print the otpauth:// URI (shown once) to add to an
    authenticator app, then confirm with `nuseal admin confirm-2fa NAME CODE`."""
    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        pending = service.begin_two_factor(db, name)
    finally:
        db.dispose()
    click.echo(
        f"Add this key URI to an authenticator app (secret {pending.secret}), then run "
        f"`nuseal admin confirm-2fa {name} CODE`. It is not shown again.",
        err=True,
    )
    click.echo(pending.uri)


@admin_group.command("confirm-2fa")
@click.argument("name")
@click.argument("code")
@_feed_options
def confirm_2fa_command(*, name: str, code: str, data_dir: Path, database_url: str | None) -> None:
    """Turn two-factor authentication on for NAME with the first CODE from the app."""
    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        service.confirm_two_factor(db, name, code, now=datetime.now(UTC))
    finally:
        db.dispose()
    click.echo(f"two-factor authentication is on for {name}")


@admin_group.command("disable-2fa")
@click.argument("name")
@_feed_options
def disable_2fa_command(*, name: str, data_dir: Path, database_url: str | None) -> None:
    """Administrator reset: turn two-factor authentication off for NAME (e.g. a lost device)."""
    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        was_on = service.disable_two_factor(db, name, now=datetime.now(UTC))
    finally:
        db.dispose()
    click.echo(f"two-factor authentication is off for {name}" + ("" if was_on else " (it was not on)"))


# ------------------------------------------------------------------------------------------------ certificates
@admin_group.command("register-certificate")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--totp", "code", required=True, help="A fresh code from NAME's authenticator app.")
@_feed_options
def register_certificate_command(*, name: str, file: Path, code: str, data_dir: Path, database_url: str | None) -> None:
    """Register the signing certificate FILE (.cer: DER or PEM) for user NAME; needs NAME's TOTP code."""
    from nuseal.feed.accounts import service  # noqa: PLC0415
    from nuseal.feed.accounts.certificates import MAX_CERTIFICATE_BYTES  # noqa: PLC0415

    with file.open("rb") as handle:
        data = handle.read(4 * MAX_CERTIFICATE_BYTES + 1)
    db = _database(data_dir, database_url)
    try:
        registered = service.register_certificate(db, name, data, totp_code=code, now=datetime.now(UTC))
    finally:
        db.dispose()
    click.echo(f"registered {registered.fingerprint} for {name}: {registered.subject}")


@admin_group.command("list-certificates")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@_feed_options
def list_certificates_command(*, name: str, as_json: bool, data_dir: Path, database_url: str | None) -> None:
    """List the signing certificates registered by user NAME."""
    import json  # noqa: PLC0415

    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        found = service.list_certificates(db, name)
    finally:
        db.dispose()
    if as_json:
        click.echo(json.dumps([c.to_json() for c in found], indent=2))
        return
    for c in found:
        click.echo(
            f"{c.fingerprint}  {c.subject}  (issuer {c.issuer}; {c.not_before:%Y-%m-%d} to {c.not_after:%Y-%m-%d})"
        )
    if not found:
        click.echo(f"{name} has no registered certificate", err=True)


@admin_group.command("remove-certificate")
@click.argument("name")
@click.argument("fingerprint")
@click.option("--totp", "code", required=True, help="A fresh code from NAME's authenticator app.")
@_feed_options
def remove_certificate_command(
    *, name: str, fingerprint: str, code: str, data_dir: Path, database_url: str | None
) -> None:
    """Remove the certificate FINGERPRINT (SHA-256 hex) from user NAME's registered certificates."""
    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        service.remove_certificate(db, name, fingerprint, totp_code=code, now=datetime.now(UTC))
    finally:
        db.dispose()
    click.echo(f"removed {fingerprint.lower()} from {name}")


# ------------------------------------------------------------------------------------------------ revalidation
@admin_group.command("revalidate")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON (every certificate's answer).")
@_feed_options
def revalidate_command(*, as_json: bool, data_dir: Path, database_url: str | None) -> None:
    """Recheck the revocation (OCSP, then CRL) of every certificate the feed's signatures use; revoke and unlist
    versions whose author certificate was revoked at or before their signing timestamp; write every change to the
    audit log. Uses the signing configuration and base URL of the feed's last `nuseal serve` start. Safe to run
    while the feed serves, and again: a run with nothing new changes nothing."""
    import json  # noqa: PLC0415

    from nuseal.feed.signing.revalidation import revalidate  # noqa: PLC0415
    from nuseal.trust.online import HttpRevocationFetcher  # noqa: PLC0415 - the command asks the responders

    service = _signing_service(data_dir, database_url, "there are no signatures to revalidate")
    try:
        summary = revalidate(service, fetcher=HttpRevocationFetcher())
    finally:
        service.db.dispose()
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    for check in summary.checks:
        mark = "changed" if check.changed else "same"
        click.echo(f"{check.status:8} {mark:7} {check.role:10} {check.fingerprint}  {check.subject}: {check.detail}")
    for package_id, version in summary.packages_revoked:
        click.echo(f"revoked and unlisted {package_id} {version}")
    click.echo(summary.describe())


def _signing_service(data_dir: Path, database_url: str | None, why: str) -> FeedService:
    """:func:`nuseal.feed.compose.last_started_signing_service` (raises ConfigError naming ``why``)."""
    from nuseal.feed.compose import last_started_signing_service  # noqa: PLC0415

    return last_started_signing_service(data_dir, database_url, why=why)


@admin_group.command("repository-sign")
@click.option("--dry-run", is_flag=True, help="Say what would be signed; change nothing.")
@click.option(
    "--limit", default=10_000, show_default=True, type=click.IntRange(1, 1_000_000), help="At most N versions a run."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON (every version's outcome).")
@_feed_options
def repository_sign_command(
    *, dry_run: bool, limit: int, as_json: bool, data_dir: Path, database_url: str | None
) -> None:
    """Repository-sign every stored version that lacks the feed's current repository signature: versions pushed
    while the feed ran with --no-signing, and versions signed with an earlier repository certificate (after a
    key rotation or revocation). Unsigned ones get a repository primary signature, author-signed ones a
    repository countersignature (a never-checked author signature must pass `nuseal verify` first); the
    content hash NuGet records in lock files does not change. Each version is replaced atomically and audited;
    allRepositorySigned is recomputed at the end. Uses the signing configuration of the feed's last
    `nuseal serve` start, and its key (NUSEAL_REPOSITORY_PFX_PASSWORD or NUSEAL_REPOSITORY_PKCS11_PIN, as for
    serve). Safe to run while the feed serves, and again. Purge the .nupkg URLs from any HTTP cache or CDN in
    front of the feed afterwards: they are served as immutable."""
    import contextlib  # noqa: PLC0415
    import json  # noqa: PLC0415

    from nuseal.errors import ConfigError  # noqa: PLC0415
    from nuseal.feed.signing.backfill import BackfillOutcome, repository_sign_stored  # noqa: PLC0415
    from nuseal.feed.signing.signer import FeedSigning, start_dev_responders  # noqa: PLC0415
    from nuseal.trust.online import HttpRevocationFetcher  # noqa: PLC0415 - sign-time checks are online

    service = _signing_service(data_dir, database_url, "run `nuseal serve` with signing once first")
    responders = None
    try:
        signing = FeedSigning.load(service.config, fetcher=HttpRevocationFetcher())
        with contextlib.suppress(ConfigError):  # the port is taken: the running feed serves the dev TSA/OCSP/CRL
            responders = start_dev_responders(service.config)

        def progress(o: BackfillOutcome) -> None:
            if as_json:
                return
            if o.action == "skipped":
                click.echo(f"skipped    {o.id} {o.version}: {o.reason}")
            else:
                click.echo(f"{o.action:10} {o.id} {o.version}: {o.before} -> repository {o.placement}")

        summary = repository_sign_stored(service, signing, limit=limit, dry_run=dry_run, on_outcome=progress)
    finally:
        if responders is not None:
            responders.stop()
        service.db.dispose()
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
    else:
        click.echo(summary.describe())


# ------------------------------------------------------------------------------------------------ audit log
@admin_group.command("audit")
@click.option("--target", default=None, help="Only entries about TARGET, e.g. package:my.lib/1.0.0 or user:alice.")
@click.option("--action", "actions", multiple=True, help="Only these actions (repeatable), e.g. package.revoked.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 10_000), help="Newest N entries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: a list of entries, oldest first.")
@_feed_options
def audit_command(
    *, target: str | None, actions: tuple[str, ...], limit: int, as_json: bool, data_dir: Path, database_url: str | None
) -> None:
    """Print the feed's audit log (2FA changes, certificate registration and removal, accepted signatures,
    repository signing, certificate status changes and revoked packages, each with its evidence), oldest first."""
    import json  # noqa: PLC0415

    from nuseal.feed.accounts import service  # noqa: PLC0415

    db = _database(data_dir, database_url)
    try:
        rows = service.read_audit_log(db, target=target, actions=actions, limit=limit)
    finally:
        db.dispose()
    if as_json:
        doc = [
            {"at": r.at.isoformat(), "actor": r.actor, "action": r.action, "target": r.target, "details": r.details}
            for r in rows
        ]
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    for r in rows:
        evidence = ", ".join(f"{k}={v}" for k, v in sorted(r.details.items()))
        click.echo(f"{r.at.isoformat(timespec='seconds')} {r.actor:10} {r.action:28} {r.target}  {evidence}")


# issue 16: quarantine, reserved prefixes and administrators (registers its commands on admin_group)
from nuseal.cli import quarantine as _quarantine  # noqa: E402, F401
