"""Readers of the NuGet V3 documents a client takes from a source, shared by restore's client
(:mod:`nuseal.client.feedclient`) and the feed's upstream mirror (:mod:`nuseal.feed.mirror.upstream`). Bytes in,
a value out, no I/O; every malformed document raises :class:`V3DocumentError`, which the caller turns into its own
error (restore's NU1301, the mirror's upstream error).

Sources of the shapes:

- service index: NuGet docs ``api/service-index.md`` (``resources`` with ``@id`` and ``@type``; a client picks the
  newest type version it knows, NuGet.Protocol ``ServiceTypes``/``ServiceIndexResourceV3``);
- version list: ``api/package-base-address-resource.md`` (``{"versions": [...]}``, normalized lower-case);
- ``RepositorySignatures``: ``api/repository-signatures-resource.md`` (``allRepositorySigned``,
  ``signingCertificates[].fingerprints`` keyed by hash algorithm OID, ``subject``, ``issuer``, ``notBefore``,
  ``notAfter``, ``contentUrl``);
- registrations: ``api/registration-base-url-resource.md`` (an index of pages; a page's ``items`` may be inlined or
  fetched from the page's ``@id``; each leaf's ``catalogEntry`` carries ``version``, ``listed`` and ``published``;
  a version without ``listed`` is unlisted when its ``published`` year is 1900, NuGet.Protocol
  ``PackageSearchMetadataRegistration``/``RegistrationUtility``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nuseal.errors import NusealError, PackageFormatError
from nuseal.package.version import NuGetVersion

__all__ = [
    "MAX_REGISTRATION_PAGES",
    "PACKAGE_BASE_ADDRESS",
    "REGISTRATIONS_BASE_URL",
    "REPOSITORY_SIGNATURES",
    "SEARCH_QUERY_SERVICE",
    "RegistrationIndex",
    "RegistrationLeaf",
    "RegistrationPage",
    "RepositoryCertificate",
    "RepositorySignatures",
    "ServiceIndex",
    "V3DocumentError",
    "parse_registration_index",
    "parse_registration_page",
    "parse_repository_signatures",
    "parse_service_index",
    "parse_version_list",
]

#: ``@type`` names a client accepts for each resource, preferred first (NuGet.Protocol ``ServiceTypes``).
PACKAGE_BASE_ADDRESS = ("PackageBaseAddress/3.0.0",)
REGISTRATIONS_BASE_URL = (  # SemVer 2.0.0 view first (3.6.0, the one NuGet 4.3+ uses), then the SemVer 1 ones
    "RegistrationsBaseUrl/3.6.0",
    "RegistrationsBaseUrl/Versioned",
    "RegistrationsBaseUrl/3.4.0",
    "RegistrationsBaseUrl/3.0.0-rc",
    "RegistrationsBaseUrl/3.0.0-beta",
    "RegistrationsBaseUrl",
)
SEARCH_QUERY_SERVICE = (
    "SearchQueryService/3.5.0",
    "SearchQueryService/3.0.0-rc",
    "SearchQueryService/3.0.0-beta",
    "SearchQueryService",
)
REPOSITORY_SIGNATURES = ("RepositorySignatures/5.0.0", "RepositorySignatures/4.9.0", "RepositorySignatures/4.7.0")
#: Most pages read from one registration index, most leaves from one page, most certificates from one document.
MAX_REGISTRATION_PAGES = 1000
MAX_PAGE_ITEMS = 10_000
MAX_CERTIFICATES = 1000
#: The ``published`` year nuget.org writes for unlisted versions.
UNLISTED_YEAR = 1900


class V3DocumentError(NusealError):
    """A V3 document is not the documented shape (bad JSON, a missing or mistyped member)."""


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise V3DocumentError(f"the {what} is not valid JSON: {exc}") from None


# ---------------------------------------------------------------------------------------------- service index
@dataclass(frozen=True)
class ServiceIndex:
    """The ``resources`` of a service index as ``(@type, @id)`` pairs, in document order."""

    resources: tuple[tuple[str, str], ...]

    def find(self, types: Sequence[str]) -> str | None:
        """The ``@id`` of the first resource whose ``@type`` is the earliest of ``types`` present (``None``: no
        such resource). Matching is exact, as NuGet.Protocol's is."""
        for wanted in types:
            for rtype, url in self.resources:
                if rtype == wanted:
                    return url
        return None


