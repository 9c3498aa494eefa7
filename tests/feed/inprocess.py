"""The feed built in the test process by its composition root and called through an ASGI client: for the tests
of what the feed answers that do not need a real server (no NuGet.exe, dotnet, browser, TLS, crash or
concurrency checks; those keep ``start_feed``'s real ``nuseal serve``).

``start_inprocess_feed`` does what ``start_feed`` does before the server starts (users and all-scopes keys through
``nuseal admin``), then ``nuseal.feed.compose.build_feed`` + ``FeedService.setup`` + ``Feed.app`` exactly as
``nuseal serve`` and its workers do. An event loop runs in a thread of the test process (an ``anyio`` blocking
portal): it runs the application's lifespan (its background tasks) until ``stop``, and every request, through
``httpx.ASGITransport``. ``client()`` returns a plain synchronous ``httpx.Client`` whose transport hands each request
to that loop, so ``client()`` and ``push()`` answer as the ``Feed`` of a real server does and a test body runs
unchanged on either; a request never touches a socket. Server errors come back as 500 responses, as from uvicorn
(``raise_app_exceptions=False``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
from starlette.types import ASGIApp, Message

from nuseal.feed.compose import Feed as ComposedFeed
from nuseal.feed.compose import build_feed
from nuseal.feed.config import DEFAULT_MAX_PACKAGE_SIZE, FeedConfig

from .conftest import Feed, run_admin

#: The base URL the in-process feed writes into its documents and is called at (no socket listens on it).
BASE_URL = "http://127.0.0.1:5000"
CLIENT_ADDRESS = ("127.0.0.1", 50000)  # the peer address the application sees
LIFESPAN_TIMEOUT_S = 30


class PortalTransport(httpx.BaseTransport):
    """A synchronous transport that runs each request through ``httpx.ASGITransport`` on the portal's loop."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: ASGIApp) -> None:
        self._portal = portal
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=CLIENT_ADDRESS)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> tuple[int, list[tuple[bytes, bytes]], bytes, dict[str, Any]]:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body,
                                      extensions=request.extensions)
            response = await self._asgi.handle_async_request(forwarded)
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
            await response.aclose()
            return response.status_code, response.headers.raw, raw, dict(response.extensions)

        status, headers, raw, extensions = self._portal.call(send)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(raw), extensions=extensions,
                              request=request)


async def _lifespan(app: ASGIApp, started: Callable[[Message], None], stop: anyio.Event) -> None:
    """Run ``app``'s ASGI lifespan: startup, then wait for ``stop``, then shutdown."""
    to_app_send, to_app = anyio.create_memory_object_stream[Message](4)
    from_app_send, from_app = anyio.create_memory_object_stream[Message](4)

    async def receive() -> Message:
        return await to_app.receive()

    async with to_app_send, to_app, from_app_send, from_app, anyio.create_task_group() as group:
        group.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive,
                         from_app_send.send)
        await to_app_send.send({"type": "lifespan.startup"})
        started(await from_app.receive())
        await stop.wait()
        await to_app_send.send({"type": "lifespan.shutdown"})
        await from_app.receive()


@dataclass
class InProcessFeed(Feed):
    """A ``Feed`` whose application runs in this process (``process`` is None)."""

    composed: ComposedFeed | None = None
    transport: PortalTransport | None = None
    resources: ExitStack = field(default_factory=ExitStack)

    def client(self, **kw: Any) -> httpx.Client:
        assert self.transport is not None, "the in-process feed is stopped"
        kw.pop("verify", None)
        kw.setdefault("timeout", 60)
        return httpx.Client(base_url=self.base_url, transport=self.transport, trust_env=False, **kw)

    def stop(self) -> None:
        self.transport = None
        self.resources.close()
        if self.composed is not None:
            self.composed.close()
            self.composed = None


def start_inprocess_feed(
    data_dir: Path,
    *,
    max_package_size: int | None = None,
    users: tuple[str, ...] = ("alice", "bob"),
    database_url: str | None = None,
) -> InProcessFeed:
    """``start_feed(data_dir, ...)`` without the server: the same users and keys, the same configuration as
    ``nuseal serve --no-signing --http`` (``SigningConfig`` is off by default), the application built by the
    composition root."""
    keys = {}
    for user in users:
        run_admin(data_dir, database_url, "create-user", user)
        keys[user] = run_admin(data_dir, database_url, "create-api-key", user)
    config = FeedConfig(data_dir=data_dir, base_url=BASE_URL, database_url=database_url,
                        max_package_size=max_package_size or DEFAULT_MAX_PACKAGE_SIZE)
    composed = build_feed(config)
    composed.service.setup()
    app = composed.app()
    resources = ExitStack()
    portal = resources.enter_context(anyio.from_thread.start_blocking_portal())
    stop = portal.call(anyio.Event)
    answers: list[Message] = []
    started = threading.Event()

    def on_start(message: Message) -> None:
        answers.append(message)
        started.set()

    done = portal.start_task_soon(_lifespan, app, on_start, stop)
    done.add_done_callback(lambda _: started.set())
    resources.callback(done.result, LIFESPAN_TIMEOUT_S)  # (an ExitStack unwinds last-in first: stop, then wait)
    resources.callback(portal.call, stop.set)
    if not started.wait(LIFESPAN_TIMEOUT_S) or not answers or answers[0]["type"] != "lifespan.startup.complete":
        failure = answers or (done.exception() if done.done() else "no answer")
        resources.close()
        raise AssertionError(f"the feed's lifespan did not start: {failure}")
    return InProcessFeed(data_dir, BASE_URL, None, database_url, keys,  # type: ignore[arg-type]
                         composed=composed, transport=PortalTransport(portal, app), resources=resources)
