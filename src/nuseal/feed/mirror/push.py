"""The ingestion checks in the push pipeline (issue 16): pushes are scanned too, and ids are protected.

Stages (:class:`~nuseal.feed.publish.submission.SubmissionStage`), in the order the composition root lists them::

    check_container -> read_manifest -> check_permissions -> check_not_duplicate
        -> check_not_held -> protect_id -> check_content
        -> (signing stages: check_signatures -> repository_sign) -> quarantine_gate -> publish

* ``check_not_held``: a version held in quarantine, or refused for good, answers 409 like an existing version;
* ``protect_id`` (:meth:`IngestChecks.identity`): a new id under a prefix reserved for other owners is refused
  (403), a new id that is a look-alike of an id on the feed, cached from an upstream, or popular is refused (400)
  naming the id it imitates;
* ``check_content``: the ``scan`` (a finding of a ``--block-rule`` rule: 400), ``known-bad`` (a malicious version:
  400) and, with ``--push-signer-continuity``, ``continuity`` checks; their results go into the submission
  (recorded with the version when it is published, shown on its page);
* ``quarantine_gate`` (last, after repository signing): when a check said *hold*, the package (the bytes that would
  have been published) goes to quarantine and the push is answered ``201 Created`` with the reasons in the body
  and ``X-NuGet-Warning`` (:class:`HeldForReview`); the version stays invisible until an admin releases it.
"""

from __future__ import annotations

from typing import Any

from nuseal.feed.errors import BadPackageError, DuplicatePackageError, FeedError, ForbiddenError
from nuseal.feed.mirror.checks import Candidate, IngestChecks, StageResult, Verdict
from nuseal.feed.mirror.quarantine import FACT_RELEASE, FACT_RESULTS, Quarantine
from nuseal.feed.publish.signatures import read_signatures
from nuseal.feed.publish.submission import Submission

__all__ = ["HeldForReview", "PushChecks"]


class HeldForReview(FeedError):
    """The push was received and its version is held in quarantine: ``201 Created`` (NuGet clients report success
    and print the ``X-NuGet-Warning`` that names the reasons)."""

    status = 201


def _results(submission: Submission) -> list[StageResult]:
    found: list[StageResult] = submission.facts.setdefault(FACT_RESULTS, [])
    return found


def _refuse(result: StageResult, *, forbidden: bool = False) -> FeedError:
    message = f"{result.stage}: {result.summary}"
    return ForbiddenError(message) if forbidden else BadPackageError(message)


class PushChecks:
    """The push stages of one feed (see the module docstring)."""

    def __init__(self, checks: IngestChecks, quarantine: Quarantine) -> None:
        self.checks = checks
        self.quarantine = quarantine

    def _candidate(self, submission: Submission) -> Candidate:
        return Candidate(
            path=submission.package_path,
            archive=submission.require_archive(),
            nuspec=submission.require_nuspec(),
            source="push",
            now=submission.now,
            pusher_pk=submission.principal.user_pk,
            verification=submission.verification,
        )

    def check_not_held(self, submission: Submission, context: Any, /) -> None:
        """409 for a version held in quarantine or refused for good."""
        nuspec = submission.require_nuspec()
        view = self.quarantine.get(nuspec.id, nuspec.version.normalized)
        if view is None:
            return
        if view.state == "held":
            raise DuplicatePackageError(
                f"{nuspec.id} {nuspec.version.normalized} was pushed before and is held in quarantine for review"
            )
        if view.state == "refused" and any(r.get("evidence", {}).get("for_good") for r in view.reasons):
            raise DuplicatePackageError(
                f"{nuspec.id} {nuspec.version.normalized} is refused by this feed: {view.summary}"
            )

    def protect_id(self, submission: Submission, context: Any, /) -> None:
        """Reserved prefixes (403) and look-alike ids (400)."""
        result = self.checks.identity(self._candidate(submission))
        _results(submission).append(result)
        if result.verdict is Verdict.REFUSE:
            raise _refuse(result, forbidden="reserved_prefixes" in result.evidence)

    def check_content(self, submission: Submission, context: Any, /) -> None:
        """Scan, known-bad and signer continuity; a refusal is a 400, a hold waits for :meth:`quarantine_gate`."""
        candidate = self._candidate(submission)
        if candidate.verification is None and not context.config.signing.enabled:
            # no signing stage will verify it: the engine reads the signatures once, here and not in the publish
            # transaction, for continuity and for the publish hook (the id's first author signer)
            candidate.verification = read_signatures(candidate.archive, candidate.now)
        checks = [self.checks.scan, self.checks.known_bad]
        if self.checks.settings.push_continuity:
            checks.append(self.checks.continuity)
        for check in checks:
            result = check(candidate)
            _results(submission).append(result)
            if result.verdict is Verdict.REFUSE:
                raise _refuse(result)
        if submission.verification is None:
            submission.verification = candidate.verification

    def quarantine_gate(self, submission: Submission, context: Any, /) -> None:
        """Hold the package when a check said so (module docstring).

        Raises:
            HeldForReview: the version is now in quarantine (201).
        """
        if FACT_RELEASE in submission.facts:
            return
        results = _results(submission)
        holds = [r for r in results if r.verdict is Verdict.HOLD]
        if not holds:
            return
        nuspec = submission.require_nuspec()
        self.quarantine.hold(
            path=submission.package_path,
            nuspec=nuspec,
            source="push",
            results=results,
            pushed_by=submission.principal.user_pk,
            actor=submission.principal.user_name,
        )
        raise HeldForReview(
            f"{nuspec.id} {nuspec.version.normalized} was received and is held in quarantine for review; it is not "
            "visible until an administrator releases it. Reasons: "
            + "; ".join(f"{r.stage}: {r.summary}" for r in holds)
        )