def parse_service_index(data: bytes) -> ServiceIndex:
    """Read ``/v3/index.json``.

    Raises:
        V3DocumentError: not JSON, or no ``resources`` array (a V2 feed's answer, an HTML page).
    """
    document = _json(data, "service index")
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list):
        raise V3DocumentError("it is not a NuGet V3 service index (no 'resources' array)")
    pairs: list[tuple[str, str]] = []
    for r in resources:
        if not isinstance(r, dict) or not isinstance(r.get("@id"), str):
            continue
        types = r.get("@type")
        for t in types if isinstance(types, list) else [types]:
            if isinstance(t, str):
                pairs.append((t, r["@id"]))
    return ServiceIndex(tuple(pairs))


# ---------------------------------------------------------------------------------------------- version list
def parse_version_list(data: bytes) -> list[NuGetVersion]:
    """Read a flat container ``{id}/index.json``; entries that are not NuGet versions are skipped (as NuGet does).

    Raises:
        V3DocumentError: not JSON or no ``versions`` array.
    """
    document = _json(data, "version list")
    texts = document.get("versions") if isinstance(document, dict) else None
    if not isinstance(texts, list):
        raise V3DocumentError("the version list has no 'versions' array")
    out: list[NuGetVersion] = []
    for text in texts:
        try:
            out.append(NuGetVersion.parse(str(text)))
        except PackageFormatError:
            continue
    return out


# ---------------------------------------------------------------------------------------------- RepositorySignatures
@dataclass(frozen=True)
class RepositoryCertificate:
    """One ``signingCertificates`` entry: ``fingerprints`` maps a hash algorithm OID to lower-case hex."""

    fingerprints: Mapping[str, str]
    subject: str = ""
    issuer: str = ""
    not_before: str = ""
    not_after: str = ""
    content_url: str = ""


@dataclass(frozen=True)
class RepositorySignatures:
    """A ``RepositorySignatures`` document."""

    all_repository_signed: bool
    certificates: tuple[RepositoryCertificate, ...] = ()

    def fingerprints(self, oid: str) -> frozenset[str]:
        """Every certificate's fingerprint under hash algorithm ``oid`` (lower-case hex)."""
        return frozenset(c.fingerprints[oid] for c in self.certificates if oid in c.fingerprints)


def parse_repository_signatures(data: bytes) -> RepositorySignatures:
    """Read a ``RepositorySignatures`` document (fingerprints lower-cased).

    Raises:
        V3DocumentError: not JSON, or members of the wrong type.
    """
    document = _json(data, "RepositorySignatures document")
    if not isinstance(document, dict):
        raise V3DocumentError("the RepositorySignatures document is not a JSON object")
    certs = document.get("signingCertificates", [])
    if not isinstance(certs, list) or len(certs) > MAX_CERTIFICATES:
        raise V3DocumentError(f"'signingCertificates' is not an array of at most {MAX_CERTIFICATES} entries")
    out: list[RepositoryCertificate] = []
    for cert in certs:
        prints = cert.get("fingerprints") if isinstance(cert, dict) else None
        if not isinstance(cert, dict) or not isinstance(prints, dict):
            raise V3DocumentError("a signingCertificates entry has no 'fingerprints' object")
        out.append(
            RepositoryCertificate(
                fingerprints={str(k): str(v).lower() for k, v in prints.items()},
                subject=str(cert.get("subject") or ""),
                issuer=str(cert.get("issuer") or ""),
                not_before=str(cert.get("notBefore") or ""),
                not_after=str(cert.get("notAfter") or ""),
                content_url=str(cert.get("contentUrl") or ""),
            )
        )
    return RepositorySignatures(bool(document.get("allRepositorySigned", False)), tuple(out))


