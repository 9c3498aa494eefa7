"""The package manifest (``<id>.nuspec`` at the archive root), read with ``defusedxml``.

Rules: NuGet.Client ``NuGet.Packaging/PackageArchiveReader.cs`` / ``PackageReaderBase.GetNuspecFile`` (exactly
one ``.nuspec`` at the root), ``NuspecReader`` (namespace-agnostic ``package/metadata`` children),
``PackageIdValidator`` (id: at most 100 characters, ``^\\w+([.-]\\w+)*$``). Field lengths as nuget.org refuses them
at upload (NuGetGallery ``ValidateNuGetPackageMetadata``, :data:`FIELD_LIMITS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from nuseal.errors import PackageFormatError
from nuseal.package.version import NuGetVersion

__all__ = [
    "FIELD_LIMITS",
    "MAX_DEPENDENCIES_LENGTH",
    "MAX_DEPENDENCY_ID_LENGTH",
    "MAX_DEPENDENCY_RANGE_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_ID_VERSION_LENGTH",
    "MAX_NUSPEC_SIZE",
    "MAX_PACKAGE_TYPES_LENGTH",
    "Nuspec",
    "find_nuspec_name",
    "is_valid_id",
]

#: NuGet's ``PackageIdValidator.MaxPackageIdLength``.
MAX_ID_LENGTH = 100
#: Largest nuspec nuseal parses (bytes).
MAX_NUSPEC_SIZE = 4 << 20
#: Longest text (characters, after trimming) of each ``<metadata>`` child, as nuget.org refuses it at upload:
#: NuGetGallery ``src/NuGet.Services.Entities/Constants.cs`` (``MaxAuthorsLength`` ... ``MaxLanguageLength``),
#: checked in ``src/NuGetGallery.Services/Helpers/PackageHelper.cs`` ``ValidateNuGetPackageMetadata`` (authors
#: measured joined with ``", "``); ``license`` from ``PackageMetadataValidationService``
#: (``MaxAllowedLicenseNodeValueLength``). ``owners`` is nuseal's own (nuget.org ignores the element).
FIELD_LIMITS: dict[str, int] = {
    "authors": 4000,
    "copyright": 4000,
    "description": 4000,
    "iconUrl": 4000,
    "language": 20,
    "license": 500,
    "licenseUrl": 4000,
    "owners": 4000,
    "projectUrl": 4000,
    "releaseNotes": 35000,
    "summary": 4000,
    "tags": 4000,
    "title": 256,
}
#: nuget.org: id and full version together (``MaxIdVersionCombinedLength``).
MAX_ID_VERSION_LENGTH = 160
#: nuget.org: a dependency's id (``MaxPackageIdLength``, the database column) and version range
#: (``MaxDependencyVersionRangeLength``).
MAX_DEPENDENCY_ID_LENGTH = 128
MAX_DEPENDENCY_RANGE_LENGTH = 256
#: nuget.org: all dependencies flattened as ``id:range:framework`` joined with ``|`` (``Int16.MaxValue``).
MAX_DEPENDENCIES_LENGTH = 32767
#: nuseal's own bound on ``<packageTypes>`` (names joined with ``|``); nuget.org states none.
MAX_PACKAGE_TYPES_LENGTH = 4000
#: nuget.org: ``<repository type=... url=...>`` (``MaxRepositoryTypeLength``, ``MaxRepositoryUrlLength``).
_REPOSITORY_LIMITS = {"type": 100, "url": 4000}
#: Always used with ``fullmatch``: ``$`` would accept a final newline.
_ID = re.compile(r"\w+([.-]\w+)*")


def is_valid_id(package_id: str) -> bool:
    """NuGet's package id rule (``PackageIdValidator.IsValidPackageId``)."""
    return len(package_id) <= MAX_ID_LENGTH and bool(_ID.fullmatch(package_id))


def find_nuspec_name(names: tuple[str, ...]) -> str:
    """The one ``*.nuspec`` entry at the archive root.

    Raises:
        PackageFormatError: none, or more than one.
    """
    found = [n for n in names if "/" not in n and "\\" not in n and n.lower().endswith(".nuspec")]
    if not found:
        raise PackageFormatError("the package has no .nuspec file at its root")
    if len(found) > 1:
        raise PackageFormatError(f"the package has several .nuspec files at its root: {', '.join(found)}")
    return found[0]


@lru_cache(maxsize=256)
def _local(tag: str) -> str:
    """The local name of a ``{namespace}name`` tag (NuGet reads the nuspec namespace-agnostically). Memoised: a
    nuspec repeats a handful of tags (``dependency``, ``group``) many times; bounded, as the tags are untrusted."""
    return tag.rsplit("}", 1)[-1]


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


