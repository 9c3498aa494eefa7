"""The V3 read side as documents: pure functions from package records to JSON bytes.

Shapes follow NuGet's server API documentation (``docs/api/service-index.md``, ``package-base-address-resource.md``,
``registration-base-url-resource.md``, ``search-query-service-resource.md``) and what NuGet.Client reads
(``NuGet.Protocol/Resources/*V3*``). No I/O and no clock: the caller passes records, the base URL, a commit
id and a time.

Registration views: ``registration`` is the SemVer 1.0.0 view (SemVer 2.0.0-only versions left out), served
for ``RegistrationsBaseUrl``, ``/3.0.0-rc``, ``/3.0.0-beta`` and ``/3.4.0``; ``registration-semver2`` is
the full view, for ``RegistrationsBaseUrl/3.6.0`` and ``RegistrationsBaseUrl/Versioned``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nuseal.package import NuGetVersion

__all__ = [
    "CATALOG_CONTEXT",
    "INLINE_PAGE_THRESHOLD",
    "PAGE_SIZE",
    "REGISTRATION_VIEWS",
    "REPOSITORY_SIGNATURES_KEY",
    "JSON_CONTENT_TYPE",
    "PackageRecord",
    "SignatureRecord",
    "Urls",
    "dump",
    "flat_index",
    "flat_index_key",
    "nupkg_key",
    "nuspec_key",
    "registration_documents",
    "repository_certificate_key",
    "service_index",
    "signature_summary",
]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
#: Registration indexes inline their pages up to this many versions (nuget.org: 128).
INLINE_PAGE_THRESHOLD = 128
#: Versions per registration page (nuget.org: 64 per page once paged).
PAGE_SIZE = 64
#: (view folder, includes SemVer 2.0.0-only versions)
REGISTRATION_VIEWS: tuple[tuple[str, bool], ...] = (("registration", False), ("registration-semver2", True))
#: ``published`` of unlisted versions, as nuget.org writes it (old clients read it as "unlisted").
UNLISTED_PUBLISHED = "1900-01-01T00:00:00+00:00"
_CLIENT_VERSION_FOR_VERSIONED = "4.3.0-alpha"  # nuget.org's value for RegistrationsBaseUrl/Versioned


def dump(doc: Any) -> bytes:
    """Compact, deterministic JSON bytes (UTF-8, keys in insertion order)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class PackageRecord:
    """What the documents need to know about one id+version (a snapshot of a database row)."""

    id: str
    version: NuGetVersion
    listed: bool
    published: datetime
    description: str = ""
    title: str = ""
    summary: str = ""
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    project_url: str = ""
    icon_url: str = ""
    license_url: str = ""
    license_expression: str = ""
    require_license_acceptance: bool = False
    min_client_version: str = ""
    language: str = ""
    package_types: tuple[str, ...] = ()
    #: (target framework or "", ((id, range or None), ...)) in nuspec order, empty groups included
    dependency_groups: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...] = ()
    downloads: int = 0
    #: ``None``: the feed does not track signatures; else the signatures (see :func:`signature_summary`) and
    #: the version's status (``valid`` or ``revoked``).
    signatures: tuple[SignatureRecord, ...] | None = None
    signature_status: str = "valid"

    @property
    def id_lower(self) -> str:
        return self.id.lower()

    @property
    def version_lower(self) -> str:
        return self.version.normalized.lower()


@dataclass(frozen=True)
class SignatureRecord:
    """One signature of a version as the registration leaf shows it (issue 5)."""

    kind: str  # "author" | "repository"
    placement: str  # "primary" | "countersignature"
    subject: str
    issuer: str
    fingerprint: str  # lower-case hex SHA-256
    timestamp: datetime | None
    timestamp_authority: str
    status: str  # "valid" | "revoked"
    certificate_status: str  # last revocation answer: "unknown" | "good" | "revoked"
    #: when the certificate was revoked (the responder's time; None when not revoked or not given)
    certificate_revocation_time: datetime | None = None
    #: when revocation was last asked (None: never since publication)
    certificate_checked_at: datetime | None = None
    #: the last answer in words: responder, OCSP or CRL, reason (empty before the first check)
    certificate_status_detail: str = ""


def _revocation(s: SignatureRecord) -> dict[str, Any] | None:
    if s.certificate_status != "revoked":
        return None
    return {
        "time": _iso(s.certificate_revocation_time) if s.certificate_revocation_time else None,
        "detail": s.certificate_status_detail,
    }


