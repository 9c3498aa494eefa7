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
from nuseal.verify.result import (
    CertificateIdentity,
    Placement,
    RevocationStatus,
    SignatureInfo,
    SignatureKind,
    Status,
    StatusFlags,
    StructureCode,
    StructureProblem,
    TimestampInfo,
    VerificationResult,
)
from nuseal.verify.verifier import Verifier

__all__ = [
    "AllowList",
    "AllowListEntry",
    "CertificateIdentity",
    "CountersignatureBehavior",
    "Placement",
    "RevocationStatus",
    "SignatureInfo",
    "SignatureKind",
    "SignaturePlacement",
    "Status",
    "StatusFlags",
    "StructureCode",
    "StructureProblem",
    "TimestampInfo",
    "VerificationPolicy",
    "VerificationResult",
    "VerificationTarget",
    "Verifier",
]
