"""The feed's one composition root: what a running feed is made of, in order, built in one place.

``nuseal serve`` (its parent process, which migrates and recovers), every uvicorn worker (:func:`app_from_env`) and
the tests build the feed here and nowhere else::

    feed = build_feed(config)          # service + signing context + pipeline + background tasks + extra routes
    feed.service.setup()               # once per start: migrate, recover, setup hooks, service index
    app = feed.app()                   # the ASGI application (nuseal.feed.http.app.create_app)

What is wired, each list in its order (the order matters and is only written here):

* push stages (:func:`push_stages`): ``check_container -> read_manifest -> check_permissions ->
  check_not_duplicate`` then, with signing on, ``check_signatures -> repository_sign``; the publisher runs after
  the last one;
* publish hooks, inside the publish transaction (:func:`publish_hooks`): with signing on,
  ``record_signatures -> keep_all_repository_signed`` (the second reads the rows the first wrote);
* setup hooks, at each start after migration and recovery (:func:`setup_hooks`): with signing on, recording the
  repository certificate and writing ``RepositorySignatures/5.0.0`` (the listed other repositories' certificates
  after it); with signing off, writing it with only the listed certificates, if any;
* background tasks of every serving process (:func:`background_tasks`): with signing on and a period, the
  revocation recheck (:class:`~nuseal.feed.signing.revalidation.RevalidationTask`); with ``--osv`` and
  ``--osv-refresh``, the OSV refresh (:class:`~nuseal.feed.mirror.osv_refresh.OsvRefreshTask`: each process takes a
  change of the folder, the lease holder rewrites the ``VulnerabilityInfo`` documents); the download-count flush
  belongs to the HTTP layer and always runs;
* extra routes (:func:`extra_routes`): the quarantine's admin page;
* the read-through mirror (``--upstream``; :mod:`nuseal.feed.mirror.readthrough`): a layer in front of the static
  layer for ``/v3/`` reads of upstream ids, upstream hits added to search, and :class:`MirrorTask` (the upstream
  clients' lifespan).

Issue 16 (ingestion and quarantine, :mod:`nuseal.feed.mirror`): :class:`~nuseal.feed.mirror.ingest.Ingestion` is built
with the service (``Feed.ingestion``; the mirror calls ``ingestion.ingest``); its push stages run after
``check_not_duplicate`` (``check_not_held -> protect_id -> check_content``) and, after repository signing,
``quarantine_gate``; ``quarantine.publish_hook`` is the last publish hook; ``CooldownReleaseTask`` is a background task;
``/admin/quarantine`` an extra route; the flat container's 404 names a held version's reasons to an admin's key.

Extension points (issue 16: the upstream mirror, ingestion, quarantine and the scan stage): a new stage goes into
:func:`push_stages` at its place (a check that refuses packages goes before ``check_signatures`` and
``repository_sign``, so nothing refused is ever signed), a background task into :func:`background_tasks` (an object
with ``async run()`` and ``published()``, :class:`~nuseal.feed.http.app.BackgroundTask`), a dynamic route into
:func:`extra_routes`; each decided from the configuration. Nothing else appends hooks or stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from nuseal.errors import ConfigError
from nuseal.feed.config import FeedConfig
from nuseal.feed.http.app import BackgroundTask, FeedRouter, create_app
from nuseal.feed.http.quarantine import QuarantineHeader, QuarantineRoutes
from nuseal.feed.mirror import osv_refresh, quarantine, vulnerabilities
from nuseal.feed.mirror.ingest import CooldownReleaseTask, Ingestion
from nuseal.feed.mirror.osv_refresh import OsvData, OsvRefreshTask
from nuseal.feed.mirror.push import PushChecks
from nuseal.feed.mirror.readthrough import MirrorTask, ReadThroughLayer, ReadThroughMirror, build_mirror
from nuseal.feed.publish.pipeline import (
    PushPipeline,
    check_container,
    check_not_duplicate,
    check_permissions,
    read_manifest,
)
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.submission import PublishHook, SetupHook, SubmissionStage
from nuseal.feed.signing import repository_certificates
from nuseal.feed.signing.signer import FeedSigning
from nuseal.feed.signing.stages import SigningStages
from nuseal.trust import RevocationFetcher
from nuseal.trust.online import HttpRevocationFetcher

__all__ = [
    "Feed",
    "app_from_env",
    "background_tasks",
    "build_app",
    "build_feed",
    "extra_routes",
    "last_started_signing_service",
    "publish_hooks",
    "push_stages",
    "setup_hooks",
]


def push_stages(signing: SigningStages | None, ingest: PushChecks | None = None) -> tuple[SubmissionStage, ...]:
    """The push stages in the order they run (the publisher comes after the last one)."""
    stages: list[SubmissionStage] = [
        check_container,  # a 32-bit ZIP nuseal.package reads, hardened, a well-formed signature entry (NU3005)
        read_manifest,  # exactly one valid nuspec
        check_permissions,  # the key's scopes and globs, the id's owners
        check_not_duplicate,  # 409 before any expensive stage
    ]
    if ingest is not None:
        stages += [
            ingest.check_not_held,  # 409 for a version held in quarantine or refused for good
            ingest.protect_id,  # reserved id prefixes (403), look-alike ids (400)
            ingest.check_content,  # scan (block rules: 400), known-bad (OSV malicious: 400), signer continuity
        ]
    if signing is not None:
        stages += [
            signing.check_signatures,  # nuget.org's submission rules (author signature, registered certificates)
            signing.repository_sign,  # the feed's repository signature: rewrites the package
        ]
    if ingest is not None:
        stages.append(ingest.quarantine_gate)  # a check said "hold": the (signed) package waits in quarantine, 201
    return tuple(stages)


def publish_hooks(signing: SigningStages | None) -> tuple[PublishHook, ...]:
    """Run inside the publish transaction after the package row is inserted, in this order."""
    hooks: list[PublishHook] = []
    if signing is not None:
        hooks += [
            signing.record_signatures,  # package_signatures rows and audit entries
            repository_certificates.keep_all_repository_signed,  # reads the rows written just before
        ]
    hooks.append(quarantine.publish_hook)  # issue 16: stage results, released holds, the id's first author signer
    return tuple(hooks)


def setup_hooks(signing: FeedSigning | None, config: FeedConfig, osv: OsvData | None = None) -> tuple[SetupHook, ...]:
    """Run by :meth:`FeedService.setup` at each start, after migration and recovery, in this order: the repository
    certificates, then the ``VulnerabilityInfo/6.7.0`` documents (written from ``--osv``, through ``osv``, the data
    the known-bad check uses, when given; removed without ``--osv``)."""
    return (
        *_repository_setup_hooks(signing),
        osv_refresh.setup_hook(osv) if osv is not None else vulnerabilities.setup_hook(config.ingest.osv_path),
        quarantine.sweep_hook,  # quarantine files no held version points to (issue 16)
    )


def _repository_setup_hooks(signing: FeedSigning | None) -> tuple[SetupHook, ...]:
    if signing is None:  # other repositories' certificates, if the configuration lists any
        return (repository_certificates.listed_setup_hook,)
    return (repository_certificates.setup_hook(signing),)


def background_tasks(
    service: FeedService,
    ingestion: Ingestion | None = None,
    fetcher: RevocationFetcher | None = None,
    *,
    mirror: ReadThroughMirror | None = None,
    osv: OsvData | None = None,
) -> tuple[BackgroundTask, ...]:
    """The background tasks every serving process runs, from the configuration (``fetcher``: the feed's revocation
    transport; the revocation recheck needs one; ``osv``: the ``--osv`` data, refreshed every ``--osv-refresh``)."""
    tasks: list[BackgroundTask] = []
    signing = service.config.signing
    if signing.enabled and signing.revalidate_seconds > 0 and fetcher is not None:
        from nuseal.feed.signing.revalidation import RevalidationTask  # noqa: PLC0415 - the revocation stack

        tasks.append(RevalidationTask(service, signing.revalidate_seconds, fetcher))
    if ingestion is not None and service.config.ingest.release_check_seconds > 0:
        tasks.append(CooldownReleaseTask(ingestion))  # releases held versions whose cooldown ended
    if mirror is not None:
        tasks.append(MirrorTask(mirror))  # holds the upstream clients' connections; closes them at shutdown
    if osv is not None and osv.refresh_seconds > 0:
        tasks.append(OsvRefreshTask(service, osv))  # takes a changed --osv folder; one process rewrites the documents
    return tuple(tasks)


def extra_routes(service: FeedService, ingestion: Ingestion | None = None) -> tuple[BaseRoute, ...]:
    """Dynamic routes beyond the feed's own (:func:`nuseal.feed.http.app.create_app`), from the configuration."""
    routes: list[BaseRoute] = []
    if ingestion is not None:
        routes += QuarantineRoutes(service, ingestion).routes()  # /admin/quarantine: held versions, decisions
    return tuple(routes)


