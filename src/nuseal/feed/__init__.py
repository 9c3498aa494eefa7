"""The NuGet V3 feed behind ``nuseal serve``: resources, push pipeline, accounts, storage, database.

Public surface:

* :class:`FeedConfig` (data folder, base URL, database URL, limits) and :class:`FeedService` (open, setup,
  publish, unlist/relist, rebuild);
* :func:`create_app` (the ASGI application) and :func:`app_from_env` (uvicorn factory for workers);
* the push pipeline: :class:`Submission`, :class:`SubmissionStage`, :class:`PushPipeline`,
  :func:`default_pipeline` (issue 5 adds signature checks and repository signing as stages);
* errors: :class:`FeedError` and its subclasses, each with an HTTP status.

See ``docs/feed.md``.
"""

from nuseal.feed.app import app_from_env, create_app
from nuseal.feed.config import FeedConfig
from nuseal.feed.errors import (
    AuthenticationError,
    BadPackageError,
    BadRequestError,
    DuplicatePackageError,
    FeedError,
    ForbiddenError,
    NotFoundError,
    PackageTooLargeError,
)
from nuseal.feed.pipeline import DEFAULT_STAGES, PushPipeline, Submission, SubmissionStage, default_pipeline
from nuseal.feed.service import FeedService, PublishedPackage

__all__ = [
    "DEFAULT_STAGES",
    "AuthenticationError",
    "BadPackageError",
    "BadRequestError",
    "DuplicatePackageError",
    "FeedConfig",
    "FeedError",
    "FeedService",
    "ForbiddenError",
    "NotFoundError",
    "PackageTooLargeError",
    "PublishedPackage",
    "PushPipeline",
    "Submission",
    "SubmissionStage",
    "app_from_env",
    "create_app",
    "default_pipeline",
]
