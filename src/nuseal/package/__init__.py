"""The .nupkg container: hardened ZIP reading, NuGet's signed-archive rules, package hash, nuspec, versions.

Knows nothing about certificates or policy (``../shared/DESIGN.md``).
"""

from nuseal.package.archive import (
    SIGNATURE_ENTRY_NAME,
    PackageArchive,
    append_signature,
)
from nuseal.package.nuspec import Nuspec, find_nuspec_name, is_valid_id
from nuseal.package.structure import StructureCode, StructureProblem
from nuseal.package.version import NuGetVersion

__all__ = [
    "SIGNATURE_ENTRY_NAME",
    "NuGetVersion",
    "Nuspec",
    "PackageArchive",
    "StructureCode",
    "StructureProblem",
    "append_signature",
    "find_nuspec_name",
    "is_valid_id",
]
