"""The NuGet CMS signature model: parsing ``.signature.p7s`` (NUGET-SIGNING.md §2.1, §3).

Public API: :class:`PrimarySignature` (``load`` from bytes), :class:`RepositoryCountersignature`,
:class:`Signature`, :class:`SignatureType`, :class:`SignatureContent`. Timestamp tokens are carried as bytes
and parsed by ``nuseal.timestamp`` (:func:`nuseal.timestamp.timestamps_of`). Attribute readers and writers are
in :mod:`nuseal.signature.attributes`. This package parses and checks structure; it never decides trust
(``nuseal.trust``).
"""

from nuseal.signature.attributes import SignatureType
from nuseal.signature.content import SignatureContent
from nuseal.signature.model import (
    MAX_COUNTERSIGNATURES,
    MAX_SIGNATURE_SIZE,
    MAX_TIMESTAMPS,
    PrimarySignature,
    RepositoryCountersignature,
    Signature,
)

__all__ = [
    "MAX_COUNTERSIGNATURES",
    "MAX_SIGNATURE_SIZE",
    "MAX_TIMESTAMPS",
    "PrimarySignature",
    "RepositoryCountersignature",
    "Signature",
    "SignatureContent",
    "SignatureType",
]