@dataclass(frozen=True)
class Nuspec:
    """The manifest fields nuseal uses. ``metadata`` maps every simple ``<metadata>`` child to its text.

    ``dependencies`` flattens every ``<dependency>`` as ``(target framework or "", id, range)``;
    ``dependency_groups`` keeps them as NuGet groups them (NC ``NuspecReader.GetDependencyGroups``): the ``<group>``
    elements in order, empty groups included (a missing ``targetFramework`` is the any-framework group, ""), or,
    when there is no ``<group>``, the plain ``<dependency>`` children as one any-framework group (none when there are
    none). ``min_client_version`` is ``<metadata minClientVersion>``; ``license_expression`` the text of
    ``<license type="expression">`` ("" when absent).
    """

    id: str
    version: NuGetVersion
    authors: tuple[str, ...]
    owners: tuple[str, ...]
    description: str
    title: str | None
    tags: tuple[str, ...]
    package_types: tuple[str, ...]
    dependencies: tuple[tuple[str, str, str | None], ...]  # (target framework or "", id, range)
    metadata: dict[str, str]
    #: Fields over nuget.org's length limits, one message each (empty when ``parse`` enforced them).
    limit_problems: tuple[str, ...] = ()
    dependency_groups: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...] = ()
    min_client_version: str = ""
    license_expression: str = ""

    @classmethod
    def parse(cls, data: bytes, *, enforce_limits: bool = True) -> Nuspec:
        """Parse and validate a nuspec document.

        With ``enforce_limits`` (the default) a field longer than nuget.org accepts (:data:`FIELD_LIMITS` and the
        other ``MAX_*`` of this module) is an error; without it the same findings are in :attr:`limit_problems`.

        Raises:
            PackageFormatError: too large, not well-formed XML, forbidden XML constructs (entities, DTDs),
                no ``package/metadata``, a missing or invalid ``id``/``version``, missing ``authors`` /
                ``description``, or (``enforce_limits``) a field over its length limit, naming the field and
                the limit.
        """
        if len(data) > MAX_NUSPEC_SIZE:
            raise PackageFormatError(f"the nuspec is {len(data)} bytes (limit {MAX_NUSPEC_SIZE})")
        try:
            root = fromstring(data, forbid_dtd=True)
        except (ParseError, DefusedXmlException) as exc:
            raise PackageFormatError(f"the nuspec is not valid XML: {exc}") from exc
        except (LookupError, ValueError) as exc:  # expat: an unknown or a multi-byte encoding declared
            raise PackageFormatError(f"the nuspec declares an encoding that cannot be read: {exc}") from exc
        if _local(root.tag) != "package":
            raise PackageFormatError("the nuspec's root element is not <package>")
        meta_el = next((c for c in root if _local(c.tag) == "metadata"), None)
        if meta_el is None:
            raise PackageFormatError("the nuspec has no <metadata> element")
        parts = _read_metadata(meta_el)
        fields = parts.fields
        package_id = fields.get("id", "")
        if not package_id:
            raise PackageFormatError("the nuspec has no <id>")
        if not is_valid_id(package_id):
            raise PackageFormatError(
                f"the package id {package_id!r} is not valid: letters, digits, '_', '.' and '-' only, "
                f"at most {MAX_ID_LENGTH} characters, no leading, trailing or doubled '.' or '-'"
            )
        version_text = fields.get("version", "")
        if not version_text:
            raise PackageFormatError("the nuspec has no <version>")
        version = NuGetVersion.parse(version_text)
        authors = _split_list(fields.get("authors", ""))
        if not authors:
            raise PackageFormatError("the nuspec has no <authors>")
        description = fields.get("description", "")
        if not description:
            raise PackageFormatError("the nuspec has no <description>")
        nuspec = cls(
            id=package_id,
            version=version,
            authors=authors,
            owners=_split_list(fields.get("owners", "")),
            description=description,
            title=fields.get("title"),
            tags=tuple(fields.get("tags", "").split()),
            package_types=parts.package_types,
            dependencies=parts.dependencies,
            metadata=fields,
            limit_problems=_limit_problems(parts, authors, version),
            dependency_groups=parts.dependency_groups,
            min_client_version=meta_el.get("minClientVersion") or "",
            license_expression=parts.license_expression,
        )
        if enforce_limits and nuspec.limit_problems:
            raise PackageFormatError("; ".join(nuspec.limit_problems))
        return nuspec


@dataclass(frozen=True, slots=True)
class _Metadata:
    """What :meth:`Nuspec.parse` reads from ``<metadata>``, gathered in one pass over its children."""

    #: Each childless child with text: local name -> stripped text (the first of a name wins).
    fields: dict[str, str]
    #: ``<packageTypes><packageType name>`` in order, empty names left out.
    package_types: tuple[str, ...]
    #: :attr:`Nuspec.dependencies`.
    dependencies: tuple[tuple[str, str, str | None], ...]
    #: :attr:`Nuspec.dependency_groups`.
    dependency_groups: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...]
    #: :attr:`Nuspec.license_expression`.
    license_expression: str
    #: The ``<repository>`` elements, in order.
    repositories: tuple[Element, ...]


