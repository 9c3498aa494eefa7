"""Accounts over HTTP: two-factor enrolment and signing-certificate registration, as a JSON API and web pages.

Only a full-scope API key (every scope on ``*``, :mod:`nuseal.feed.accounts.keys`) reaches the account, as nuget.org's
scoped keys cannot touch the account: any narrower key is refused (403, naming its scopes and globs) before
anything else is read, so it can neither enrol 2FA, change certificates, nor spend or count a TOTP code.

JSON API (``X-NuGet-ApiKey``, a full-scope key, identifies the user; a TOTP code travels in :data:`TOTP_HEADER`):

* ``GET /api/account`` - the user, whether 2FA is on, the registered certificates;
* ``POST /api/account/2fa`` - begin enrolment: ``{"uri": "otpauth://...", "secret": ...}`` (shown once);
* ``POST /api/account/2fa/confirm`` - the first code (header) turns 2FA on;
* ``POST /api/account/certificates`` - body: the ``.cer`` (DER or PEM; raw, or one multipart file part) -> 201;
* ``DELETE /api/account/certificates/{fingerprint}`` -> 204.

Web pages (``/account``): sign in with a full-scope API key (and a TOTP code once 2FA is on); the session is a
random cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` on https) stored hashed in ``web_sessions`` with the
key it signed in with, and it ends when that key is revoked or expires. Every form, the sign-in form too, carries
a CSRF token (the session's; for sign-in, a double-submit token also set as the ``HttpOnly``, ``SameSite=Strict``
cookie :data:`LOGIN_CSRF_COOKIE`), and every POST is refused when the browser says it comes from another site
(``Origin`` not the feed's, or ``Sec-Fetch-Site`` other than ``same-origin``/``none``; OWASP CSRF Prevention
Cheat Sheet, "Verifying Origin With Standard Headers" and "Fetch Metadata"). The page enrols 2FA (QR code when
``segno`` is installed, else the ``otpauth://`` URI and the secret), lists, registers and removes certificates.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio
from jinja2 import Environment
from sqlalchemy import delete
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from nuseal.feed.accounts import twofactor
from nuseal.feed.accounts.certificates import (
    MAX_CERTIFICATE_BYTES,
    list_certificates,
    register_certificate,
    remove_certificate,
)
from nuseal.feed.accounts.keys import Principal, account_key_valid, authenticate
from nuseal.feed.accounts.service import enable_two_factor
from nuseal.feed.errors import AuthenticationError, BadRequestError, FeedError, ForbiddenError, NotFoundError
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.store.models import User, WebSession

__all__ = ["LOGIN_CSRF_COOKIE", "SESSION_COOKIE", "SESSION_LIFETIME", "TOTP_HEADER", "AccountRoutes"]

#: Header carrying a TOTP code in API requests.
TOTP_HEADER = "X-NuSeal-TOTP"
SESSION_COOKIE = "nuseal_session"
#: Cookie holding the sign-in form's CSRF token (double submit: the form must carry the same value).
LOGIN_CSRF_COOKIE = "nuseal_login_csrf"
#: How long a web sign-in lasts.
SESSION_LIFETIME = timedelta(hours=12)
#: Largest account request body (a certificate upload with multipart framing).
MAX_ACCOUNT_BODY = 4 * MAX_CERTIFICATE_BYTES + 16 * 1024
#: Fields of a web form.
MAX_FORM_FIELDS = 8


#: Sec-Fetch-Site values of a request that did not come from another site (Fetch Metadata, W3C).
_OWN_SITE = frozenset({"same-origin", "none"})
#: What our random tokens look like (secrets.token_urlsafe(32)).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def signed_in_user(session: Session, token: str | None, *, now: datetime) -> tuple[User, WebSession] | None:
    """The user signed in on the web with the session cookie value ``token`` (:data:`SESSION_COOKIE`), and the web
    session; None when there is no cookie, or the session expired, or the API key it signed in with was revoked,
    expired or deleted."""
    if not token or len(token) > 128:
        return None
    row = session.get(WebSession, _hash(token))
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    if expires <= now:
        return None
    if not account_key_valid(session, row.api_key_pk, row.user_pk, now=now):
        return None  # the key it signed in with was revoked, expired or deleted
    user = session.get(User, row.user_pk)
    return None if user is None else (user, row)


def _same_token(sent: object, expected: str) -> bool:
    """Constant-time comparison of a submitted token (any text) with ours."""
    return hmac.compare_digest(str(sent).encode("utf-8"), expected.encode("utf-8"))


def _origin(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL (the default port written out), lower case; None if not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return f"{scheme}://{parts.hostname.lower()}:{port or _DEFAULT_PORTS[scheme]}"


def _check_same_origin(request: Request, base_url: str) -> None:
    """Refuse a form POST that the browser says comes from another site.

    ``Sec-Fetch-Site`` (when sent) must be ``same-origin`` or ``none``; ``Origin`` (when sent) must be the feed's
    public origin (``base_url``) or the origin the request was addressed to (its ``Host``). ``Origin: null`` is
    refused unless ``Sec-Fetch-Site`` says ``same-origin`` (a same-origin form post under a ``no-referrer``
    policy sends ``null``: Fetch standard, "append a request Origin header"; page scripts cannot set either
    header). Clients that send neither (not browsers) still need the form's CSRF token.

    Raises:
        ForbiddenError: a cross-site or opaque (``Origin: null``) request.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _OWN_SITE:
        raise ForbiddenError(
            f"the browser says this form was sent from another site (Sec-Fetch-Site: {site[:32]}), not from this "
            "feed's origin; use the form on this feed's own page"
        )
    origin = request.headers.get("origin")
    if origin is None or (origin.strip() == "null" and site is not None and site.strip().lower() == "same-origin"):
        return
    allowed = {_origin(base_url), _origin(f"{request.url.scheme}://{request.headers.get('host', '')}")} - {None}
    if _origin(origin.strip()) not in allowed:
        raise ForbiddenError(
            f"this form was sent from another origin ({origin[:100]!r} is not this feed's origin); "
            "use the form on this feed's own page"
        )


