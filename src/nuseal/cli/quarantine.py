"""``nuseal admin quarantine ...``, ``reserve-prefix``, ``unreserve-prefix``, ``list-prefixes``, ``set-admin``
(issue 16).

``quarantine list|show|release|reject|accept-signer|override-cooldown`` work on the feed's database and storage as
its last ``nuseal serve`` start configured them (base URL, signing, ingestion): a release publishes the held bytes
through the same publish path a push takes, so the running feed serves the version as soon as the command returns.
Every decision is audited with the actor ``--as NAME`` (default: the operating-system user).
"""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nuseal.cli.admin import _database, _feed_options, admin_group

if TYPE_CHECKING:
    from nuseal.feed.mirror.quarantine import HoldView, Quarantine

__all__ = ["quarantine_group"]


def _actor(name: str | None) -> str:
    if name:
        return name
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _actor_option(func: Any) -> Any:
    return click.option("--as", "actor", default=None, help="Name recorded in the audit log (default: cli:<os user>).")(
        func
    )


def _decision_options(func: Any) -> Any:
    """The arguments and options of a decision on one held version: ``ID VERSION --note --as`` and the feed's."""
    for decorate in reversed(
        (
            click.argument("package_id", metavar="ID"),
            click.argument("version"),
            click.option("--note", default="", help="Why (recorded in the audit log)."),
            _actor_option,
            _feed_options,
        )
    ):
        func = decorate(func)
    return func


@contextlib.contextmanager
def _session(data_dir: Path, database_url: str | None, *, write: bool) -> Iterator[Any]:
    """A session on the feed's database (migrated), in a write or a read transaction; the database is disposed."""
    db = _database(data_dir, database_url)
    try:
        with db.write() if write else db.read() as session:
            yield session
    finally:
        db.dispose()


@contextlib.contextmanager
def _quarantine(data_dir: Path, database_url: str | None) -> Iterator[Quarantine]:
    """The feed as its last ``nuseal serve`` start configured it (base URL, signing), composed as the server composes
    it (:func:`nuseal.feed.compose.build_feed`), so a release runs the same publish hooks.

    Raises:
        ConfigError: the feed has never been started (no documents to publish into yet).
    """
    from nuseal.errors import ConfigError  # noqa: PLC0415
    from nuseal.feed.compose import build_feed  # noqa: PLC0415 - imports the feed stack
    from nuseal.feed.config import FeedConfig, SigningConfig  # noqa: PLC0415
    from nuseal.feed.publish.publisher import stored_signing_config  # noqa: PLC0415
    from nuseal.feed.store.models import FeedSetting  # noqa: PLC0415

    db = _database(data_dir, database_url)  # migrates
    try:
        signing = stored_signing_config(db) or SigningConfig()
        with db.read() as session:
            base = session.get(FeedSetting, "documents.base_url")
    finally:
        db.dispose()
    if base is None:
        raise ConfigError("the feed has never written its documents; start it once with `nuseal serve`")
    config = FeedConfig(data_dir=data_dir, base_url=base.value, database_url=database_url, signing=signing)
    feed = build_feed(config)
    try:
        if feed.ingestion is None:  # pragma: no cover - compose always builds it
            raise ConfigError("this feed has no ingestion checks")
        yield feed.ingestion.quarantine
    finally:
        feed.close()