# ---------------------------------------------------------------------------------------------- registrations
@dataclass(frozen=True)
class RegistrationLeaf:
    """One version in a registration: ``listed``; ``published`` (UTC; ``None`` when absent or unreadable);
    ``package_content`` (the ``.nupkg`` URL the source gives); ``catalog_entry`` as the source wrote it (for
    deprecation, vulnerabilities, dependency groups)."""

    id: str
    version: NuGetVersion
    listed: bool
    published: datetime | None
    package_content: str | None
    catalog_entry: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RegistrationPage:
    """A page of a registration index: its ``@id``, ``lower``/``upper`` bounds, and its leaves when inlined
    (``None``: fetch ``url`` and read it with :func:`parse_registration_page`)."""

    url: str
    lower: NuGetVersion | None
    upper: NuGetVersion | None
    leaves: tuple[RegistrationLeaf, ...] | None

    def may_hold(self, version: NuGetVersion) -> bool:
        """Whether ``version`` lies within the page's bounds (``True`` when a bound is missing)."""
        return (self.lower is None or self.lower <= version) and (self.upper is None or version <= self.upper)


@dataclass(frozen=True)
class RegistrationIndex:
    pages: tuple[RegistrationPage, ...]


def _published(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _version_or_none(text: object) -> NuGetVersion | None:
    try:
        return NuGetVersion.parse(str(text)) if isinstance(text, str) else None
    except PackageFormatError:
        return None


def _leaf(item: object) -> RegistrationLeaf | None:
    if not isinstance(item, dict):
        raise V3DocumentError("a registration page item is not a JSON object")
    entry = item.get("catalogEntry")
    if not isinstance(entry, dict):
        raise V3DocumentError("a registration leaf has no inlined 'catalogEntry' object")
    version = _version_or_none(entry.get("version"))
    if version is None or not isinstance(entry.get("id"), str):
        return None  # NuGet skips entries it cannot read
    published = _published(entry.get("published"))
    listed_value = entry.get("listed")
    listed = listed_value if isinstance(listed_value, bool) else published is None or published.year != UNLISTED_YEAR
    content = item.get("packageContent", entry.get("packageContent"))
    return RegistrationLeaf(
        id=entry["id"],
        version=version,
        listed=listed,
        published=published,
        package_content=content if isinstance(content, str) else None,
        catalog_entry=entry,
    )


def _leaves(items: object) -> tuple[RegistrationLeaf, ...]:
    if not isinstance(items, list) or len(items) > MAX_PAGE_ITEMS:
        raise V3DocumentError(f"a registration page's 'items' is not an array of at most {MAX_PAGE_ITEMS} leaves")
    return tuple(leaf for leaf in (_leaf(i) for i in items) if leaf is not None)


def parse_registration_page(data: bytes) -> tuple[RegistrationLeaf, ...]:
    """Read a registration page fetched on its own.

    Raises:
        V3DocumentError: not JSON or not the documented shape.
    """
    document = _json(data, "registration page")
    if not isinstance(document, dict):
        raise V3DocumentError("the registration page is not a JSON object")
    return _leaves(document.get("items"))


def parse_registration_index(data: bytes) -> RegistrationIndex:
    """Read a registration index (``{RegistrationsBaseUrl}{id-lower}/index.json``).

    Raises:
        V3DocumentError: not JSON, not the documented shape, or more than :data:`MAX_REGISTRATION_PAGES` pages.
    """
    document = _json(data, "registration index")
    pages = document.get("items") if isinstance(document, dict) else None
    if not isinstance(pages, list) or len(pages) > MAX_REGISTRATION_PAGES:
        raise V3DocumentError(
            f"the registration index's 'items' is not an array of at most {MAX_REGISTRATION_PAGES} pages"
        )
    out: list[RegistrationPage] = []
    for page in pages:
        if not isinstance(page, dict) or not isinstance(page.get("@id"), str):
            raise V3DocumentError("a registration page has no '@id'")
        items = page.get("items")
        out.append(
            RegistrationPage(
                url=page["@id"],
                lower=_version_or_none(page.get("lower")),
                upper=_version_or_none(page.get("upper")),
                leaves=None if items is None else _leaves(items),
            )
        )
    return RegistrationIndex(tuple(out))
