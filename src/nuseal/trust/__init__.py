"""nuseal.trust: certificate requirements, chain building, revocation, trust stores and trustedSigners.

Everything here judges certificates the way NuGet does (``../shared/NUGET-SIGNING.md`` §3.4, §4.2, §4.4,
§4.5, §4.7) and returns structured results; mapping them to NU codes per signature kind (NU3012/NU3018 for
the primary signature, NU3035 for the repository countersignature, NU3028 for timestamps) is
``nuseal.verify``'s job. The only I/O is fetching revocation data through an injected
:class:`RevocationFetcher`; without one nothing is fetched. The HTTP fetcher lives in :mod:`nuseal.trust.online`
(not imported here: ``import nuseal.trust`` loads no HTTP client).
"""

from nuseal.trust.certificate import CertificatePurpose, dotnet_name, fingerprint, is_self_issued
from nuseal.trust.chain import (
    DEFAULT_OBSERVED_STATUSES,
    ChainBuilder,
    ChainElement,
    ChainResult,
    ChainStatus,
    untrusted_root_warning,
)
from nuseal.trust.config import (
    NuGetConfig,
    SignatureValidationMode,
    SignerKind,
    TrustedCertificateEntry,
    TrustedSigner,
    TrustedSignerCertificate,
    find_nuget_configs,
    load_nuget_config,
    merge_trusted_certificates,
    parse_nuget_config,
)
from nuseal.trust.requirements import (
    RequirementFailure,
    RequirementKind,
    check_certificate_requirements,
    requirement_code,
)
from nuseal.trust.revocation import (
    RevocationCache,
    RevocationChecker,
    RevocationFetcher,
    RevocationMode,
    RevocationResult,
    RevocationStatus,
)
from nuseal.trust.store import TrustStore

__all__ = [
    "DEFAULT_OBSERVED_STATUSES",
    "CertificatePurpose",
    "ChainBuilder",
    "ChainElement",
    "ChainResult",
    "ChainStatus",
    "NuGetConfig",
    "RequirementFailure",
    "RequirementKind",
    "RevocationCache",
    "RevocationChecker",
    "RevocationFetcher",
    "RevocationMode",
    "RevocationResult",
    "RevocationStatus",
    "SignatureValidationMode",
    "SignerKind",
    "TrustStore",
    "TrustedCertificateEntry",
    "TrustedSigner",
    "TrustedSignerCertificate",
    "check_certificate_requirements",
    "dotnet_name",
    "find_nuget_configs",
    "fingerprint",
    "is_self_issued",
    "load_nuget_config",
    "merge_trusted_certificates",
    "parse_nuget_config",
    "requirement_code",
    "untrusted_root_warning",
]
