"""The verification engine's reading of a package's signatures where no check verified it (issue 12.1).

The feed never parses a signature itself: the stages that judge a package keep the engine's
:class:`~nuseal.verify.VerificationResult` (:attr:`Submission.verification
<nuseal.feed.publish.submission.Submission.verification>`). Where nothing judged it (a push on a feed without
signing, a version released from quarantine, the revocation recheck's scan of stored packages),
:func:`read_signatures` runs the engine once, under NuGet's accept policy, offline and with no trust store: the
result says what the signatures are (kind, placement), who signed them and their timestamps (certificate
identities, genTime, the certificates they carry) and whether they are ``intact``; nothing about trust, validity or
revocation is judged and nothing is fetched.
"""

from __future__ import annotations

import functools
from datetime import datetime

from nuseal.package import PackageArchive
from nuseal.trust import RevocationCache, RevocationMode, TrustStore
from nuseal.verify import VerificationPolicy, VerificationResult, Verifier

__all__ = ["read_signatures"]


@functools.cache
def _reader() -> Verifier:
    # its own revocation cache, not a revocation run's (a cached verifier outlives the run it was made in)
    return Verifier(
        VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE),
        code_signing_roots=TrustStore.empty(),
        timestamping_roots=TrustStore.empty(),
        cache=RevocationCache(),
    )


def read_signatures(archive: PackageArchive, now: datetime) -> VerificationResult | None:
    """The engine's typed facts about ``archive``'s signatures (module docstring), judged at ``now`` (timezone-aware;
    it matters only to the facts the reading does not judge). None for an unsigned package; never raises for a bad
    signature (the result has no signatures then)."""
    if not archive.is_signed:
        return None
    return _reader().verify(archive, now=now)
