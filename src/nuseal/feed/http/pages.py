"""Server-rendered web pages: the package list (with search) and one page per package version.

Jinja2 templates in ``nuseal/feed/http/templates`` with autoescaping on; every value comes from the database. The
pages carry no script and no inline style: their stylesheet is ``assets/feed.css``, served at
:data:`STYLESHEET_PATH`, so the pages' CSP (:data:`nuseal.feed.http.headers.PAGE_CSP`) can forbid both.

The version page shows the version's signing status (issue 5, "Visible status"), read live from the database:
signed or not, each signature (author / repository, signer subject and SHA-256 fingerprint, timestamp and TSA),
the version's status (``valid`` or ``revoked``) and each certificate's last revocation answer, with when and why
(:mod:`nuseal.feed.signing.revalidation`). The versions table marks each version's signatures and revoked versions.
Next to the signatures, the ingestion checks' results (issue 16: scan findings with their snippets, known
advisories, signer continuity) and the verdict; a verified mark when an owner holds a reserved prefix of the id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import anyio
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from nuseal.feed.accounts.admins import verified_prefixes
from nuseal.feed.accounts.keys import owners_of
from nuseal.feed.errors import NotFoundError
from nuseal.feed.http.account import SESSION_COOKIE, signed_in_user
from nuseal.feed.mirror.quarantine import stage_results
from nuseal.feed.protocol import search as search_mod
from nuseal.feed.protocol.documents import SignatureRecord
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.store.models import Package, Registration
from nuseal.package import NuGetVersion

__all__ = ["PAGE_SIZE", "STYLESHEET_PATH", "Pages", "UpstreamPageInfo"]

#: What the upstream of a mirrored id holds, for its page
#: (:meth:`nuseal.feed.mirror.readthrough.ReadThroughMirror.page_info`): ``upstreams`` [(name, service index URL)],
#: ``pending`` [(version, appears_at)] (versions in their cooldown), ``error``.
UpstreamPageInfo = Callable[[str], Awaitable[dict[str, Any] | None]]

#: Packages per list page.
PAGE_SIZE = 25
#: Where the pages' stylesheet is served, and the package resource it is read from.
STYLESHEET_PATH = "/static/feed.css"
STYLESHEET_RESOURCE = "assets/feed.css"
STYLESHEET_CACHE = "public, max-age=86400"


class Pages:
    def __init__(self, service: FeedService, upstream_info: UpstreamPageInfo | None = None) -> None:
        self.service = service
        self.upstream_info = upstream_info
        self.env = Environment(
            loader=PackageLoader("nuseal.feed.http", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.stylesheet = resources.files("nuseal.feed.http").joinpath(STYLESHEET_RESOURCE).read_bytes()
        self._stylesheet_etag = '"' + hashlib.sha256(self.stylesheet).hexdigest()[:32] + '"'
        # the URL changes with the content, so a browser never keeps an old stylesheet past an upgrade
        self.env.globals["stylesheet"] = f"{STYLESHEET_PATH}?v={self._stylesheet_etag[1:13]}"

    def routes(self) -> list[Route]:
        return [
            Route(STYLESHEET_PATH, self.stylesheet_file, methods=["GET", "HEAD"]),
            Route("/packages", self.package_list, methods=["GET", "HEAD"]),
            Route("/packages/{id}", self.package_page, methods=["GET", "HEAD"]),
            Route("/packages/{id}/{version}", self.package_page, methods=["GET", "HEAD"]),
        ]

    def _render(self, name: str, status: int = 200, **context: Any) -> Response:
        html = self.env.get_template(name).render(base_url=self.service.config.base_url, **context)
        # a page with an administrator's navigation is that browser's alone
        cache = "private, no-cache" if context.get("nav_admin") else "no-cache"
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": cache})

    async def _nav(self, request: Request) -> dict[str, Any]:
        """The navigation's context: ``nav_admin`` (the quarantine link) for a signed-in administrator only."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return {"nav_admin": False}
        now = self.service.clock()

        def is_admin() -> bool:
            with self.service.db.read() as session:
                found = signed_in_user(session, token, now=now)
                return found is not None and bool(found[0].is_admin)

        return {"nav_admin": await anyio.to_thread.run_sync(is_admin)}

    async def stylesheet_file(self, request: Request) -> Response:
        """The pages' stylesheet (a file, as the pages' CSP allows no inline style), with an ETag."""
        headers = {"ETag": self._stylesheet_etag, "Cache-Control": STYLESHEET_CACHE}
        if self._stylesheet_etag in [v.strip() for v in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(self.stylesheet, media_type="text/css; charset=utf-8", headers=headers)

    async def package_list(self, request: Request) -> Response:
        q = request.query_params.get("q", "")[: search_mod.MAX_QUERY_LENGTH]
        try:
            page = max(1, min(int(request.query_params.get("page", "1")), 10_000))
        except ValueError:
            page = 1
        query = search_mod.SearchQuery(q=q, skip=(page - 1) * PAGE_SIZE, take=PAGE_SIZE, prerelease=True, semver2=True)

        def run() -> tuple[dict[str, Any], dict[str, str], set[str]]:
            with self.service.db.read() as session:
                found = search_mod.search(session, self.service.urls, query)
                ids = [str(h["id"]).lower() for h in found["data"]]
                upstream_only = set(
                    session.scalars(
                        select(Package.id).where(Package.id_lower.in_(ids), Package.origin == "upstream")
                    ).all()
                )
                return found, self._list_signing(session, found["data"]), upstream_only

        result, signing, upstream_only = await anyio.to_thread.run_sync(run)
        total = int(result["totalHits"])
        return self._render(
            "list.html",
            **await self._nav(request),
            q=q,
            packages=result["data"],
            signing=signing,
            upstream_only=upstream_only,
            total=total,
            page=page,
            pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
        )

    def _list_signing(self, session: Session, hits: Sequence[dict[str, Any]]) -> dict[str, str]:
        """The signing line (:func:`signing_line`) of each hit's latest version, by id."""
        wanted = {str(h["id"]).lower(): NuGetVersion.parse(str(h["version"])).normalized.lower() for h in hits}
        if not wanted:
            return {}
        rows = session.scalars(select(Package).where(Package.id_lower.in_(list(wanted)))).all()
        rows = [r for r in rows if wanted.get(r.id_lower) == r.version_lower]
        records = self.service.signature_records(session, [r.pk for r in rows])
        return {r.id: signing_line(records[r.pk], r.signature_status) for r in rows}

    async def package_page(self, request: Request) -> Response:
        package_id: str = request.path_params["id"]
        wanted: str | None = request.path_params.get("version")

        def run() -> dict[str, Any]:
            id_lower = package_id.lower()
            with self.service.db.read() as session:
                reg = session.get(Registration, id_lower)
                rows = session.scalars(select(Package).where(Package.id_lower == id_lower)).all()
                if reg is None or not rows:
                    raise NotFoundError(f"no package with the id {package_id!r}")
                total = session.scalar(select(func.sum(Package.downloads)).where(Package.id_lower == id_lower)) or 0
                versions = sorted(rows, key=lambda r: NuGetVersion.parse(r.version_full), reverse=True)
                if wanted is not None:
                    try:
                        w = NuGetVersion.parse(wanted).normalized.lower()
                    except Exception as exc:
                        raise NotFoundError(f"no version {wanted!r} of {reg.id!r}") from exc
                    current = next((r for r in versions if r.version_lower == w), None)
                    if current is None:
                        raise NotFoundError(f"no version {wanted!r} of {reg.id!r}")
                else:
                    current = next((r for r in versions if r.listed), versions[0])
                signatures = self.service.signature_records(session, [r.pk for r in versions])
                return {
                    "reg": reg,
                    "current": current,
                    "signatures": [signature_view(s) for s in signatures[current.pk]],
                    "signing": signing_line(signatures[current.pk], current.signature_status),
                    "version_signing": {r.pk: signing_line(signatures[r.pk], r.signature_status) for r in versions},
                    "versions": versions,
                    "owners": owners_of(session, id_lower),
                    "total_downloads": int(total),
                    "dependencies": _deps(current.dependencies),
                    "checks": stage_results(session, id_lower, current.version_lower),
                    "verified_prefixes": verified_prefixes(session, id_lower),
                }

        try:
            ctx = await anyio.to_thread.run_sync(run)
        except NotFoundError as exc:
            return self._render("not_found.html", status=404, message=str(exc), **await self._nav(request))
        ctx.update(await self._nav(request))
        ctx["upstream"] = None
        if self.upstream_info is not None and ctx["current"].origin == "upstream":
            ctx["upstream"] = await self.upstream_info(ctx["reg"].id)
        ctx["install"] = f"nuget install {ctx['reg'].id} -Version {ctx['current'].version}"
        ctx["nupkg_url"] = self.service.urls.nupkg(ctx["current"].id_lower, ctx["current"].version_lower)
        return self._render("package.html", **ctx)


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def signing_line(records: Sequence[SignatureRecord], status: str) -> str:
    """A version's signing in a few words: ``author-signed, repository-signed``, ``repository-signed``,
    ``unsigned``; ``REVOKED:`` in front of a revoked version."""
    kinds = [k for k in ("author", "repository") if any(s.kind == k for s in records)]
    text = ", ".join(f"{k}-signed" for k in kinds) or "unsigned"
    return f"REVOKED: {text}" if status == "revoked" else text


def signature_view(s: SignatureRecord) -> dict[str, Any]:
    """What the version page shows of one signature; ``revocation`` is a sentence (valid or revoked, when, why)."""
    checked = f"; checked {_when(s.certificate_checked_at)}" if s.certificate_checked_at else ""
    when = _when(s.certificate_revocation_time)
    if s.status == "revoked" and not when:
        revocation = "revoked: the certificate or a CA certificate above it was revoked, at a time not known"
    elif s.status == "revoked":
        revocation = f"revoked: the certificate was revoked at {when}, not after this signature's timestamp"
    elif s.certificate_status == "revoked":
        revocation = (
            f"valid: the certificate was revoked at {when or 'a time not known'}, after this signature's timestamp"
        )
    elif s.certificate_status == "good":
        revocation = "valid: the certificate is not revoked"
    else:
        revocation = "valid: the certificate's revocation status is not known yet"
    return {
        "kind": s.kind,
        "placement": s.placement,
        "subject": s.subject,
        "issuer": s.issuer,
        "fingerprint": s.fingerprint,
        "timestamp": _when(s.timestamp) or "none",
        "timestamp_authority": s.timestamp_authority,
        "status": s.status,
        "certificate_status": s.certificate_status,
        "revocation": revocation + checked,
        "detail": s.certificate_status_detail,
    }


def _deps(raw: str) -> list[tuple[str, str, str]]:
    return [(tfm or "any", dep_id, rng or "any") for tfm, deps in json.loads(raw) for dep_id, rng in deps]
