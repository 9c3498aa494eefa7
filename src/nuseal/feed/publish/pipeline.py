"""The push pipeline: a list of stages, then an atomic publish.

Each stage is a function ``stage(submission, context) -> None`` (:class:`~nuseal.feed.publish.submission.
SubmissionStage`) that either returns (the submission may carry more facts afterwards) or raises a
:class:`~nuseal.feed.errors.FeedError`. ``context`` is the narrow :class:`~nuseal.feed.publish.submission.
StageContext` (configuration, database, storage, clock), not the publisher. The default stages are::

    check_container -> read_manifest -> check_permissions -> check_not_duplicate   -> publish

(the upload itself is streamed, capped and hashed before the pipeline runs, see :mod:`nuseal.feed.publish.upload`).
The composition root (:mod:`nuseal.feed.compose`) appends the feed's other stages in their order (signature checks,
repository signing, ...); a test can do the same::

    pipeline = default_pipeline(service).with_stages(check_signatures, repository_sign)

A stage that rewrites the package (repository signing) writes the new bytes to a new staging file and calls
:meth:`Submission.replace_package`. Stages run in a worker thread and may block. The pre-checks of
permissions and duplicates are repeated inside the publish transaction under the id's lock, so a stage
never has to worry about races; they run early only to fail fast with the clearest message.

This module does not import the publisher: :class:`PushPipeline` takes anything with a ``context`` and a
``publish(submission)`` (:class:`Publisher`; :class:`~nuseal.feed.publish.publisher.FeedService` is one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select

from nuseal.feed.errors import DuplicatePackageError, ForbiddenError
from nuseal.feed.publish.submission import (
    PublishedPackage,
    StageContext,
    Submission,
    SubmissionStage,
    read_archive,
    read_nuspec,
)
from nuseal.feed.store.models import Owner, Package, Registration

__all__ = [
    "DEFAULT_STAGES",
    "Publisher",
    "PushPipeline",
    "check_container",
    "check_not_duplicate",
    "check_permissions",
    "default_pipeline",
    "read_manifest",
]


class Publisher(Protocol):
    """What the pipeline publishes through (:class:`~nuseal.feed.publish.publisher.FeedService`)."""

    @property
    def context(self) -> StageContext: ...

    def publish(self, submission: Submission) -> PublishedPackage: ...


def check_container(submission: Submission, context: StageContext, /) -> None:
    """The upload is a ZIP that ``nuseal.package`` reads, with no hardening findings and, if signed, a
    well-formed signature entry (NU3005); see :func:`~nuseal.feed.publish.submission.read_archive`."""
    submission.archive = read_archive(submission.package_path.read_bytes(), signing=context.config.signing.enabled)


def read_manifest(submission: Submission, context: StageContext, /) -> None:
    """Exactly one nuspec at the root, with a valid id (``PackageIdValidator``), version, authors, description,
    every field within nuget.org's length limits (:data:`nuseal.package.nuspec.FIELD_LIMITS`)."""
    submission.nuspec, submission.nuspec_bytes = read_nuspec(submission.require_archive())


def check_permissions(submission: Submission, context: StageContext, /) -> None:
    """The key's scopes and globs allow pushing this id, and the pusher owns it unless it is new."""
    nuspec = submission.require_nuspec()
    id_lower = nuspec.id.lower()
    with context.db.read() as session:
        reg = session.get(Registration, id_lower)
        owners = set(session.scalars(select(Owner.user_pk).where(Owner.id_lower == id_lower)).all())
    new_id = reg is None or not owners
    submission.principal.require(nuspec.id, new_id=new_id)
    if not new_id and submission.principal.user_pk not in owners:
        raise ForbiddenError(f"the package id {reg.id if reg else nuspec.id!r} belongs to other owners")


def check_not_duplicate(submission: Submission, context: StageContext, /) -> None:
    """No version with the same normalized id and version exists, listed or not (409)."""
    nuspec = submission.require_nuspec()
    with context.db.read() as session:
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

    def __init__(self, publisher: Publisher, stages: Sequence[SubmissionStage] = DEFAULT_STAGES) -> None:
        self.publisher = publisher
        self.stages = tuple(stages)

    def with_stages(self, *extra: SubmissionStage) -> PushPipeline:
        """A pipeline with ``extra`` stages appended after the current ones, just before publishing."""
        return PushPipeline(self.publisher, (*self.stages, *extra))

    def run(self, submission: Submission) -> PublishedPackage:
        """Raises: FeedError from the stage or the publish step that refused the package."""
        context = self.publisher.context
        try:
            for stage in self.stages:
                stage(submission, context)
            return self.publisher.publish(submission)
        finally:
            submission.upload.discard()


def default_pipeline(publisher: Publisher) -> PushPipeline:
    return PushPipeline(publisher, DEFAULT_STAGES)