@dataclass(frozen=True)
class _WebUser:
    pk: int
    name: str
    csrf: str


async def _read_body(request: Request) -> bytes:
    """The whole body, refused (413) past :data:`MAX_ACCOUNT_BODY`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_ACCOUNT_BODY:
        raise FeedError(f"the request body is larger than {MAX_ACCOUNT_BODY} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_ACCOUNT_BODY:
            raise FeedError(f"the request body is larger than {MAX_ACCOUNT_BODY} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _certificate_from_request(request: Request) -> bytes:
    """The certificate bytes of an API upload: a raw body, or the first file part of a multipart body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > MAX_ACCOUNT_BODY:
            raise FeedError(f"a multipart upload needs a Content-Length of at most {MAX_ACCOUNT_BODY}", status=413)
        async with request.form(max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_ACCOUNT_BODY) as form:
            for value in form.values():
                if isinstance(value, UploadFile):
                    data: bytes = await value.read(MAX_ACCOUNT_BODY + 1)
                    return data
        raise BadRequestError("the multipart body has no file part")
    return await _read_body(request)


class AccountRoutes:
    """The account API and pages of one feed."""

    def __init__(self, service: FeedService, env: Environment) -> None:
        self.service = service
        self.env = env

    def routes(self) -> list[Route]:
        return [
            Route("/api/account", self.api_account, methods=["GET"]),
            Route("/api/account/2fa", self.api_begin_2fa, methods=["POST"]),
            Route("/api/account/2fa/confirm", self.api_confirm_2fa, methods=["POST"]),
            Route("/api/account/certificates", self.api_register, methods=["POST"]),
            Route("/api/account/certificates/{fingerprint}", self.api_remove, methods=["DELETE"]),
            Route("/account", self.page, methods=["GET", "HEAD"]),
            Route("/account/login", self.login_page, methods=["GET", "HEAD"]),
            Route("/account/login", self.login, methods=["POST"]),
            Route("/account/logout", self.logout, methods=["POST"]),
            Route("/account/2fa/begin", self.web_begin_2fa, methods=["POST"]),
            Route("/account/2fa/confirm", self.web_confirm_2fa, methods=["POST"]),
            Route("/account/certificates", self.web_register, methods=["POST"]),
            Route("/account/certificates/{fingerprint}/remove", self.web_remove, methods=["POST"]),
        ]

    # ------------------------------------------------------------------------------------------ helpers
    async def _run_write(self, fn: Any) -> Any:
        def run() -> Any:
            with self.service.db.write() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(run)

    async def _run_read(self, fn: Any) -> Any:
        def run() -> Any:
            with self.service.db.read() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(run)

    async def _principal(self, request: Request) -> Principal:
        """The caller's full-scope key, checked before anything else of the request is read.

        Raises:
            AuthenticationError: no key, or an unknown, revoked or expired one.
            ForbiddenError: a scoped key (:meth:`Principal.require_account`).
        """
        key = request.headers.get("X-NuGet-ApiKey")
        now = self.service.clock()
        result: Principal = await self._run_read(lambda s: authenticate(s, key, now=now))
        result.require_account()
        return result

    def _summary(self, session: Session, user_pk: int) -> dict[str, Any]:
        user = session.get(User, user_pk)
        if user is None:
            raise NotFoundError("no such user")
        return {
            "user": user.name,
            "twoFactorEnabled": twofactor.has_two_factor(user),
            "certificates": [c.to_json() for c in list_certificates(session, user_pk)],
        }

    # ------------------------------------------------------------------------------------------ JSON API
    async def api_account(self, request: Request) -> Response:
        principal = await self._principal(request)
        return JSONResponse(await self._run_read(lambda s: self._summary(s, principal.user_pk)))

    async def api_begin_2fa(self, request: Request) -> Response:
        principal = await self._principal(request)
        pending: twofactor.PendingEnrollment = await self._run_write(
            lambda s: twofactor.begin_enrollment(s, principal.user_name)
        )
        return JSONResponse({"uri": pending.uri, "secret": pending.secret}, headers={"Cache-Control": "no-store"})

    async def api_confirm_2fa(self, request: Request) -> Response:
        principal = await self._principal(request)
        code = request.headers.get(TOTP_HEADER)
        now = self.service.clock()

        await self._run_write(lambda session: enable_two_factor(session, principal.user_name, code, now=now))
        return JSONResponse({"twoFactorEnabled": True})

    async def api_register(self, request: Request) -> Response:
        principal = await self._principal(request)
        data = await _certificate_from_request(request)
        code = request.headers.get(TOTP_HEADER)
        now = self.service.clock()
        registered = await self._run_write(
            lambda s: register_certificate(s, principal.user_pk, data, totp_code=code, now=now)
        )
        return JSONResponse(registered.to_json(), status_code=201)

    async def api_remove(self, request: Request) -> Response:
        principal = await self._principal(request)
        code = request.headers.get(TOTP_HEADER)
        fingerprint = request.path_params["fingerprint"]
        now = self.service.clock()
        await self._run_write(lambda s: remove_certificate(s, principal.user_pk, fingerprint, totp_code=code, now=now))
        return Response(status_code=204)

    # ------------------------------------------------------------------------------------------ web session
    def _secure(self) -> bool:
        return self.service.config.base_url.startswith("https://")

    async def _web_user(self, request: Request) -> _WebUser | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 128:
            return None
        now = self.service.clock()

        def find(session: Session) -> _WebUser | None:
            found = signed_in_user(session, token, now=now)
            return None if found is None else _WebUser(found[0].pk, found[0].name, found[1].csrf_token)

        found: _WebUser | None = await self._run_read(find)
        return found

    async def _form(self, request: Request, user: _WebUser) -> dict[str, Any]:
        _check_same_origin(request, self.service.config.base_url)
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > MAX_ACCOUNT_BODY:
            raise FeedError(f"the form is larger than {MAX_ACCOUNT_BODY} bytes or has no Content-Length", status=413)
        fields: dict[str, Any] = {}
        async with request.form(max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_ACCOUNT_BODY) as form:
            for key, value in form.items():
                fields[key] = await value.read(MAX_ACCOUNT_BODY + 1) if isinstance(value, UploadFile) else value
        if not _same_token(fields.get("csrf", ""), user.csrf):
            raise ForbiddenError(
                "the form is stale or was not sent by this site (CSRF token mismatch); reload the page"
            )
        return fields

    def _render(self, name: str, status: int = 200, **context: Any) -> Response:
        html = self.env.get_template(name).render(base_url=self.service.config.base_url, **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    async def _account_page(
        self, user: _WebUser, *, message: str = "", error: str = "", status: int = 200, **extra: Any
    ) -> Response:
        summary = await self._run_read(lambda s: self._summary(s, user.pk))
        is_admin = await self._run_read(lambda s: bool((row := s.get(User, user.pk)) is not None and row.is_admin))
        return self._render(
            "account.html",
            status=status,
            account=summary,
            nav_admin=is_admin,
            csrf=user.csrf,
            message=message,
            error=error,
            signing_enabled=self.service.config.signing.enabled,
            **extra,
        )

    # ------------------------------------------------------------------------------------------ web pages
    def _login_page(self, request: Request, *, status: int = 200, error: str = "") -> Response:
        """The sign-in form with its CSRF token, which is also (re)set as :data:`LOGIN_CSRF_COOKIE` (kept when the
        browser already has a well-formed one, so several open sign-in tabs all work)."""
        token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not _TOKEN.fullmatch(token):
            token = secrets.token_urlsafe(32)
        response = self._render("login.html", status=status, error=error, csrf=token)
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            max_age=int(SESSION_LIFETIME.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=self._secure(),
            path="/account/login",
        )
        return response

    async def login_page(self, request: Request) -> Response:
        return self._login_page(request)

    async def login(self, request: Request) -> Response:
        """Sign in. Checked in this order, each refusal before anything later is read or counted: same origin,
        form size, CSRF token (form field = cookie), the key (valid and full-scope), then the TOTP code."""
        try:
            _check_same_origin(request, self.service.config.base_url)
        except FeedError as exc:
            return self._login_page(request, status=exc.status, error=exc.message)
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > MAX_ACCOUNT_BODY:
            return self._login_page(request, status=413, error="The form is too large.")
        async with request.form(max_files=0, max_fields=MAX_FORM_FIELDS) as form:
            key = str(form.get("api_key", "")).strip()
            code = str(form.get("totp", "")).strip()
            sent_csrf = form.get("csrf", "")
        expected_csrf = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not _TOKEN.fullmatch(expected_csrf) or not _same_token(sent_csrf, expected_csrf):
            return self._login_page(
                request,
                status=403,
                error="The sign-in form is stale or was not sent by this site (CSRF token mismatch); reload the page.",
            )
        now = self.service.clock()
        token = secrets.token_urlsafe(32)

        def sign_in(session: Session) -> None:
            principal = authenticate(session, key, now=now)
            principal.require_account()  # before the code: a scoped key must not spend or count a code
            user = session.get(User, principal.user_pk)
            if user is None:
                raise AuthenticationError("the API key is invalid, revoked or expired")
            if twofactor.has_two_factor(user):
                twofactor.require_code(session, user, code, now=now)
            session.execute(delete(WebSession).where(WebSession.expires_at <= now))
            session.add(
                WebSession(
                    token_hash=_hash(token),
                    user_pk=user.pk,
                    api_key_pk=principal.key_pk,
                    csrf_token=secrets.token_urlsafe(32),
                    created_at=now,
                    expires_at=now + SESSION_LIFETIME,
                )
            )

        try:
            await self._run_write(sign_in)
        except FeedError as exc:
            return self._login_page(request, status=exc.status, error=exc.message)
        response = RedirectResponse("/account", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(SESSION_LIFETIME.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=self._secure(),
            path="/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        user = await self._web_user(request)
        if user is not None:
            await self._form(request, user)
            token = request.cookies.get(SESSION_COOKIE, "")
            await self._run_write(lambda s: s.execute(delete(WebSession).where(WebSession.token_hash == _hash(token))))
        response = RedirectResponse("/account/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def page(self, request: Request) -> Response:
        user = await self._web_user(request)
        if user is None:
            return RedirectResponse("/account/login", status_code=303)
        return await self._account_page(user)

    async def _guarded(self, request: Request) -> tuple[_WebUser, dict[str, Any]] | Response:
        user = await self._web_user(request)
        if user is None:
            return RedirectResponse("/account/login", status_code=303)
        try:
            return user, await self._form(request, user)
        except FeedError as exc:
            return await self._account_page(user, error=exc.message, status=exc.status)

    async def web_begin_2fa(self, request: Request) -> Response:
        got = await self._guarded(request)
        if isinstance(got, Response):
            return got
        user, _fields = got
        try:
            pending: twofactor.PendingEnrollment = await self._run_write(
                lambda s: twofactor.begin_enrollment(s, user.name)
            )
        except FeedError as exc:
            return await self._account_page(user, error=exc.message, status=exc.status)
        return self._render(
            "twofactor_setup.html",
            user=user.name,
            csrf=user.csrf,
            uri=pending.uri,
            secret=pending.secret,
            qr_svg=twofactor.qr_svg(pending.uri),
            error="",
        )

    async def web_confirm_2fa(self, request: Request) -> Response:
        got = await self._guarded(request)
        if isinstance(got, Response):
            return got
        user, fields = got
        now = self.service.clock()

        code = str(fields.get("totp", ""))
        try:
            await self._run_write(lambda session: enable_two_factor(session, user.name, code, now=now))
        except FeedError as exc:
            return await self._account_page(user, error=exc.message, status=exc.status)
        return await self._account_page(user, message="Two-factor authentication is on.")

    async def web_register(self, request: Request) -> Response:
        got = await self._guarded(request)
        if isinstance(got, Response):
            return got
        user, fields = got
        data = fields.get("certificate")
        if not isinstance(data, bytes) or not data:
            return await self._account_page(user, error="Choose a .cer file to upload.", status=400)
        now = self.service.clock()
        code = str(fields.get("totp", ""))
        try:
            registered = await self._run_write(
                lambda s: register_certificate(s, user.pk, data, totp_code=code, now=now)
            )
        except FeedError as exc:
            return await self._account_page(user, error=str(exc), status=exc.status)
        return await self._account_page(user, message=f"Registered certificate {registered.fingerprint}.")

    async def web_remove(self, request: Request) -> Response:
        got = await self._guarded(request)
        if isinstance(got, Response):
            return got
        user, fields = got
        fingerprint = request.path_params["fingerprint"]
        now = self.service.clock()
        code = str(fields.get("totp", ""))
        try:
            await self._run_write(lambda s: remove_certificate(s, user.pk, fingerprint, totp_code=code, now=now))
        except FeedError as exc:
            return await self._account_page(user, error=str(exc), status=exc.status)
        return await self._account_page(user, message=f"Removed certificate {fingerprint.lower()}.")