@dataclass(frozen=True)
class Feed:
    """One feed, composed: the service (with its hooks), the signing context (None: signing off), the push
    pipeline, the background tasks and the extra routes."""

    service: FeedService
    signing: FeedSigning | None
    pipeline: PushPipeline
    tasks: tuple[BackgroundTask, ...]
    routes: tuple[BaseRoute, ...]
    #: Issue 16: the ingestion checks and quarantine (the mirror calls ``ingestion.ingest``).
    ingestion: Ingestion | None = None
    #: Issue 16: the read-through mirror of the configured upstreams (None: no ``--upstream``).
    mirror: ReadThroughMirror | None = None
    #: Whether :meth:`close` closes the signing context (False when the caller passed one in and owns it).
    owns_signing: bool = True
    #: The ``--osv`` data of this process (None: no ``--osv``), taken again when the folder changes.
    osv: OsvData | None = None

    @property
    def config(self) -> FeedConfig:
        return self.service.config

    @property
    def stages(self) -> tuple[SubmissionStage, ...]:
        return self.pipeline.stages

    def app(self) -> FeedRouter:
        """The ASGI application. :meth:`FeedService.setup` must have run (here or in another process)."""
        mirror, ingestion, service = self.mirror, self.ingestion, self.service

        def reads(static: ASGIApp) -> ASGIApp:
            # the mirror answers /v3/ reads of upstream ids before the static layer; a held version's .nupkg 404
            # names why, to an administrator's key (both inside the security headers' layer)
            layer = ReadThroughLayer(static, mirror) if mirror is not None else static
            return QuarantineHeader(layer, service, ingestion) if ingestion is not None else layer

        return create_app(
            service,
            self.pipeline,
            self.tasks,
            self.routes,
            reads=reads,
            search_extension=mirror.extend_search if mirror is not None else None,
            upstream_pages=mirror.page_info if mirror is not None else None,
            autocomplete_extension=mirror.extend_autocomplete if mirror is not None else None,
        )

    def close(self) -> None:
        """Release the database connections (the application's lifespan does it when it ran) and, when this
        feed loaded its signing context, the repository signer's session: a PKCS#11 token allows one login per
        process, and ``nuseal serve`` builds the feed once to set it up before its (same-process) worker builds
        it again."""
        self.service.db.dispose()
        if self.owns_signing and self.signing is not None:
            close = getattr(self.signing.signer, "close", None)
            if callable(close):
                close()


