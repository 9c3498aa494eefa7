"""What a push carries through the pipeline, and what a stage may use: the types every stage and publish hook
shares, so that the pipeline (:mod:`nuseal.feed.publish.pipeline`), the publisher
(:mod:`nuseal.feed.publish.publisher`) and the stages of other sub-packages (signing, mirror, scan) import this
module and not each other.

* :class:`Submission`: one push in flight (the staged upload, who pushes it, what the stages learned);
* :class:`StageContext`: the narrow view of the feed a stage gets (configuration, database, storage, clock), never
  the whole publisher;
* :class:`SubmissionStage`: ``stage(submission, context) -> None``, raising a
  :class:`~nuseal.feed.errors.FeedError` to refuse the push;
* :data:`PublishHook` and :data:`SetupHook`: what runs inside the publish transaction after the package row is
  inserted, and at start after the schema is migrated. The composition root (:mod:`nuseal.feed.compose`) lists
  them, in order, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from nuseal.codes import NuCode
from nuseal.errors import PackageFormatError
from nuseal.feed.accounts.keys import Principal
from nuseal.feed.config import FeedConfig
from nuseal.feed.errors import BadPackageError
from nuseal.feed.protocol.documents import Urls
from nuseal.feed.publish.upload import StagedUpload, package_sha512
from nuseal.feed.store.database import Database
from nuseal.feed.store.models import Package
from nuseal.feed.store.storage import Storage
from nuseal.package import Nuspec, PackageArchive, find_nuspec_name
from nuseal.package.nuspec import MAX_NUSPEC_SIZE
from nuseal.verify.result import VerificationResult

__all__ = [
    "PublishHook",
    "PublishedPackage",
    "SetupHook",
    "StageContext",
    "Submission",
    "SubmissionStage",
    "read_archive",
    "read_nuspec",
]


@dataclass(frozen=True)
class StageContext:
    """What a push stage, a publish hook or a setup hook may use of the feed: its configuration, database,
    storage and clock (``clock()`` is an aware UTC datetime; tests pass a fixed one)."""

    config: FeedConfig
    db: Database
    storage: Storage
    clock: Callable[[], datetime]
    urls: Urls = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", Urls(self.config.base_url))


@dataclass(frozen=True)
class PublishedPackage:
    """What a successful push stored: the id as first pushed, the normalized version, the size in bytes and the
    base64 SHA-512 of the stored ``.nupkg``."""

    id: str
    version: str
    size: int
    sha512: str


def read_archive(data: bytes, *, signing: bool = False) -> PackageArchive:
    """``data`` as a package the feed accepts: a 32-bit ZIP that ``nuseal.package`` reads, with no hardening
    findings and, if signed, a well-formed signature entry (NU3005). ``signing``: the feed repository-signs
    every package (a ZIP64 upload is then refused with NU3006, as NuGet cannot sign it).

    Raises:
        BadPackageError: the first rule the bytes break, with its NU code where NuGet has one.
    """
    try:
        archive = PackageArchive.from_bytes(data, source="upload")
    except PackageFormatError as exc:
        raise BadPackageError(f"the upload is not a valid package: {exc.message}", code=exc.code) from exc
    if archive.uses_zip64:
        # NuGet signs and verifies no ZIP64 package (NC SignedPackageArchiveUtility.IsZip64 -> NU3006): a
        # signing feed could neither check its signature nor add its own; nuseal.package reads 32-bit ZIPs only
        if archive.is_signed or signing:
            raise BadPackageError(
                "the package is a ZIP64 archive (over 65,535 entries or 4 GiB); NuGet cannot sign or verify ZIP64 "
                "packages, so this feed, which repository-signs every package, cannot accept it",
                code=NuCode.NU3006,
            )
        raise BadPackageError(
            "the package is a ZIP64 archive (over 65,535 entries or 4 GiB); this feed does not accept ZIP64"
        )
    if archive.is_signed:  # NuGet's own rule first, so the client sees its code
        try:
            archive.signature_record()
        except PackageFormatError as exc:
            raise BadPackageError(exc.message, code=exc.code) from exc
    problems = archive.structure_problems
    if problems:
        raise BadPackageError("the package's ZIP structure is unsafe: " + "; ".join(str(p) for p in problems[:5]))
    return archive


def read_nuspec(archive: PackageArchive) -> tuple[Nuspec, bytes]:
    """The package's nuspec, parsed, and its bytes: exactly one at the root, with a valid id
    (``PackageIdValidator``), version, authors and description, every field within nuget.org's length limits.

    Raises:
        BadPackageError: the nuspec is missing, doubled or invalid (with its NU code).
    """
    try:
        raw = archive.read(find_nuspec_name(archive.names), limit=MAX_NUSPEC_SIZE)
        return Nuspec.parse(raw), raw
    except PackageFormatError as exc:
        raise BadPackageError(exc.message, code=exc.code) from exc


@dataclass
class Submission:
    """One push in flight: the staged upload, who pushes it, and what the stages learned."""

    upload: StagedUpload
    principal: Principal
    now: datetime
    archive: PackageArchive | None = None
    nuspec: Nuspec | None = None
    nuspec_bytes: bytes | None = None
    warnings: list[str] = field(default_factory=list)
    #: What stages learned for the publish step and its hooks (e.g. ``"signatures"``, see
    #: :mod:`nuseal.feed.signing.stages`).
    facts: dict[str, Any] = field(default_factory=dict)
    #: The verification engine's result on the package's signatures, from the first stage that verified it (the
    #: signing stages' submission check or the ingestion checks, on the package as received, before the feed's
    #: repository signature; a quarantine release reads the held bytes), so later stages and hooks read its typed
    #: facts instead of parsing the signature again; None: nothing verified it.
    verification: VerificationResult | None = None

    @property
    def package_path(self) -> Path:
        return self.upload.path

    def require_archive(self) -> PackageArchive:
        if self.archive is None:
            raise RuntimeError("check_container must run before this stage")
        return self.archive

    def require_nuspec(self) -> Nuspec:
        if self.nuspec is None:
            raise RuntimeError("read_manifest must run before this stage")
        return self.nuspec

    def replace_package(self, path: Path) -> None:
        """Swap in rewritten package bytes (e.g. repository-signed): re-hashes and re-reads the archive.

        The old staging file is deleted; ``path`` must be in the same staging folder.

        Raises:
            BadPackageError: the new bytes are not a readable package.
        """
        data = path.read_bytes()
        old = self.upload
        self.upload = StagedUpload(path, len(data), package_sha512(data))
        if old.path != path:
            old.discard()
        self.archive = read_archive(data)


class SubmissionStage(Protocol):
    """One check or transformation of a submission. Raise a FeedError to refuse the push."""

    def __call__(self, submission: Submission, context: StageContext, /) -> None: ...


#: Called inside the publish transaction after the package row is inserted, in the order the composition root
#: lists them: ``hook(submission, context, session, row)`` (issue 5: the signature rows, then
#: ``allRepositorySigned``). Raising rolls the publish back.
PublishHook = Callable[[Submission, StageContext, Session, Package], None]

#: Called by :meth:`~nuseal.feed.publish.publisher.FeedService.setup` after the schema is migrated and the storage
#: recovered, before the service index is written (issue 5: publish the repository certificates).
SetupHook = Callable[[StageContext], None]
