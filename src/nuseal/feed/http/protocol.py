"""The HTTP/1.1 connection limits uvicorn does not set: request head size, head and body read timeouts.

uvicorn's httptools protocol (``uvicorn.protocols.http.httptools_impl.HttpToolsProtocol``) accepts a request head
of any size (llhttp has no limit and uvicorn sets none; ``h11_max_incomplete_event_size`` only applies to the h11
protocol), waits forever for the head of a request once a connection is open, and waits forever for a body its
client declared and then stopped sending (the request task sits in ``receive()``; when the client finally goes
away, Starlette raises ``ClientDisconnect`` and uvicorn logs it with a traceback). :class:`LimitedHttpToolsProtocol`
adds, per connection:

* the request line and headers at most :data:`MAX_HEAD_BYTES` (counted per read, so at most one read more is
  buffered): answered ``431 Request Header Fields Too Large`` and closed;
* the head complete within :data:`HEAD_TIMEOUT_SECONDS` of the connection opening or the request's first byte:
  otherwise ``408 Request Timeout`` and closed;
* no gap longer than :data:`BODY_TIMEOUT_SECONDS` between two reads of a request body (time when the server itself
  paused reading, or the client waits for ``100 Continue``, does not count): ``408`` if no answer was started,
  and the connection closed; the application sees a disconnect.

Each of these logs one line (no traceback), and a ``ClientDisconnect`` escaping the application, which only
means the client is gone, is not logged as an error. ``nuseal serve`` selects this protocol (see
:mod:`nuseal.cli.serve`).

It also lets the application choose the reason phrase of an error answer, which ASGI has no field for: a 4xx/5xx
``http.response.start`` carrying the private header :data:`~nuseal.feed.errors.REASON_PHRASE_HEADER` is sent with
that header removed and its value, made safe again by :func:`~nuseal.feed.errors.reason_phrase`, as the phrase
(``HTTP/1.1 409 A package with id ... already exists``); NuGet clients print the phrase in their error line, as
they do nuget.org's. Only the application can set the header (nothing copies request headers into a response),
and any other status keeps uvicorn's standard phrase (docs/adr/0006-reason-phrase.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from typing import Any

import httptools
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from nuseal.feed.errors import REASON_PHRASE_HEADER, reason_phrase

__all__ = [
    "BODY_TIMEOUT_ENV",
    "BODY_TIMEOUT_SECONDS",
    "HEAD_TIMEOUT_ENV",
    "HEAD_TIMEOUT_SECONDS",
    "MAX_HEAD_BYTES",
    "PROTOCOL",
    "LimitedHttpToolsProtocol",
]

log = logging.getLogger(__name__)

#: Largest request line + headers (bytes); as h11's default and Node's ``--max-http-header-size``.
MAX_HEAD_BYTES = 16 * 1024
#: Longest wait for a complete request head (seconds; ``nuseal serve --header-timeout``).
HEAD_TIMEOUT_SECONDS = 30.0
#: Longest gap between two reads of a request body (seconds; ``nuseal serve --body-timeout``).
BODY_TIMEOUT_SECONDS = 30.0
#: Environment variables through which ``nuseal serve`` passes the two timeouts to its worker processes.
HEAD_TIMEOUT_ENV = "NUSEAL_HTTP_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "NUSEAL_HTTP_BODY_TIMEOUT"
#: The ``uvicorn.Config(http=...)`` value that selects :class:`LimitedHttpToolsProtocol`.
PROTOCOL = "nuseal.feed.http.protocol:LimitedHttpToolsProtocol"


def _reply(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
        + str(len(text)).encode("ascii") + b"\r\nconnection: close\r\n\r\n" + text
    )  # fmt: skip


_TOO_LARGE = _reply(b"431 Request Header Fields Too Large", b"the request headers are too large\n")
_HEAD_TIMEOUT = _reply(b"408 Request Timeout", b"the request headers did not arrive in time\n")
_BODY_TIMEOUT = _reply(b"408 Request Timeout", b"the request body stopped arriving\n")


@functools.cache
def _timeouts() -> tuple[float, float]:
    """(head, body) timeouts in seconds: the environment's, else the defaults."""
    return (
        float(os.environ.get(HEAD_TIMEOUT_ENV) or HEAD_TIMEOUT_SECONDS),
        float(os.environ.get(BODY_TIMEOUT_ENV) or BODY_TIMEOUT_SECONDS),
    )