def signature_summary(rec: PackageRecord) -> dict[str, Any]:
    """nuseal's signing block of a registration leaf (issue 5, "Visible status"). NuGet clients ignore properties
    they do not know. Shape::

        {"signed": bool (author-signed), "repositorySigned": bool, "status": "valid" | "revoked",
         "revokedBecause": None | {"fingerprint", "time" (ISO 8601 or None: unknown), "detail"},
         "signatures": [{"type": "author" | "repository", "placement": "primary" | "countersignature",
                         "subject", "issuer", "fingerprints": {"2.16.840.1.101.3.4.2.1": SHA-256 hex},
                         "timestamp" (ISO 8601 genTime or None), "timestampAuthority", "status": "valid" | "revoked",
                         "certificateStatus": "unknown" | "good" | "revoked",
                         "certificateRevocation": None | {"time", "detail"}}]}

    ``revokedBecause`` names the revoked author certificate that made the version ``revoked`` (revalidation,
    :mod:`nuseal.feed.signing.revalidation`). ``certificateStatus`` is the certificate's status when the documents were
    last written; revalidation rewrites them whenever a certificate's status changes."""
    sigs = rec.signatures or ()
    culprit = next((s for s in sigs if s.kind == "author" and s.status == "revoked"), None)
    return {
        "signed": any(s.kind == "author" for s in sigs),
        "repositorySigned": any(s.kind == "repository" for s in sigs),
        "status": rec.signature_status,
        "revokedBecause": (
            {"fingerprint": culprit.fingerprint, **(_revocation(culprit) or {"time": None, "detail": ""})}
            if culprit is not None
            else None
        ),
        "signatures": [
            {
                "type": s.kind,
                "placement": s.placement,
                "subject": s.subject,
                "issuer": s.issuer,
                "fingerprints": {"2.16.840.1.101.3.4.2.1": s.fingerprint},
                "timestamp": _iso(s.timestamp) if s.timestamp else None,
                "timestampAuthority": s.timestamp_authority or None,
                "status": s.status,
                "certificateStatus": s.certificate_status,
                "certificateRevocation": _revocation(s),
            }
            for s in sigs
        ],
    }


class Urls:
    """Every URL and storage key of the feed, from its base URL (no trailing slash)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    @property
    def service_index(self) -> str:
        return f"{self.base}/v3/index.json"

    @property
    def publish(self) -> str:
        return f"{self.base}/api/v2/package"

    @property
    def legacy_gallery(self) -> str:
        return f"{self.base}/api/v2/"

    @property
    def flat(self) -> str:
        return f"{self.base}/v3/flatcontainer/"

    @property
    def repository_signatures(self) -> str:
        return f"{self.base}/{REPOSITORY_SIGNATURES_KEY}"

    def repository_certificate(self, fingerprint: str) -> str:
        return f"{self.base}/{repository_certificate_key(fingerprint)}"

    @property
    def vulnerability_info(self) -> str:
        """The folder of the ``VulnerabilityInfo/6.7.0`` documents (``index.json``, ``base.json``, ``update.json``)."""
        return f"{self.base}/{VULNERABILITY_INFO_PREFIX}"

    @property
    def search(self) -> str:
        return f"{self.base}/v3/search"

    @property
    def autocomplete(self) -> str:
        return f"{self.base}/v3/autocomplete"

    def registration_base(self, view: str) -> str:
        return f"{self.base}/v3/{view}/"

    def registration_index(self, view: str, id_lower: str) -> str:
        return f"{self.base}/{registration_index_key(view, id_lower)}"

    def registration_leaf(self, view: str, id_lower: str, version_lower: str) -> str:
        return f"{self.base}/{registration_leaf_key(view, id_lower, version_lower)}"

    def nupkg(self, id_lower: str, version_lower: str) -> str:
        return f"{self.base}/{nupkg_key(id_lower, version_lower)}"

    def details_template(self) -> str:
        return f"{self.base}/packages/{{id}}/{{version}}"

    def details(self, package_id: str, version: str) -> str:
        return f"{self.base}/packages/{package_id}/{version}"


# ---------------------------------------------------------------------------------------------- storage keys
#: Storage key of the RepositorySignatures/5.0.0 document.
REPOSITORY_SIGNATURES_KEY = "v3/repository-signatures/index.json"


#: Storage folder of the VulnerabilityInfo/6.7.0 documents (nuseal.feed.mirror.vulnerabilities writes them).
VULNERABILITY_INFO_PREFIX = "v3/vulnerabilities/"


def repository_certificate_key(fingerprint: str) -> str:
    """Storage key of a repository certificate's DER (``contentUrl``), by lower-case SHA-256 fingerprint."""
    return f"v3/repository-signatures/certificates/{fingerprint.lower()}.crt"


