"""The push pipeline: a list of stages, then an atomic publish.

Each stage is a function ``stage(submission, context) -> None`` that either returns (the submission may
carry more facts afterwards) or raises a :class:`~nuseal.feed.errors.FeedError`. The default stages are::

    check_container -> read_manifest -> check_permissions -> check_not_duplicate   -> publish

(the upload itself is streamed, capped and hashed before the pipeline runs, see :mod:`nuseal.feed.publish.upload`).
Later policy inserts its own stages before publishing without touching these, e.g. signature checks and
repository signing (issue 5)::

    pipeline = default_pipeline(service).with_stages(check_signatures, repository_sign)

A stage that rewrites the package (repository signing) writes the new bytes to a new staging file and calls
:meth:`Submission.replace_package`. Stages run in a worker thread and may block. The pre-checks of
permissions and duplicates are repeated inside the publish transaction under the id's lock, so a stage
never has to worry about races; they run early only to fail fast with the clearest message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from nuseal.codes import NuCode
from nuseal.errors import PackageFormatError
from nuseal.feed.accounts.keys import Principal
from nuseal.feed.errors import BadPackageError, DuplicatePackageError, ForbiddenError
from nuseal.feed.publish.upload import StagedUpload, package_sha512
from nuseal.feed.store.models import Owner, Package, Registration
from nuseal.package import Nuspec, PackageArchive, find_nuspec_name
from nuseal.package.nuspec import MAX_NUSPEC_SIZE

if TYPE_CHECKING:
    from nuseal.feed.publish.publisher import FeedService, PublishedPackage

__all__ = [
    "DEFAULT_STAGES",
    "PushPipeline",
    "Submission",
    "SubmissionStage",
    "check_container",
    "check_not_duplicate",
    "check_permissions",
    "default_pipeline",
    "read_manifest",
]


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
        self.archive = _read_archive(data)


class SubmissionStage(Protocol):
    """One check or transformation of a submission. Raise a FeedError to refuse the push."""

    def __call__(self, submission: Submission, service: FeedService, /) -> None: ...


def _read_archive(data: bytes, *, signing: bool = False) -> PackageArchive:
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
        raise BadPackageError("the package's ZIP structure is unsafe: " + "; ".join(problems[:5]))
    return archive


def check_container(submission: Submission, service: FeedService, /) -> None:
    """The upload is a ZIP that ``nuseal.package`` reads, with no hardening findings and, if signed, a
    well-formed signature entry (NU3005)."""
    submission.archive = _read_archive(submission.package_path.read_bytes(), signing=service.config.signing.enabled)


def read_manifest(submission: Submission, service: FeedService, /) -> None:
    """Exactly one nuspec at the root, with a valid id (``PackageIdValidator``), version, authors, description,
    every field within nuget.org's length limits (:data:`nuseal.package.nuspec.FIELD_LIMITS`)."""
    archive = submission.require_archive()
    try:
        name = find_nuspec_name(archive.names)
        raw = archive.read(name, limit=MAX_NUSPEC_SIZE)
        nuspec = Nuspec.parse(raw)
    except PackageFormatError as exc:
        raise BadPackageError(exc.message, code=exc.code) from exc
    submission.nuspec = nuspec
    submission.nuspec_bytes = raw


def check_permissions(submission: Submission, service: FeedService, /) -> None:
    """The key's scopes and globs allow pushing this id, and the pusher owns it unless it is new."""
    nuspec = submission.require_nuspec()
    id_lower = nuspec.id.lower()
    with service.db.read() as session:
        reg = session.get(Registration, id_lower)
        owners = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == id_lower)).all())
    new_id = reg is None or not owners
    submission.principal.require(nuspec.id, new_id=new_id)
    if not new_id and submission.principal.user_pk not in owners:
        raise ForbiddenError(f"the package id {reg.id if reg else nuspec.id!r} belongs to other owners")


def check_not_duplicate(submission: Submission, service: FeedService, /) -> None:
    """No version with the same normalized id and version exists, listed or not (409)."""
    nuspec = submission.require_nuspec()
    with service.db.read() as session:
        found = session.scalar(
            select(Package.pk).where(
                Package.id_lower == nuspec.id.lower(),
                Package.version_lower == nuspec.version.normalized.lower(),
            )
        )
    if found is not None:
        raise DuplicatePackageError(
            f"a package with id {nuspec.id!r} and version {nuspec.version.normalized!r} already exists "
            "and cannot be modified"
        )


DEFAULT_STAGES: tuple[SubmissionStage, ...] = (check_container, read_manifest, check_permissions, check_not_duplicate)


class PushPipeline:
    """Runs the stages in order, then publishes. The staging file is removed whatever happens."""

    def __init__(self, service: FeedService, stages: Sequence[SubmissionStage] = DEFAULT_STAGES) -> None:
        self.service = service
        self.stages = tuple(stages)

    def with_stages(self, *extra: SubmissionStage) -> PushPipeline:
        """A pipeline with ``extra`` stages appended after the current ones, just before publishing."""
        return PushPipeline(self.service, (*self.stages, *extra))

    def run(self, submission: Submission) -> PublishedPackage:
        """Raises: FeedError from the stage or the publish step that refused the package."""
        try:
            for stage in self.stages:
                stage(submission, self.service)
            return self.service.publish(submission)
        finally:
            submission.upload.discard()


def default_pipeline(service: FeedService) -> PushPipeline:
    return PushPipeline(service, DEFAULT_STAGES)