def _show(view: HoldView, *, full: bool) -> None:
    when = f", appears at {view.release_at.isoformat()}" if view.release_at and view.state == "held" else ""
    who = f" by {view.pushed_by}" if view.pushed_by else (f" from {view.upstream_url}" if view.upstream_url else "")
    click.echo(f"{view.id} {view.version}  [{view.state}]  {view.source}{who}, {view.created_at.isoformat()}{when}")
    for reason in view.reasons:
        click.echo(f"  {reason['stage']}: {reason['summary']}")
        if not full:
            continue
        evidence = reason.get("evidence", {})
        for f in evidence.get("findings", []):
            where = f"{f.get('path') or ''}{':' + str(f['line']) if f.get('line') else ''}"
            click.echo(f"    {f['rule']} {f['severity']} {where}: {f['message']}")
            if f.get("snippet"):
                click.echo(f"      | {f['snippet']}")
        for c in evidence.get("codes", []):
            if c.get("code"):
                click.echo(f"    {c['code']} ({c['level']}): {c['message']}")
        if evidence.get("signer") is not None or evidence.get("accepted"):
            s = evidence.get("signer")
            click.echo(
                "    new signer: "
                + (f"{s['subject']} (issuer {s['issuer']}, SHA-256 {s['fingerprint']})" if s else "none (unsigned)")
            )
            for a in evidence.get("accepted", []):
                click.echo(f"    accepted:   {a['subject']} (issuer {a['issuer']}, SHA-256 {a['fingerprint']})")
        if evidence.get("imitates"):
            click.echo(f"    imitates: {evidence['imitates']} ({evidence.get('rule')})")
        for a in evidence.get("malicious", []):
            click.echo(f"    advisory: {a['id']}: {a.get('summary') or ''}")
    if view.decided_at:
        note = f" ({view.decision_note})" if view.decision_note else ""
        click.echo(f"  decided by {view.decided_by} at {view.decided_at.isoformat()}{note}")


@admin_group.group("quarantine")
def quarantine_group() -> None:
    """Versions held by the ingestion checks: list, show the evidence, release or reject."""