def flat_index_key(id_lower: str) -> str:
    return f"v3/flatcontainer/{id_lower}/index.json"


def nupkg_key(id_lower: str, version_lower: str) -> str:
    return f"v3/flatcontainer/{id_lower}/{version_lower}/{id_lower}.{version_lower}.nupkg"


def nuspec_key(id_lower: str, version_lower: str) -> str:
    return f"v3/flatcontainer/{id_lower}/{version_lower}/{id_lower}.nuspec"


def registration_index_key(view: str, id_lower: str) -> str:
    return f"v3/{view}/{id_lower}/index.json"


def registration_leaf_key(view: str, id_lower: str, version_lower: str) -> str:
    return f"v3/{view}/{id_lower}/{version_lower}.json"


def registration_page_key(view: str, id_lower: str, lower: str, upper: str) -> str:
    return f"v3/{view}/{id_lower}/page/{lower}/{upper}.json"


# ---------------------------------------------------------------------------------------------- service index
def service_index(
    urls: Urls, *, repository_signatures: bool = False, vulnerability_info: bool = False
) -> dict[str, Any]:
    """``/v3/index.json``: every resource this feed implements, under every type name clients look for.

    ``repository_signatures`` adds ``RepositorySignatures/5.0.0`` (the only version that may say
    ``allRepositorySigned: true``; NUGET-SIGNING.md §4.6). ``vulnerability_info`` adds ``VulnerabilityInfo/6.7.0``
    (NuGet 6.7+ audit reads it; docs/api/vulnerability-info.md), the feed started with ``--osv``."""

    def res(url: str, rtype: str, comment: str, **extra: str) -> dict[str, str]:
        return {"@id": url, "@type": rtype, "comment": comment, **extra}

    semver1 = urls.registration_base("registration")
    semver2 = urls.registration_base("registration-semver2")
    resources = [
        res(urls.publish, "PackagePublish/2.0.0", "Push (PUT), unlist (DELETE) and relist (POST) packages"),
        res(urls.flat, "PackageBaseAddress/3.0.0", "Flat container: version lists, .nupkg and .nuspec files"),
        res(urls.search, "SearchQueryService", "Search packages"),
        res(urls.search, "SearchQueryService/3.0.0-beta", "Search packages"),
        res(urls.search, "SearchQueryService/3.0.0-rc", "Search packages"),
        res(urls.search, "SearchQueryService/3.5.0", "Search packages (packageType filter)"),
        res(urls.autocomplete, "SearchAutocompleteService", "Package id and version autocomplete"),
        res(urls.autocomplete, "SearchAutocompleteService/3.0.0-beta", "Package id and version autocomplete"),
        res(urls.autocomplete, "SearchAutocompleteService/3.0.0-rc", "Package id and version autocomplete"),
        res(urls.autocomplete, "SearchAutocompleteService/3.5.0", "Autocomplete (packageType filter)"),
        res(semver1, "RegistrationsBaseUrl", "Package metadata, SemVer 1.0.0 versions only"),
        res(semver1, "RegistrationsBaseUrl/3.0.0-beta", "Package metadata, SemVer 1.0.0 versions only"),
        res(semver1, "RegistrationsBaseUrl/3.0.0-rc", "Package metadata, SemVer 1.0.0 versions only"),
        res(semver1, "RegistrationsBaseUrl/3.4.0", "Package metadata, SemVer 1.0.0 versions only"),
        res(semver2, "RegistrationsBaseUrl/3.6.0", "Package metadata, SemVer 2.0.0 versions included"),
        res(
            semver2,
            "RegistrationsBaseUrl/Versioned",
            "Package metadata, SemVer 2.0.0 versions included",
            clientVersion=_CLIENT_VERSION_FOR_VERSIONED,
        ),
        res(urls.details_template(), "PackageDetailsUriTemplate/5.1.0", "Web page of a package version"),
        res(urls.legacy_gallery, "LegacyGallery", "Read-only V2 listing for `nuget list`"),
        res(urls.legacy_gallery, "LegacyGallery/2.0.0", "Read-only V2 listing for `nuget list`"),
    ]
    if repository_signatures:
        resources.append(
            res(urls.repository_signatures, "RepositorySignatures/5.0.0", "The feed's repository-signing certificates")
        )
    if vulnerability_info:
        resources.append(
            res(f"{urls.vulnerability_info}index.json", "VulnerabilityInfo/6.7.0", "Known vulnerable packages (OSV)")
        )
    return {
        "version": "3.0.0",
        "resources": resources,
        "@context": {
            "@vocab": "http://schema.nuget.org/services#",
            "comment": "http://www.w3.org/2000/01/rdf-schema#comment",
        },
    }


