"""The quarantine over HTTP (issue 16): the admin page and the reason header of a held version's ``.nupkg``.

* ``GET /admin/quarantine``: the held versions with their evidence (scan findings with snippets, NU codes, signer
  change, look-alike target, cooldown end), recent decisions, and per version a release and a reject form (and
  "accept the new signer" when the signer changed). Only a signed-in administrator (``users.is_admin``; sign in on
  ``/account/login`` with a full-scope key, as for the account pages) sees it; others get 403.
* ``POST /admin/quarantine/{id}/{version}/release|reject|accept-signer``: the decision, with the session's CSRF token
  and the same-origin checks of the account forms (:mod:`nuseal.feed.http.account`); audited with the admin's name.
* ``POST /api/quarantine/{id}/{version}/accept-signer`` (``X-NuGet-ApiKey``, a full-scope key of an owner of the id
  or of an administrator): accept a held version's new author signer for the id (signer continuity), audited.
* :class:`QuarantineHeader`: a ``.nupkg`` request of the flat container answered 404 gets
  ``X-NuSeal-Quarantine: <state>: <reasons>`` when the request carries a full-scope API key of an administrator
  (``X-NuGet-ApiKey``); nobody else learns more than the 404.

The page is one of the feed's pages: the security-header layer gives it the page CSP (no script, forms to the feed
only, no framing) and every value is autoescaped.
"""

from __future__ import annotations

import re
from typing import Any

import anyio
import anyio.to_thread
from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nuseal.feed.accounts.admins import is_admin_key
from nuseal.feed.errors import FeedError, ForbiddenError
from nuseal.feed.http.account import AccountRoutes, _WebUser
from nuseal.feed.http.pages import Pages
from nuseal.feed.mirror.ingest import Ingestion
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.store.models import User

__all__ = ["QUARANTINE_HEADER", "QuarantineHeader", "QuarantineRoutes"]

#: The response header naming why a version is absent (administrators only).
QUARANTINE_HEADER = "X-NuSeal-Quarantine"
_NUPKG = re.compile(r"^/v3/flatcontainer/([^/]+)/([^/]+)/[^/]+\.nupkg$")


class QuarantineRoutes(AccountRoutes):
    """The admin quarantine page and its forms (sessions, CSRF and rendering as the account pages)."""

    def __init__(self, service: FeedService, ingestion: Ingestion, env: Environment | None = None) -> None:
        super().__init__(service, env if env is not None else Pages(service).env)
        self.ingestion = ingestion

    def routes(self) -> list[Route]:
        return [
            Route("/admin/quarantine", self.quarantine_page, methods=["GET", "HEAD"]),
            Route("/admin/quarantine/{id}/{version}/{action}", self.decide, methods=["POST"]),
            Route("/api/quarantine/{id}/{version}/accept-signer", self.api_accept_signer, methods=["POST"]),
        ]

    async def api_accept_signer(self, request: Request) -> Response:
        """``POST /api/quarantine/{id}/{version}/accept-signer`` with a full-scope key of an owner of the id (or an
        administrator): accept the held version's new author signer for the id, and release the version when the
        signer change was its only reason. 200 with JSON ``{"signer": ..., "released": bool}``."""
        principal = await self._principal(request)
        package_id = request.path_params["id"]
        version = request.path_params["version"]
        q = self.ingestion.quarantine
        signer, published = await anyio.to_thread.run_sync(
            lambda: q.accept_signer(package_id, version, actor=principal.user_name, principal=principal)
        )
        return JSONResponse({"signer": signer.to_json(), "released": published is not None})

    async def _admin(self, request: Request) -> _WebUser | Response:
        user = await self._web_user(request)
        if user is None:
            return RedirectResponse("/account/login", status_code=303)
        is_admin = await self._run_read(lambda s: bool((row := s.get(User, user.pk)) is not None and row.is_admin))
        if not is_admin:
            return self._render(
                "quarantine.html",
                status=403,
                error="Only a feed administrator can see the quarantine.",
                holds=[],
                decided=[],
                csrf=user.csrf,
                user=user.name,
            )
        return user

    async def _page(self, user: _WebUser, *, message: str = "", error: str = "", status: int = 200) -> Response:
        q = self.ingestion.quarantine

        def load() -> tuple[list[Any], list[Any]]:
            held = q.holds(states=("held",))
            decided = q.holds(states=("released", "rejected", "refused"))[-50:]
            return held, decided

        held, decided = await anyio.to_thread.run_sync(load)
        return self._render(
            "quarantine.html",
            status=status,
            holds=held,
            decided=list(reversed(decided)),
            csrf=user.csrf,
            user=user.name,
            nav_admin=True,
            message=message,
            error=error,
        )

    async def quarantine_page(self, request: Request) -> Response:
        got = await self._admin(request)
        if isinstance(got, Response):
            return got
        return await self._page(got)

    async def decide(self, request: Request) -> Response:
        got = await self._admin(request)
        if isinstance(got, Response):
            return got
        user = got
        package_id = request.path_params["id"]
        version = request.path_params["version"]
        action = request.path_params["action"]
        q = self.ingestion.quarantine
        try:
            fields = await self._form(request, user)
            note = str(fields.get("note", ""))[:500]
            if action == "release":
                done = await anyio.to_thread.run_sync(
                    lambda: q.release(package_id, version, actor=user.name, note=note)
                )
                message = f"Released {done.id} {done.version}."
            elif action == "reject":
                view = await anyio.to_thread.run_sync(lambda: q.reject(package_id, version, actor=user.name, note=note))
                message = f"Rejected {view.id} {view.version}."
            elif action == "accept-signer":
                signer, done_or_none = await anyio.to_thread.run_sync(
                    lambda: q.accept_signer(package_id, version, actor=user.name)
                )
                message = f"Accepted {signer.subject} for {package_id}." + (
                    f" Released {done_or_none.id} {done_or_none.version}." if done_or_none else ""
                )
            else:
                raise ForbiddenError(f"unknown action {action!r}")
        except FeedError as exc:
            return await self._page(user, error=exc.message, status=exc.status)
        return await self._page(user, message=message)


class QuarantineHeader:
    """ASGI layer: adds :data:`QUARANTINE_HEADER` to a flat-container ``.nupkg`` 404 for an administrator's key."""

    def __init__(self, app: ASGIApp, service: FeedService, ingestion: Ingestion) -> None:
        self.app = app
        self.service = service
        self.ingestion = ingestion

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _NUPKG.match(scope.get("path", "")) if scope["type"] == "http" else None
        key = None
        if match is not None:
            for name, value in scope.get("headers", []):
                if name.lower() == b"x-nuget-apikey":
                    key = value.decode("latin-1")
        if match is None or not key:
            await self.app(scope, receive, send)
            return
        package_id, version = match.group(1), match.group(2)

        async def send_with_reason(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 404:
                reason = await anyio.to_thread.run_sync(lambda: self._reason(key, package_id, version))
                if reason:
                    value = " ".join(reason.split()).encode("ascii", "backslashreplace")[:400]
                    message = {**message, "headers": [*message.get("headers", []), (QUARANTINE_HEADER.encode(), value)]}
            await send(message)

        await self.app(scope, receive, send_with_reason)

    def _reason(self, key: str, package_id: str, version: str) -> str | None:
        with self.service.db.read() as session:
            if is_admin_key(session, key, now=self.service.clock()) is None:
                return None
        return self.ingestion.hold_reason(package_id, version)
