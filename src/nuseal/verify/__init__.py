"""Verification orchestration: integrity + signatures + trust under a policy -> a result with NuGet codes.

One engine serves ``nuseal verify``, the feed's submission check and restore's check before extraction;
they differ only by :class:`VerificationPolicy`.
"""

from nuseal.verify.policy import (
    AllowList,
    AllowListEntry,
    CountersignatureBehavior,
    SignaturePlacement,
    VerificationPolicy,
    VerificationTarget,
)
from nuseal.verify.result import SignatureInfo, Status, StatusFlags, VerificationResult
from nuseal.verify.verifier import Verifier

__all__ = [
    "AllowList",
    "AllowListEntry",
    "CountersignatureBehavior",
    "SignatureInfo",
    "SignaturePlacement",
    "Status",
    "StatusFlags",
    "VerificationPolicy",
    "VerificationResult",
    "VerificationTarget",
    "Verifier",
]