# ---------------------------------------------------------------------------------------------- flat container
def flat_index(records: Iterable[PackageRecord]) -> dict[str, Any]:
    """``{id}/index.json``: every version (listed or not), normalized, lower-cased, ascending."""
    return {"versions": [r.version_lower for r in sorted(records, key=lambda r: r.version)]}


# ---------------------------------------------------------------------------------------------- registrations
_CATALOG_TERMS = {
    "@vocab": "http://schema.nuget.org/schema#",
    "catalog": "http://schema.nuget.org/catalog#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "items": {"@id": "catalog:item", "@container": "@set"},
    "commitTimeStamp": {"@id": "catalog:commitTimeStamp", "@type": "xsd:dateTime"},
    "commitId": {"@id": "catalog:commitId"},
    "count": {"@id": "catalog:count"},
    "parent": {"@id": "catalog:parent", "@type": "@id"},
}
_LINK_TERMS = {
    "packageContent": {"@type": "@id"},
    "published": {"@type": "xsd:dateTime"},
    "registration": {"@type": "@id"},
}
#: The ``@context`` of this feed's registration indexes and pages (nuget.org's terms, in its order).
_REG_CONTEXT = {
    **_CATALOG_TERMS,
    "tags": {"@id": "tag", "@container": "@set"},
    "packageTargetFrameworks": {"@id": "packageTargetFramework", "@container": "@set"},
    "dependencyGroups": {"@id": "dependencyGroup", "@container": "@set"},
    "dependencies": {"@id": "dependency", "@container": "@set"},
    **_LINK_TERMS,
}
#: The same without the catalog entry's set terms: the ``@context`` of the registration indexes the mirror builds
#: from an upstream's items (:mod:`nuseal.feed.mirror.readthrough`).
CATALOG_CONTEXT = {**_CATALOG_TERMS, **_LINK_TERMS}


def _dependency_groups(urls: Urls, view: str, leaf_url: str, rec: PackageRecord) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, (tfm, deps) in enumerate(rec.dependency_groups):
        group_url = f"{leaf_url}#dependencygroup/{n}"
        group: dict[str, Any] = {"@id": group_url, "@type": "PackageDependencyGroup"}
        if tfm:
            group["targetFramework"] = tfm
        group["dependencies"] = [
            {
                "@id": f"{group_url}/{dep_id.lower()}",
                "@type": "PackageDependency",
                "id": dep_id,
                "range": dep_range or "(, )",
                "registration": urls.registration_index(view, dep_id.lower()),
            }
            for dep_id, dep_range in deps
            if dep_id
        ]
        out.append(group)
    return out


def _catalog_entry(urls: Urls, view: str, rec: PackageRecord) -> dict[str, Any]:
    leaf_url = urls.registration_leaf(view, rec.id_lower, rec.version_lower)
    entry: dict[str, Any] = {
        "@id": leaf_url + "#catalogentry",
        "@type": "PackageDetails",
        "authors": ", ".join(rec.authors),
        "dependencyGroups": _dependency_groups(urls, view, leaf_url, rec),
        "description": rec.description,
        "iconUrl": rec.icon_url,
        "id": rec.id,
        "language": rec.language,
        "licenseExpression": rec.license_expression,
        "licenseUrl": rec.license_url,
        "listed": rec.listed,
        "minClientVersion": rec.min_client_version,
        "packageContent": urls.nupkg(rec.id_lower, rec.version_lower),
        "packageTypes": [{"name": t} for t in rec.package_types] or [{"name": "Dependency"}],
        "projectUrl": rec.project_url,
        "published": _iso(rec.published) if rec.listed else UNLISTED_PUBLISHED,
        "requireLicenseAcceptance": rec.require_license_acceptance,
        "summary": rec.summary,
        "tags": list(rec.tags),
        "title": rec.title,
        "version": rec.version.full,
    }
    if rec.signatures is not None:
        entry["packageSigning"] = signature_summary(rec)
    return entry


