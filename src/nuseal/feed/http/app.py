"""The feed's ASGI application (Starlette, under uvicorn).

Routes:

* ``GET|HEAD /v3/...``: the static documents and packages of the storage folder (:mod:`nuseal.feed.protocol.static`);
* ``GET /v3/search``, ``GET /v3/autocomplete``: :mod:`nuseal.feed.protocol.search`;
* ``PUT /api/v2/package``: push (``X-NuGet-ApiKey``, multipart body), 201 on success;
* ``DELETE /api/v2/package/{id}/{version}``: unlist (204); ``POST`` the same path: relist (200);
* ``PUT|DELETE /api/owners/{id}/{user}``: an owner adds or removes an owner (nuseal's own, not NuGet's);
* ``GET /api/v2/...``: the read-only V2 listing ``nuget list`` needs (:mod:`nuseal.feed.protocol.v2`);
* ``GET /``, ``/packages``, ``/packages/{id}``, ``/packages/{id}/{version}``: web pages (:mod:`nuseal.feed.http.pages`);
* ``/api/account...`` and ``/account...``: 2FA and signing-certificate registration (:mod:`nuseal.feed.http.account`);
* ``GET /static/feed.css``: the pages' stylesheet (:mod:`nuseal.feed.http.pages`).

Every response gets the security headers of its class from one ASGI layer (:mod:`nuseal.feed.http.headers`).

With signing enabled (``FeedConfig.signing``) the push pipeline adds the signature checks and repository signing
(:mod:`nuseal.feed.signing.stages`), and a background task rechecks revocation
(:mod:`nuseal.feed.signing.revalidation`).

Nothing in the process is state other workers need: the database and the storage folder are the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from nuseal.feed.accounts.keys import Principal, authenticate
from nuseal.feed.config import FeedConfig
from nuseal.feed.errors import REASON_PHRASE_HEADER, FeedError, reason_phrase
from nuseal.feed.http import pages
from nuseal.feed.http.account import AccountRoutes
from nuseal.feed.http.headers import SecureHeaders
from nuseal.feed.protocol import search as search_mod
from nuseal.feed.protocol import v2
from nuseal.feed.protocol.documents import dump
from nuseal.feed.protocol.downloads import DownloadCounter
from nuseal.feed.protocol.static import StaticDocuments
from nuseal.feed.publish.pipeline import PushPipeline, Submission
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.upload import MAX_DRAIN_BYTES, receive_upload

__all__ = ["API_KEY_HEADER", "FeedApp", "app_from_env", "create_app", "error_response"]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-NuGet-ApiKey"
#: NuGet clients print this header's value (NuGet.Client ``ProtocolConstants.ServerWarningHeader``).
WARNING_HEADER = "X-NuGet-Warning"
_DYNAMIC_V3 = frozenset({"/v3/search", "/v3/autocomplete"})
MAX_HEADER_MESSAGE = 400


def _header_safe(message: str) -> str:
    text = " ".join(message.split())
    text = text.encode("latin-1", "replace").decode("latin-1")
    return text[:MAX_HEADER_MESSAGE]


def error_response(exc: FeedError) -> Response:
    """Plain-text body with the message, the same message in ``X-NuGet-Warning`` and, through the private
    :data:`~nuseal.feed.errors.REASON_PHRASE_HEADER` that :mod:`nuseal.feed.http.protocol` turns into the status line's
    reason phrase, in the error line NuGet clients print (docs/adr/0006-reason-phrase.md)."""
    headers = {WARNING_HEADER: _header_safe(str(exc)), "Cache-Control": "no-store"}
    if exc.status >= 400:  # a 201 "held in quarantine" (issue 16) keeps the standard phrase
        headers[REASON_PHRASE_HEADER] = reason_phrase(str(exc))
    return PlainTextResponse(str(exc) + "\n", status_code=exc.status, headers=headers)


def json_response(doc: Any, request: Request, *, cache: str = "public, no-cache") -> Response:
    """JSON with a content-hash ETag, answering ``If-None-Match`` with 304."""
    body = dump(doc)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": cache, "Access-Control-Allow-Origin": "*"}
    if etag in [v.strip().removeprefix("W/") for v in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json; charset=utf-8", headers=headers)


async def _drain(request: Request) -> None:
    """Read and drop what is left of a refused request's body, at most :data:`MAX_DRAIN_BYTES` (a client that
    writes its whole body before reading gets to see the answer); a stalled client is ended by the server's
    body timeout (:mod:`nuseal.feed.http.protocol`)."""
    seen = 0
    with contextlib.suppress(Exception):
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > MAX_DRAIN_BYTES:
                break


def _closing(response: Response) -> Response:
    response.headers["Connection"] = "close"
    return response


#: How long the background revalidation waits after a push before asking the new certificates (seconds).
NEW_CERTIFICATE_DELAY_SECONDS = 2.0


class FeedApp:
    """The handlers, bound to one :class:`FeedService` and push pipeline."""

    def __init__(self, service: FeedService, pipeline: PushPipeline | None = None) -> None:
        self.service = service
        if pipeline is None:
            from nuseal.feed.signing.stages import signing_pipeline  # noqa: PLC0415 - imports the signing stack

            pipeline = signing_pipeline(service)
        self.pipeline = pipeline
        self.downloads = DownloadCounter()
        #: Set by every push: the background revalidation (when it runs) asks the certificates never asked yet.
        self._new_certificates = asyncio.Event()

    # -------------------------------------------------------------------------------------- auth
    async def principal(self, request: Request) -> Principal:
        key = request.headers.get(API_KEY_HEADER)
        now = self.service.clock()

        def check() -> Principal:
            with self.service.db.read() as session:
                return authenticate(session, key, now=now)

        return await anyio.to_thread.run_sync(check)

    # -------------------------------------------------------------------------------------- push / unlist
    async def push(self, request: Request) -> Response:
        try:
            principal = await self.principal(request)
        except FeedError as exc:
            await _drain(request)
            return _closing(error_response(exc))
        length_text = request.headers.get("content-length")
        try:
            length = int(length_text) if length_text is not None else None
        except ValueError:
            length = None
        try:
            upload = await receive_upload(
                request.stream(),
                content_type=request.headers.get("content-type"),
                content_length=length,
                staging_dir=self.service.config.staging_dir,
                cap=self.service.config.max_package_size,
            )
        except ClientDisconnect:
            # the client went away (or the server's body timeout ended it) mid-body: nothing was stored
            log.info("push by %s: the body ended early (client gone); nothing stored", principal.user_name)
            return Response(status_code=400)  # nobody is left to read it
        except FeedError as exc:
            # the body may not have been read to its end: answer, then close rather than read the rest as a request
            return _closing(error_response(exc))
        submission = Submission(upload=upload, principal=principal, now=self.service.clock())
        try:
            published = await anyio.to_thread.run_sync(self.pipeline.run, submission)
        finally:
            upload.discard()
        log.info(
            "published %s %s (%d bytes) by %s", published.id, published.version, published.size, principal.user_name
        )
        self._new_certificates.set()
        text = f"Published {published.id} {published.version}\n"
        headers = {}
        if submission.warnings:
            text += "".join(f"warning: {w}\n" for w in submission.warnings)
            headers[WARNING_HEADER] = _header_safe(" ".join(submission.warnings))
        return PlainTextResponse(text, status_code=201, headers=headers)

    async def set_listed(self, request: Request) -> Response:
        principal = await self.principal(request)
        package_id = request.path_params["id"]
        version = request.path_params["version"]
        listed = request.method == "POST"
        await anyio.to_thread.run_sync(lambda: self.service.set_listed(principal, package_id, version, listed=listed))
        if listed:
            return PlainTextResponse(f"Relisted {package_id} {version}\n", status_code=200)
        return Response(status_code=204)

    async def owners(self, request: Request) -> Response:
        """``PUT /api/owners/{id}/{user}`` adds an owner, ``DELETE`` removes one; the caller must own the id."""
        principal = await self.principal(request)
        package_id = request.path_params["id"]
        user = request.path_params["user"]
        add = request.method == "PUT"
        owners = await anyio.to_thread.run_sync(lambda: self.service.change_owner(principal, package_id, user, add=add))
        return json_response({"id": package_id, "owners": owners}, request, cache="no-store")

    # -------------------------------------------------------------------------------------- search
    async def search(self, request: Request) -> Response:
        query = search_mod.parse_search_query(request.query_params)

        def run() -> dict[str, Any]:
            with self.service.db.read() as session:
                return search_mod.search(session, self.service.urls, query)

        return json_response(await anyio.to_thread.run_sync(run), request)

    async def autocomplete(self, request: Request) -> Response:
        params = request.query_params

        def run() -> dict[str, Any]:
            with self.service.db.read() as session:
                return search_mod.autocomplete(session, params)

        return json_response(await anyio.to_thread.run_sync(run), request)

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})

    # -------------------------------------------------------------------------------------- downloads
    async def flush_downloads(self) -> None:
        counts = self.downloads.take()
        if not counts:
            return
        try:
            await anyio.to_thread.run_sync(self.service.add_downloads, counts)
        except Exception:
            log.exception("could not record download counts; will retry")
            self.downloads.give_back(counts)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.service.config.download_flush_seconds)
                await self.flush_downloads()

        task = asyncio.create_task(loop())
        stop = threading.Event()
        signing = self.service.config.signing
        revalidating = (
            asyncio.create_task(self._revalidation_loop(signing.revalidate_seconds, stop))
            if signing.enabled and signing.revalidate_seconds > 0
            else None
        )
        try:
            yield
        finally:
            stop.set()
            for running in (task, revalidating):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running
            await self.flush_downloads()
            await anyio.to_thread.run_sync(self.service.db.dispose)

    async def _revalidation_loop(self, period: float, stop: threading.Event) -> None:
        """Every ``period`` seconds, the revocation recheck (:func:`nuseal.feed.signing.revalidation.revalidate`), in a
        thread, by whichever worker holds the lease (one at a time across workers and processes sharing the
        database). A push wakes it early (after :data:`NEW_CERTIFICATE_DELAY_SECONDS`, so a burst of pushes makes
        one run) for a run over the certificates never asked yet, so a new signer's revocation status shows in
        seconds; the full run keeps its period. The lease is renewed while a run goes on and given up at
        shutdown. Failures are logged, the loop goes on."""
        from nuseal.feed.signing import revalidation  # noqa: PLC0415 - imports the signing stack

        owner = revalidation.new_lease_owner()
        renewed = [0.0]

        def keep_lease() -> bool:
            """``should_stop`` of the run: stop at shutdown or when the lease cannot be renewed."""
            if stop.is_set():
                return True
            if time.monotonic() - renewed[0] >= revalidation.LEASE_RENEW_SECONDS:
                if not revalidation.try_acquire_lease(self.service, owner, seconds=revalidation.LEASE_SECONDS):
                    return True
                renewed[0] = time.monotonic()
            return False

        def run_once(only_unchecked: bool) -> revalidation.RevalidationSummary | None:
            if not revalidation.try_acquire_lease(self.service, owner, seconds=revalidation.LEASE_SECONDS):
                return None
            renewed[0] = time.monotonic()
            return revalidation.revalidate(self.service, should_stop=keep_lease, only_unchecked=only_unchecked)

        next_full = time.monotonic() + period
        try:
            while True:
                only_unchecked = await self._wait_for_revalidation(next_full - time.monotonic())
                if not only_unchecked:
                    next_full = time.monotonic() + period
                try:
                    summary = await anyio.to_thread.run_sync(run_once, only_unchecked, abandon_on_cancel=True)
                except Exception:
                    log.exception("revalidation failed; retrying in %g s", period)
                    continue
                if summary is not None and (summary.status_changes or summary.packages_revoked):
                    log.warning("revalidation: %s", summary.describe())
                elif summary is not None and summary.checks:
                    log.info("revalidation: %s", summary.describe())
        finally:
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(revalidation.release_lease, self.service, owner)

    async def _wait_for_revalidation(self, seconds: float) -> bool:
        """Wait until the next full run is due (``seconds`` from now; returns False) or a push asks for the new
        certificates (returns True, :data:`NEW_CERTIFICATE_DELAY_SECONDS` later)."""
        try:
            await asyncio.wait_for(self._new_certificates.wait(), timeout=max(seconds, 0.0))
        except TimeoutError:
            return False
        await asyncio.sleep(NEW_CERTIFICATE_DELAY_SECONDS)
        self._new_certificates.clear()
        return True


async def _feed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FeedError)
    return error_response(exc)


class _Router:
    """Outer ASGI layer: static ``/v3/`` reads go straight to :class:`StaticDocuments`, the rest to Starlette;
    both behind :class:`~nuseal.feed.http.headers.SecureHeaders`, so every response carries the security headers of
    its class (page, download, document)."""

    def __init__(self, static: StaticDocuments, app: Starlette, feed: FeedApp) -> None:
        self.static = static
        self.app = app
        self.feed = feed
        self._static = SecureHeaders(static, static=True)
        self._app = SecureHeaders(app, static=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith("/v3/")
            and scope["path"] not in _DYNAMIC_V3
        ):
            await self._static(scope, receive, send)
            return
        await self._app(scope, receive, send)


def create_app(service: FeedService, pipeline: PushPipeline | None = None) -> _Router:
    """The ASGI application for ``service``. ``service.setup()`` must have run (it migrates and writes the
    service index)."""
    feed = FeedApp(service, pipeline)
    site = pages.Pages(service)
    account = AccountRoutes(service, site.env)
    legacy = v2.LegacyFeed(service)
    routes = [
        Route("/", lambda r: RedirectResponse("/packages", status_code=302), methods=["GET", "HEAD"]),
        Route("/health", feed.health, methods=["GET", "HEAD"]),
        Route("/v3/search", feed.search, methods=["GET", "HEAD"]),
        Route("/v3/autocomplete", feed.autocomplete, methods=["GET", "HEAD"]),
        Route("/api/v2/package", feed.push, methods=["PUT", "POST"]),
        Route("/api/v2/package/", feed.push, methods=["PUT", "POST"]),
        Route("/api/v2/package/{id}/{version}", feed.set_listed, methods=["DELETE", "POST"]),
        Route("/api/owners/{id}/{user}", feed.owners, methods=["PUT", "DELETE"]),
        *legacy.routes(),
        *site.routes(),
        *account.routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={FeedError: _feed_error}, lifespan=feed.lifespan)
    app.state.feed = feed
    return _Router(StaticDocuments(service.config.storage_dir, feed.downloads.add), app, feed)


def app_from_env() -> _Router:
    """uvicorn factory for worker processes: the configuration comes from ``NUSEAL_FEED_CONFIG``."""
    config = FeedConfig.from_env()
    service = FeedService.open(config)
    service.recover_pending()  # finish what a worker that died mid-push left (docs/feed.md, Crash consistency)
    return create_app(service)