def _quiet_disconnects(app: Any) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except ClientDisconnect:
            log.debug("%s %s: the client disconnected mid-request", scope.get("method"), scope.get("path"))

    return wrapped


_REASON_HEADER = REASON_PHRASE_HEADER.encode("ascii")


class _StatusLineTransport:
    """A request cycle's transport, for the one ``send`` of a response head: the first write, the head uvicorn
    built (``HTTP/1.1 <status> <standard phrase>`` and the headers), gets ``phrase`` in its status line; every
    other attribute is the transport's own."""

    def __init__(self, transport: Any, status: int, phrase: bytes) -> None:
        self._transport = transport
        self._standard = STATUS_LINE[status]
        self._line = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
        self._pending = True

    def write(self, data: bytes) -> None:
        if self._pending and data.startswith(self._standard):
            data = self._line + data[len(self._standard) :]
        self._pending = False
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _reason_phrases(app: Any) -> Any:
    """ASGI wrapper: the application's :data:`REASON_PHRASE_HEADER` becomes the reason phrase of a 4xx/5xx head
    (and never goes out as a header)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return

        async def send_with_phrase(message: Any) -> None:
            # the application sets the header on error answers only: 2xx/3xx heads and bodies go straight through
            if message["type"] != "http.response.start" or message["status"] < 400:
                await send(message)
                return
            headers = message.get("headers") or []
            values = [value for name, value in headers if name.lower() == _REASON_HEADER]
            if not values:
                await send(message)
                return
            message = {**message, "headers": [(n, v) for n, v in headers if n.lower() != _REASON_HEADER]}
            status = int(message["status"])
            phrase = reason_phrase(bytes(values[-1]).decode("latin-1")).encode("ascii")
            cycle: Any = getattr(send, "__self__", None)  # uvicorn's RequestResponseCycle (send is its bound method)
            transport = getattr(cycle, "transport", None)
            if not phrase or status >= 600 or transport is None:
                await send(message)
                return
            cycle.transport = _StatusLineTransport(transport, status, phrase)
            try:
                await send(message)
            finally:
                cycle.transport = transport

        await app(scope, receive, send_with_phrase)

    return wrapped


class _HeadTooLargeError(Exception):
    """Raised from a parser callback to stop parsing a request head over :data:`MAX_HEAD_BYTES`."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head size limit and the head/body timeouts of this module."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = _quiet_disconnects(_reason_phrases(self.app))
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_body_read = 0.0
        self._head_timeout, self._body_timeout = _timeouts()
        self._parsed_head_bytes = 0
        self._head_too_large = False

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """``HttpToolsProtocol.data_received`` (same handling of bad requests and upgrades) plus the head limit:
        counted exactly from the parsed line and headers, and per read while the head is incomplete (llhttp
        buffers a header it has not finished, so only the read count bounds memory)."""
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._head_too_large:
                self._refuse(_TOO_LARGE, f"request headers over {MAX_HEAD_BYTES} bytes: answered 431")
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(_TOO_LARGE, f"request headers over {MAX_HEAD_BYTES} bytes: answered 431")
        elif self._body_timer is not None:
            self._last_body_read = self.loop.time()

    # ------------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._parsed_head_bytes = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def _count_head(self, size: int) -> None:
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise _HeadTooLargeError

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        self._last_body_read = self.loop.time()
        if self._body_timer is None:
            self._body_timer = self.loop.call_later(self._body_timeout, self._body_check)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    # ------------------------------------------------------------------ limits
    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes == 0 and self.cycle is None:  # an idle (pre)connection that never sent a byte
            self.transport.close()
            return
        self._refuse(_HEAD_TIMEOUT, f"no complete request head within {self._head_timeout:g} s: answered 408")

    def _body_check(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.disconnected or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            self._last_body_read = now  # the server is not reading, or the client waits for it: not a stall
        idle = now - self._last_body_read
        if idle < self._body_timeout:
            self._body_timer = self.loop.call_later(self._body_timeout - idle, self._body_check)
            return
        what = f"{self.scope.get('method')} {self.scope.get('path')}"
        answer = b"" if cycle.response_started else _BODY_TIMEOUT
        self._refuse(answer, f"{what}: no request body bytes for {self._body_timeout:g} s: connection closed")
        cycle.disconnected = True
        cycle.message_event.set()

    def _refuse(self, answer: bytes, message: str) -> None:
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        log.warning("%s: %s", client, message)
        self._cancel_timers()
        if answer:
            self.transport.write(answer)
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