@quarantine_group.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["held", "released", "rejected", "refused"]),
    help="Only these states (repeatable; default: held).",
)
@click.option("--all", "all_states", is_flag=True, help="Every state.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@_feed_options
def list_command(
    *, states: tuple[str, ...], all_states: bool, as_json: bool, data_dir: Path, database_url: str | None
) -> None:
    """List quarantine records (held versions by default) with their reasons."""
    with _quarantine(data_dir, database_url) as q:
        views = q.holds(states=() if all_states else (states or ("held",)))
    if as_json:
        click.echo(json.dumps([v.to_json() for v in views], indent=2))
        return
    for view in views:
        _show(view, full=False)
    if not views:
        click.echo("nothing in quarantine")


@quarantine_group.command("show")
@click.argument("package_id", metavar="ID")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@_feed_options
def show_command(*, package_id: str, version: str, as_json: bool, data_dir: Path, database_url: str | None) -> None:
    """Show one quarantine record with its evidence (findings with snippets, NU codes, signer change)."""
    with _quarantine(data_dir, database_url) as q:
        view = q.get(package_id, version)
    if view is None:
        raise click.ClickException(f"{package_id} {version} is not in quarantine")
    if as_json:
        click.echo(json.dumps(view.to_json(), indent=2))
        return
    _show(view, full=True)


@quarantine_group.command("release")
@_decision_options
def release_command(
    *, package_id: str, version: str, note: str, actor: str | None, data_dir: Path, database_url: str | None
) -> None:
    """Publish a held version (the held bytes, through the push path)."""
    with _quarantine(data_dir, database_url) as q:
        published = q.release(package_id, version, actor=_actor(actor), note=note)
    click.echo(f"released {published.id} {published.version}")


@quarantine_group.command("reject")
@_decision_options
def reject_command(
    *, package_id: str, version: str, note: str, actor: str | None, data_dir: Path, database_url: str | None
) -> None:
    """Reject a held version: it is never served and its bytes are removed."""
    with _quarantine(data_dir, database_url) as q:
        view = q.reject(package_id, version, actor=_actor(actor), note=note)
    click.echo(f"rejected {view.id} {view.version}")


@quarantine_group.command("accept-signer")
@click.argument("package_id", metavar="ID")
@click.argument("version")
@click.option("--no-release", is_flag=True, help="Only accept the signer; leave the version held.")
@_actor_option
@_feed_options
def accept_signer_command(
    *, package_id: str, version: str, no_release: bool, actor: str | None, data_dir: Path, database_url: str | None
) -> None:
    """Accept the author signer of a held version for its id (signer continuity); release the version when the
    signer change was its only reason."""
    with _quarantine(data_dir, database_url) as q:
        signer, published = q.accept_signer(package_id, version, actor=_actor(actor), release=not no_release)
    click.echo(f"accepted {signer.subject} (SHA-256 {signer.fingerprint}) for {package_id}")
    if published is not None:
        click.echo(f"released {published.id} {published.version}")


@quarantine_group.command("override-cooldown")
@click.argument("package_id", metavar="ID")
@click.argument("version", required=False)
@_actor_option
@_feed_options
def override_cooldown_command(
    *, package_id: str, version: str | None, actor: str | None, data_dir: Path, database_url: str | None
) -> None:
    """Let VERSION (or every version) of ID skip the --min-release-age cooldown."""
    with _quarantine(data_dir, database_url) as q:
        q.override_cooldown(package_id, version, actor=_actor(actor))
        released = q.release_due()
    click.echo(f"cooldown overridden for {package_id}{' ' + version if version else ' (every version)'}")
    for p in released:
        click.echo(f"released {p.id} {p.version}")


@admin_group.command("reserve-prefix")
@click.argument("prefix")
@click.argument("owner")
@_actor_option
@_feed_options
def reserve_prefix_command(
    *, prefix: str, owner: str, actor: str | None, data_dir: Path, database_url: str | None
) -> None:
    """Reserve the id PREFIX for user OWNER: only its owners may push new ids under it (nuget.org's id prefix
    reservation); their packages show a verified mark."""
    from nuseal.feed.accounts.admins import reserve_prefix  # noqa: PLC0415

    with _session(data_dir, database_url, write=True) as session:
        r = reserve_prefix(session, prefix, owner, actor=_actor(actor), now=datetime.now(UTC))
    click.echo(f"reserved {r.prefix} for {r.owner}")


@admin_group.command("unreserve-prefix")
@click.argument("prefix")
@click.argument("owner", required=False)
@_actor_option
@_feed_options
def unreserve_prefix_command(
    *, prefix: str, owner: str | None, actor: str | None, data_dir: Path, database_url: str | None
) -> None:
    """Remove the reservation of PREFIX (for OWNER only, when given)."""
    from nuseal.feed.accounts.admins import unreserve_prefix  # noqa: PLC0415

    with _session(data_dir, database_url, write=True) as session:
        n = unreserve_prefix(session, prefix, owner, actor=_actor(actor), now=datetime.now(UTC))
    click.echo(f"removed {n} reservation(s)")


@admin_group.command("list-prefixes")
@_feed_options
def list_prefixes_command(*, data_dir: Path, database_url: str | None) -> None:
    """List reserved id prefixes and their owners."""
    from nuseal.feed.accounts.admins import list_prefixes  # noqa: PLC0415

    with _session(data_dir, database_url, write=False) as session:
        rows = list_prefixes(session)
    for r in rows:
        click.echo(f"{r.prefix}  {r.owner}  (by {r.created_by}, {r.created_at.isoformat()})")


@admin_group.command("set-admin")
@click.argument("name")
@click.option("--revoke", is_flag=True, help="Take the administrator role away.")
@_actor_option
@_feed_options
def set_admin_command(*, name: str, revoke: bool, actor: str | None, data_dir: Path, database_url: str | None) -> None:
    """Make user NAME a feed administrator (quarantine decisions on the web page, the quarantine header)."""
    from nuseal.feed.accounts.admins import set_admin  # noqa: PLC0415

    with _session(data_dir, database_url, write=True) as session:
        set_admin(session, name, admin=not revoke, actor=_actor(actor), now=datetime.now(UTC))
    click.echo(f"{name} is {'no longer ' if revoke else ''}an administrator")
