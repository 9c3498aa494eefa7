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

The push pipeline (its stages in their order) and the background tasks are given to :func:`create_app` by the
composition root (:mod:`nuseal.feed.compose`), which also has the uvicorn factory for worker processes.

Nothing in the process is state other workers need: the database and the storage folder are the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nuseal.feed.accounts.keys import Principal, authenticate
from nuseal.feed.errors import REASON_PHRASE_HEADER, FeedError, reason_phrase
from nuseal.feed.http import pages
from nuseal.feed.http.account import AccountRoutes
from nuseal.feed.http.headers import SecureHeaders
from nuseal.feed.protocol import search as search_mod
from nuseal.feed.protocol import v2
from nuseal.feed.protocol.documents import dump
from nuseal.feed.protocol.downloads import DownloadCounter
from nuseal.feed.protocol.static import StaticDocuments
from nuseal.feed.publish.pipeline import PushPipeline
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.publish.submission import Submission
from nuseal.feed.publish.upload import MAX_DRAIN_BYTES, receive_upload

__all__ = ["API_KEY_HEADER", "BackgroundTask", "FeedApp", "FeedRouter", "create_app", "error_response"]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-NuGet-ApiKey"
#: NuGet clients print this header's value (NuGet.Client ``ProtocolConstants.ServerWarningHeader``).
WARNING_HEADER = "X-NuGet-Warning"
_DYNAMIC_V3 = frozenset({"/v3/search", "/v3/autocomplete"})
MAX_HEADER_MESSAGE = 400
#: Adds hits to this feed's search answer (the upstream mirror's, :mod:`nuseal.feed.mirror.readthrough`).
SearchExtension = Callable[[search_mod.SearchQuery, dict[str, Any]], Awaitable[dict[str, Any]]]
#: Adds to an autocomplete answer: (the request's query parameters, the feed's own answer) -> the answer.
AutocompleteExtension = Callable[[Mapping[str, str], dict[str, Any]], Awaitable[dict[str, Any]]]
#: Wraps the static layer: what answers ``GET``/``HEAD`` under ``/v3/`` before it (the upstream mirror's read-through).
StaticWrapper = Callable[[ASGIApp], ASGIApp]


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


class BackgroundTask(Protocol):
    """Work a serving process does besides answering requests (e.g. the revocation recheck,
    :class:`nuseal.feed.signing.revalidation.RevalidationTask`), started by the application's lifespan and
    cancelled at shutdown. The composition root (:mod:`nuseal.feed.compose`) lists them."""

    async def run(self) -> None:
        """Run until cancelled (clean up in ``finally``); an exception ends only this task, logged."""

    def published(self) -> None:
        """A push was just published (called on the event loop; must not block)."""


class FeedApp:
    """The handlers, bound to one :class:`FeedService`, its push pipeline and its background tasks."""

    def __init__(
        self,
        service: FeedService,
        pipeline: PushPipeline,
        tasks: Sequence[BackgroundTask] = (),
        search_extension: SearchExtension | None = None,
        autocomplete_extension: AutocompleteExtension | None = None,
    ) -> None:
        self.service = service
        self.pipeline = pipeline
        self.tasks = tuple(tasks)
        self.search_extension = search_extension
        self.autocomplete_extension = autocomplete_extension
        self.downloads = DownloadCounter()

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
        for task in self.tasks:
            task.published()
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

        found = await anyio.to_thread.run_sync(run)
        if self.search_extension is not None:
            found = await self.search_extension(query, found)
        return json_response(found, request)

    async def autocomplete(self, request: Request) -> Response:
        params = request.query_params

        def run() -> dict[str, Any]:
            with self.service.db.read() as session:
                return search_mod.autocomplete(session, params)

        found = await anyio.to_thread.run_sync(run)
        if self.autocomplete_extension is not None:
            found = await self.autocomplete_extension(params, found)
        return json_response(found, request)

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
        async def flush_loop() -> None:
            while True:
                await asyncio.sleep(self.service.config.download_flush_seconds)
                await self.flush_downloads()

        async def guarded(task: BackgroundTask) -> None:
            try:
                await task.run()
            except Exception:
                log.exception("background task %s failed", type(task).__name__)

        running = [asyncio.create_task(flush_loop())] + [asyncio.create_task(guarded(t)) for t in self.tasks]
        try:
            yield
        finally:
            for one in running:
                one.cancel()
            for one in running:
                with contextlib.suppress(asyncio.CancelledError):
                    await one
            await self.flush_downloads()
            await anyio.to_thread.run_sync(self.service.db.dispose)


async def _feed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FeedError)
    return error_response(exc)


class FeedRouter:
    """Outer ASGI layer: static ``/v3/`` reads go straight to :class:`StaticDocuments`, the rest to Starlette;
    both behind :class:`~nuseal.feed.http.headers.SecureHeaders`, so every response carries the security headers of
    its class (page, download, document)."""

    def __init__(
        self, static: StaticDocuments, app: Starlette, feed: FeedApp, reads: StaticWrapper | None = None
    ) -> None:
        self.static = static
        self.app = app
        self.feed = feed
        self._static = SecureHeaders(reads(static) if reads is not None else static, static=True)
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


def create_app(
    service: FeedService,
    pipeline: PushPipeline,
    tasks: Sequence[BackgroundTask] = (),
    routes: Sequence[BaseRoute] = (),
    *,
    reads: StaticWrapper | None = None,
    search_extension: SearchExtension | None = None,
    upstream_pages: pages.UpstreamPageInfo | None = None,
    autocomplete_extension: AutocompleteExtension | None = None,
) -> FeedRouter:
    """The ASGI application for ``service``, publishing through ``pipeline``, running ``tasks`` while it serves,
    with ``routes`` added after the feed's own (the composition root, :func:`nuseal.feed.compose.build_app`, gives
    them). ``reads`` wraps the static layer (it answers ``/v3/`` reads first: the upstream mirror) and
    ``search_extension`` (``autocomplete_extension``) adds to each search (autocomplete) answer; ``upstream_pages``
    tells the package pages what the upstream of a mirrored id holds. ``service.setup()`` must have run (it migrates
    and writes the service index). Static ``/v3/`` reads other than search and autocomplete never reach the routes:
    they are files of the storage."""
    feed = FeedApp(service, pipeline, tasks, search_extension, autocomplete_extension)
    site = pages.Pages(service, upstream_pages)
    account = AccountRoutes(service, site.env)
    legacy = v2.LegacyFeed(service)
    own = [
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
        *routes,
    ]
    app = Starlette(routes=own, exception_handlers={FeedError: _feed_error}, lifespan=feed.lifespan)
    app.state.feed = feed
    return FeedRouter(StaticDocuments(service.storage, feed.downloads.add), app, feed, reads)
