"""RFC 3161 timestamps: token parsing and NuGet's token checks (NUGET-SIGNING.md §3.6).

:class:`Timestamp` is implemented in :mod:`nuseal.signature.timestamp`, next to the CMS plumbing it
shares with package signatures, and re-exported here (``nuseal.signature`` never imports this
package, so the RFC 3161 client that will live here may use it freely).
"""

from nuseal.signature.timestamp import BASELINE_POLICY_ACCURACY, MIN_RSA_KEY_BITS, Timestamp

__all__ = ["BASELINE_POLICY_ACCURACY", "MIN_RSA_KEY_BITS", "Timestamp"]