def _read_metadata(meta: Element) -> _Metadata:
    """One pass over ``<metadata>``'s children (and their children); every child is looked at as NuGet does:

    * ``dependencies``: flattened for :attr:`Nuspec.dependencies` (plain ``<dependency>`` children with framework "",
      ``<group>`` members with the group's ``targetFramework`` as written); grouped for
      :attr:`Nuspec.dependency_groups` as NC ``NuspecReader.GetDependencyGroups`` does (the ``<group>`` elements in
      order, empty ones included, ``targetFramework`` trimmed; without any ``<group>``, the plain ``<dependency>``
      children as one any-framework group, none when there are none);
    * ``license``: the first with ``type="expression"`` and text gives the expression;
    * ``packageTypes``, ``repository``: kept for the fields and the length limits.
    """
    fields: dict[str, str] = {}
    types: list[str] = []
    deps: list[tuple[str, str, str | None]] = []
    groups: list[tuple[str, tuple[tuple[str, str | None], ...]]] = []
    license_expression: str | None = None
    repositories: list[Element] = []
    for child in meta:
        name = _local(child.tag)
        if len(child) == 0:
            if child.text is not None:
                fields.setdefault(name, child.text.strip())
        elif name == "dependencies":
            flat: list[tuple[str, str | None]] = []
            has_group = False
            for item in child:
                item_name = _local(item.tag)
                if item_name == "dependency":
                    dep = (item.get("id", ""), item.get("version"))
                    flat.append(dep)
                    deps.append(("", *dep))
                elif item_name == "group":
                    has_group = True
                    tfm = item.get("targetFramework", "")
                    members = tuple((d.get("id", ""), d.get("version")) for d in item if _local(d.tag) == "dependency")
                    deps.extend((tfm, *dep) for dep in members)
                    groups.append((tfm.strip(), members))
            if flat and not has_group:
                groups.append(("", tuple(flat)))
        elif name == "packageTypes":
            types.extend(pt.get("name", "") for pt in child if _local(pt.tag) == "packageType")
        if name == "license":
            if license_expression is None and child.get("type") == "expression" and child.text:
                license_expression = child.text.strip()
        elif name == "repository":
            repositories.append(child)
    return _Metadata(
        fields=fields,
        package_types=tuple(t for t in types if t),
        dependencies=tuple(deps),
        dependency_groups=tuple(groups),
        license_expression=license_expression or "",
        repositories=tuple(repositories),
    )


def _limit_problems(parts: _Metadata, authors: tuple[str, ...], version: NuGetVersion) -> tuple[str, ...]:
    """nuget.org's upload length limits (NuGetGallery ``PackageHelper.ValidateNuGetPackageMetadata``)."""
    problems: list[str] = []
    fields = parts.fields

    def check(what: str, length: int, limit: int) -> None:
        if length > limit:
            problems.append(f"the nuspec's {what} is {length} characters; the limit is {limit}")

    for name, limit in FIELD_LIMITS.items():
        text = ", ".join(authors) if name == "authors" else fields.get(name)
        if text is not None:
            check(f"<{name}>", len(text), limit)
    check("id plus version", len(fields.get("id", "")) + len(version.full), MAX_ID_VERSION_LENGTH)
    # The length of the dependencies flattened as "id:range:framework" joined with "|", without building the string.
    flat_length = max(len(parts.dependencies) - 1, 0)
    for tfm, dep_id, dep_range in parts.dependencies:
        if len(dep_id) > MAX_DEPENDENCY_ID_LENGTH:
            check(f"dependency id {dep_id[:40]!r}", len(dep_id), MAX_DEPENDENCY_ID_LENGTH)
        range_length = len(dep_range) if dep_range is not None else 0
        if range_length > MAX_DEPENDENCY_RANGE_LENGTH:
            check(f"version range of dependency {dep_id[:40]!r}", range_length, MAX_DEPENDENCY_RANGE_LENGTH)
        flat_length += len(dep_id) + range_length + len(tfm) + 2
    check("<dependencies> (flattened as id:range:framework|...)", flat_length, MAX_DEPENDENCIES_LENGTH)
    check("<packageTypes> (names joined with |)", len("|".join(parts.package_types)), MAX_PACKAGE_TYPES_LENGTH)
    for child in parts.repositories:
        for attr, limit in _REPOSITORY_LIMITS.items():
            check(f"<repository {attr}=...>", len(child.get(attr, "")), limit)
    return tuple(problems)