def build_feed(
    config: FeedConfig,
    *,
    clock: Callable[[], datetime] | None = None,
    signing: FeedSigning | None = None,
    fetcher: RevocationFetcher | None = None,
) -> Feed:
    """Compose the feed for ``config``: open its database and storage (no migration: :meth:`FeedService.setup`),
    load the signing context when signing is on (``signing`` reuses one already loaded for the same
    configuration), and wire the stages, hooks, background tasks and routes in their order (module docstring).
    ``fetcher`` is the feed's revocation transport for submission checks, repository signing, the upstream
    mirror's checks and the revocation recheck: the feed checks revocation online, so the default is an
    :class:`~nuseal.trust.online.HttpRevocationFetcher` made here (the one place the feed decides to go online).

    Raises:
        ConfigError: bad database URL, or the signing configuration cannot be loaded (a trust bundle, the
            repository key or the TSA; checked now, not at the first push).
    """
    if fetcher is None:
        fetcher = HttpRevocationFetcher()
    owns_signing = signing is None
    if config.signing.enabled and signing is None:
        signing = FeedSigning.load(config, fetcher=fetcher)
    elif not config.signing.enabled:
        signing = None
    stages = SigningStages(signing) if signing is not None else None
    ingest = config.ingest
    osv = (
        OsvData(ingest.osv_path, clock=clock or _wall_clock, refresh_seconds=ingest.osv_refresh_seconds)
        if ingest.osv_path
        else None
    )
    service = FeedService.open(
        config, clock=clock, publish_hooks=publish_hooks(stages), setup_hooks=setup_hooks(signing, config, osv)
    )
    ingestion = Ingestion.for_service(service, osv=osv, fetcher=fetcher)
    pipeline = PushPipeline(service, push_stages(stages, ingestion.push))
    mirror = build_mirror(service, ingestion)  # config.upstreams; None without --upstream
    return Feed(
        service,
        signing,
        pipeline,
        background_tasks(service, ingestion, fetcher, mirror=mirror, osv=osv),
        extra_routes(service, ingestion),
        ingestion,
        mirror,
        owns_signing,
        osv,
    )


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def last_started_signing_service(data_dir: Path, database_url: str | None, *, why: str) -> FeedService:
    """The feed service as its last ``nuseal serve`` start configured it (signing and base URL, read from its
    database), for the signing commands run beside a feed (``nuseal admin revalidate``, ``repository-sign``).

    Raises:
        ConfigError: the feed never started, or started without signing (``why`` says what that means to the
            caller).
    """
    from nuseal.feed.accounts.service import open_database  # noqa: PLC0415
    from nuseal.feed.publish.publisher import stored_signing_config  # noqa: PLC0415
    from nuseal.feed.store.models import FeedSetting  # noqa: PLC0415

    db = open_database(data_dir, database_url)
    try:
        signing = stored_signing_config(db)
        with db.read() as session:
            base = session.get(FeedSetting, "documents.base_url")
    finally:
        db.dispose()
    if signing is None or not signing.enabled:
        raise ConfigError(
            f"this feed has not been started with signing enabled (`nuseal serve` without --no-signing); {why}"
        )
    if base is None:
        raise ConfigError("the feed has never written its documents; start it once with `nuseal serve`")
    config = FeedConfig(data_dir=data_dir, base_url=base.value, database_url=database_url, signing=signing)
    return FeedService.open(config)


def build_app(config: FeedConfig, *, clock: Callable[[], datetime] | None = None, setup: bool = True) -> FeedRouter:
    """:func:`build_feed`, :meth:`FeedService.setup` (unless ``setup`` is False: another process did it), and the
    ASGI application; what an in-process test serves through ``httpx.ASGITransport``."""
    feed = build_feed(config, clock=clock)
    if setup:
        feed.service.setup()
    return feed.app()


def app_from_env(*, clock: Callable[[], datetime] | None = None) -> FeedRouter:
    """uvicorn factory for worker processes: the configuration comes from ``NUSEAL_FEED_CONFIG`` (the parent process
    migrated and ran the setup hooks); the worker finishes what a worker that died mid-push left (``docs/feed.md``,
    Crash consistency). ``clock``: the feed's clock (``nuseal serve`` passes its own; default the wall clock)."""
    feed = build_feed(FeedConfig.from_env(), clock=clock)
    feed.service.recover_pending()
    return feed.app()