def _leaf_item(urls: Urls, view: str, rec: PackageRecord, commit_id: str, commit_time: str) -> dict[str, Any]:
    return {
        "@id": urls.registration_leaf(view, rec.id_lower, rec.version_lower),
        "@type": "Package",
        "commitId": commit_id,
        "commitTimeStamp": commit_time,
        "catalogEntry": _catalog_entry(urls, view, rec),
        "packageContent": urls.nupkg(rec.id_lower, rec.version_lower),
        "registration": urls.registration_index(view, rec.id_lower),
    }


def _leaf_document(urls: Urls, view: str, rec: PackageRecord) -> dict[str, Any]:
    leaf_url = urls.registration_leaf(view, rec.id_lower, rec.version_lower)
    doc: dict[str, Any] = {
        "@id": leaf_url,
        "@type": ["Package", "http://schema.nuget.org/catalog#Permalink"],
        "catalogEntry": leaf_url + "#catalogentry",
        "listed": rec.listed,
        "packageContent": urls.nupkg(rec.id_lower, rec.version_lower),
        "published": _iso(rec.published) if rec.listed else UNLISTED_PUBLISHED,
        "registration": urls.registration_index(view, rec.id_lower),
        "@context": {
            "@vocab": "http://schema.nuget.org/schema#",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "catalogEntry": {"@type": "@id"},
            "registration": {"@type": "@id"},
            "packageContent": {"@type": "@id"},
            "published": {"@type": "xsd:dateTime"},
        },
    }
    if rec.signatures is not None:
        doc["packageSigning"] = signature_summary(rec)
    return doc


def registration_documents(
    urls: Urls,
    records: Sequence[PackageRecord],
    *,
    commit_id: str,
    commit_time: datetime,
    leaves_for: frozenset[str] | None = None,
) -> dict[str, bytes]:
    """Every registration document of one package id, in both views, keyed by storage key.

    ``records`` are all versions of the id. ``leaves_for`` limits which leaf documents are produced (lower-cased
    normalized versions); ``None`` produces all of them. A view with no version yields no document for it; the
    caller deletes what is no longer produced.
    """
    out: dict[str, bytes] = {}
    stamp = _iso(commit_time)
    for view, semver2 in REGISTRATION_VIEWS:
        recs = sorted((r for r in records if semver2 or not r.version.is_semver2), key=lambda r: r.version)
        if not recs:
            continue
        id_lower = recs[0].id_lower
        index_url = urls.registration_index(view, id_lower)
        paged = len(recs) > INLINE_PAGE_THRESHOLD
        chunks = [recs[i : i + PAGE_SIZE] for i in range(0, len(recs), PAGE_SIZE)] if paged else [recs]
        pages: list[dict[str, Any]] = []
        for chunk in chunks:
            lower, upper = chunk[0].version_lower, chunk[-1].version_lower
            items = [_leaf_item(urls, view, r, commit_id, stamp) for r in chunk]
            page_id = (
                f"{urls.base}/{registration_page_key(view, id_lower, lower, upper)}"
                if paged
                else f"{index_url}#page/{lower}/{upper}"
            )
            page: dict[str, Any] = {
                "@id": page_id,
                "@type": "catalog:CatalogPage",
                "commitId": commit_id,
                "commitTimeStamp": stamp,
                "count": len(chunk),
                "lower": chunk[0].version.full,
                "upper": chunk[-1].version.full,
                "parent": index_url,
            }
            if paged:
                out[registration_page_key(view, id_lower, lower, upper)] = dump(
                    {**page, "items": items, "@context": _REG_CONTEXT}
                )
                pages.append(page)
            else:
                pages.append({**page, "items": items})
        index = {
            "@id": index_url,
            "@type": ["catalog:CatalogRoot", "PackageRegistration", "catalog:Permalink"],
            "commitId": commit_id,
            "commitTimeStamp": stamp,
            "count": len(pages),
            "items": pages,
            "@context": _REG_CONTEXT,
        }
        out[registration_index_key(view, id_lower)] = dump(index)
        for r in recs:
            if leaves_for is None or r.version_lower in leaves_for:
                out[registration_leaf_key(view, id_lower, r.version_lower)] = dump(_leaf_document(urls, view, r))
    return out
