"""PackageReference dependency resolution, as NuGet's restore does it, for one target framework.

The rules and where they come from (NuGet.Client ``src/NuGet.Core/NuGet.DependencyResolver.Core``):

* **Lowest applicable version** (``ResolverUtility.FindLibraryMatchAsync``, ``VersionRange.FindBestMatch`` /
  ``IsBetter``): each dependency takes the lowest version on the sources inside its range; a floating range takes
  the highest version matching the float. Prerelease versions are considered only when a bound of the range is a
  prerelease (or the range floats over prereleases). An exact match of the lower bound on one source ends the
  search; otherwise the best of every source's best match, ties going to the earlier source. Already in the
  global-packages folder at exactly the lower bound: used without asking any source.
* **Direct dependency wins / nearest wins** (``RemoteDependencyWalker``: the chained predicate): a dependency is not
  walked when an ancestor, or an ancestor's sibling, already depends on the same id (*eclipsed*); when that nearer
  range's lower bound is below this one's, the nearer one still wins and the walk records a *potential downgrade*,
  which ``GraphOperations.CheckCycleAndNearestWins`` reports as **NU1605** when the nearer node ends up accepted.
  A dependency on an ancestor is a cycle (**NU1108**-like error; NuGet logs NU1108).
* **Cousin dependencies** (``GraphOperations.TryResolveConflicts`` and ``Tracker``): of the nodes left for one id
  in different branches, the highest version wins (each is the lowest of its own range, so this is "the higher
  lower bound"); the losers' subtrees are dropped and the walk repeats until stable. An accepted version outside the
  range of an accepted node's dependency is a **NU1107** conflict (error).
* **NU1608** (``NuGet.Commands/RestoreCommand/Logging/UnexpectedDependencyMessages.cs``): a resolved version above a
  dependency's upper bound (the project's own reference eclipsed the package's range) is a warning; not for an id
  already reported as NU1107 (dotnet logs only the conflict).
* **Nothing fits** (``UnresolvedMessages.cs``): **NU1101** no such id on any source, **NU1102** versions exist but
  none in range (naming the nearest), **NU1103** only prereleases in a stable range; **NU1603** (warning) when the
  lower bound itself was not found and a higher version was taken.
* **Dependency groups** (``NuGetFrameworkUtility.GetNearest`` over ``PackageDependencyGroup``): the group of the
  nearest framework compatible with the project's; none compatible means no dependencies.

Resolution is asynchronous like NuGet's walker: every node's version lookup and ``.nuspec`` fetch run concurrently
through :class:`~nuseal.client.feedclient.FeedClient` (bounded), each ``(id, range)`` looked up once.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nuseal.client.feedclient import FeedClient, SourceClient
from nuseal.client.project import PackageReference
from nuseal.client.settings import NuGetSettings, PackageSource
from nuseal.codes import Level, NuCode
from nuseal.errors import PackageFormatError, RestoreError
from nuseal.package.frameworks import ANY, NuGetFramework, select_dependency_group
from nuseal.package.nuspec import Nuspec
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import FloatBehavior, VersionRange

__all__ = [
    "Dependency",
    "Diagnostic",
    "PackageProvider",
    "ResolvedPackage",
    "TargetGraph",
    "best_match",
    "has_prerelease_bounds",
    "is_better",
    "is_greater_or_equal",
    "pretty_print",
    "resolve",
    "select_group",
]

_PRERELEASE_FLOATS = frozenset(
    {
        FloatBehavior.PRERELEASE,
        FloatBehavior.PRERELEASE_REVISION,
        FloatBehavior.PRERELEASE_PATCH,
        FloatBehavior.PRERELEASE_MINOR,
        FloatBehavior.PRERELEASE_MAJOR,
        FloatBehavior.ABSOLUTE_LATEST,
    }
)


# ---------------------------------------------------------------------------------------------- version picking
def has_prerelease_bounds(vr: VersionRange) -> bool:
    """NuGet's ``VersionRange.HasPrereleaseBounds`` (or a float over prereleases): prereleases may be picked."""
    if vr.is_floating and vr.float_range is not None:
        return vr.float_range.behavior in _PRERELEASE_FLOATS
    return bool(
        (vr.min_version is not None and vr.min_version.is_prerelease)
        or (vr.max_version is not None and vr.max_version.is_prerelease)
    )


def is_better(vr: VersionRange, current: NuGetVersion | None, considering: NuGetVersion | None) -> bool:
    """NuGet's ``VersionRange.IsBetter`` (NuGet.Versioning 6.x): whether ``considering`` is a better pick for
    ``vr`` than ``current``."""
    if considering is None or not vr.satisfies(considering):
        return False
    if considering.is_prerelease and not has_prerelease_bounds(vr):
        return False
    if current is None:
        return True
    if current == considering:
        return False
    if vr.is_floating and vr.float_range is not None:
        fr = vr.float_range
        cur_in, con_in = fr.satisfies(current), fr.satisfies(considering)
        if cur_in and not con_in:
            return False
        if con_in and not cur_in:
            return True
        if cur_in and con_in:
            return current < considering
        floor = fr.min_version
        cur_low = floor is not None and current < floor
        con_low = floor is not None and considering < floor
        if cur_low != con_low:
            return cur_low
        return current > considering if not cur_low else current < considering
    return current > considering


def best_match(vr: VersionRange, versions: Iterable[NuGetVersion]) -> NuGetVersion | None:
    """NuGet's ``VersionRange.FindBestMatch``: the version restore picks from ``versions`` for ``vr``."""
    best: NuGetVersion | None = None
    for version in versions:
        if is_better(vr, best, version):
            best = version
    return best


def is_greater_or_equal(near: VersionRange, far: VersionRange) -> bool:
    """``RemoteDependencyWalker.IsGreaterThanOrEqualTo``: whether the nearer range's lower bound is not below the
    farther one's (floats compared by their minimum version, then by their release prefix)."""
    if near.min_version is None:
        return True
    if far.min_version is None:
        return False
    if near.is_floating or far.is_floating:
        if near.is_floating and near.float_range and near.float_range.behavior is FloatBehavior.MAJOR:
            return True
        if far.is_floating and far.float_range and far.float_range.behavior is FloatBehavior.MAJOR:
            return False
        n, f = _float_floor(near), _float_floor(far)
        if n[0] != f[0]:
            return n[0] > f[0]
        if not n[1]:
            return True
        if not f[1]:
            return False
        length = min(len(n[1]), len(f[1]))
        return n[1][:length].lower() >= f[1][:length].lower()
    return near.min_version >= far.min_version


def _float_floor(vr: VersionRange) -> tuple[tuple[int, int, int, int], str]:
    m = vr.min_version
    assert m is not None
    core = (m.major, m.minor, m.patch, m.revision)
    if vr.is_floating and vr.float_range is not None:
        return core, vr.float_range.release_prefix or ""
    return core, ".".join(m.release_labels)


# ---------------------------------------------------------------------------------------------- frameworks
#: The .NET SDK's ``AssetTargetFallback`` for .NETCoreApp 3.0 and later (``Microsoft.NET.Sdk.BeforeCommon.targets``).
ASSET_TARGET_FALLBACK = ("net461", "net462", "net47", "net471", "net472", "net48")


def asset_target_fallback(framework: NuGetFramework) -> tuple[NuGetFramework, ...]:
    """The SDK's AssetTargetFallback list for a project framework (empty but for .NETCoreApp 3.0+)."""
    if framework.framework == ".NETCoreApp" and framework.version >= (3, 0, 0, 0):
        return tuple(NuGetFramework.parse(f) for f in ASSET_TARGET_FALLBACK)
    return ()


def select_group(framework: str, groups: Iterable[str]) -> str | None:
    """The dependency group restore takes for ``framework`` (a TFM as written in the project) among a package's
    group frameworks (``""`` is the any-framework group): :func:`nuseal.package.frameworks.select_dependency_group`
    with the SDK's AssetTargetFallback. ``None`` when no group applies."""
    project = NuGetFramework.parse(framework)
    return select_dependency_group(
        project,
        list(groups),
        asset_target_fallback=asset_target_fallback(project),
        framework_of=lambda g: NuGetFramework.parse(g) if g.strip() else ANY,
    )


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class Dependency:
    """A package's dependency (from the group picked for the target framework)."""

    id: str
    range: VersionRange


@dataclass(frozen=True)
class ResolvedPackage:
    """One package of the resolved graph: identity as the nuspec spells it, where it comes from (``source``; for a
    package found in the global-packages folder, that folder), its dependencies for the framework, and
    ``requested`` (the project's range) for direct references."""

    id: str
    version: NuGetVersion
    source: PackageSource
    dependencies: tuple[Dependency, ...]
    requested: VersionRange | None = None
    from_global_folder: bool = False
    is_project: bool = False

    @property
    def key(self) -> str:
        return f"{self.id.lower()}/{self.version.normalized.lower()}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """An NU message: ``level`` error (restore fails) or warning."""

    code: NuCode
    level: Level
    message: str
    package: str | None = None

    def __str__(self) -> str:
        return f"{self.level.value} {self.code.value}: {self.message}"


@dataclass
class TargetGraph:
    """The resolved graph for one target framework: ``packages`` (accepted, one per id, in a stable order:
    direct references first then by id), ``diagnostics`` (errors and warnings)."""

    framework: str
    packages: list[ResolvedPackage] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level is Level.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level is Level.WARNING]


# ---------------------------------------------------------------------------------------------- provider
@dataclass(frozen=True)
class _Item:
    id: str
    version: NuGetVersion
    source: PackageSource
    client: SourceClient | None
    nuspec: _Manifest
    from_global_folder: bool = False
    project_dependencies: tuple[Dependency, ...] | None = None  # set for a referenced project


class PackageProvider:
    """Finds versions and dependency information on the configured sources (with ``packageSourceMapping``), and in
    the global-packages folder first for exact lower bounds. Every lookup is done once per restore."""

    def __init__(self, feed: FeedClient, settings: NuGetSettings, *, global_folder: Path | None = None) -> None:
        self.feed = feed
        self.settings = settings
        self.global_folder = global_folder
        self._versions: dict[tuple[str, str], asyncio.Task[list[NuGetVersion]]] = {}
        self._items: dict[tuple[str, str], asyncio.Task[_Item | None]] = {}
        self._nuspecs: dict[tuple[str, str, str], asyncio.Task[_Manifest | None]] = {}
        self.projects: dict[str, _Item] = {}

    def sources_for(self, package_id: str) -> tuple[PackageSource, ...]:
        return self.settings.sources_for(package_id)

    async def versions(self, source: PackageSource, package_id: str) -> list[NuGetVersion]:
        key = (source.name.lower(), package_id.lower())
        task = self._versions.get(key)
        if task is None:
            task = asyncio.ensure_future(self.feed.client(source).versions(package_id))
            self._versions[key] = task
        return await task

    async def nuspec(self, source: PackageSource, package_id: str, version: NuGetVersion) -> _Manifest | None:
        key = (source.name.lower(), package_id.lower(), version.normalized.lower())
        task = self._nuspecs.get(key)
        if task is None:
            task = asyncio.ensure_future(self._nuspec(source, package_id, version))
            self._nuspecs[key] = task
        return await task

    async def _nuspec(self, source: PackageSource, package_id: str, version: NuGetVersion) -> _Manifest | None:
        data = await self.feed.client(source).nuspec(package_id, version)
        if data is None:
            return None
        return _parse_nuspec(data, f"{package_id} {version}", source.url)

    def _global_item(self, package_id: str, version: NuGetVersion) -> _Item | None:
        if self.global_folder is None:
            return None
        folder = self.global_folder / package_id.lower() / version.normalized.lower()
        nuspec_path = folder / f"{package_id.lower()}.nuspec"
        if not (folder / ".nupkg.metadata").is_file() or not nuspec_path.is_file():
            return None
        try:
            nuspec = _parse_nuspec(nuspec_path.read_bytes(), f"{package_id} {version}", str(folder))
        except (OSError, RestoreError):
            return None
        local = PackageSource(name=str(self.global_folder), url=str(self.global_folder))
        return _Item(nuspec.id, nuspec.version, local, None, nuspec, from_global_folder=True)

    async def find(self, package_id: str, vr: VersionRange) -> _Item | None:
        """The package restore takes for ``package_id`` in ``vr`` (see the module docstring), or ``None``."""
        key = (package_id.lower(), vr.normalized)
        task = self._items.get(key)
        if task is None:
            task = asyncio.ensure_future(self._find(package_id, vr))
            self._items[key] = task
        return await task

    async def exact(self, package_id: str, version: NuGetVersion) -> _Item | None:
        """The package ``package_id`` ``version`` exactly (a lock file's pick), or ``None``."""
        return await self.find(package_id, VersionRange(version, True, version, True, None, f"[{version}]"))

    def add_project(self, name: str, path: Path, dependencies: Sequence[Dependency]) -> None:
        """Make a referenced project resolvable by name (``ProjectReference``; NuGet's project provider is asked
        before any source, ``ResolverUtility.FindProjectMatchAsync``): version 1.0.0, ``dependencies`` the package
        references that flow from it (``PrivateAssets`` not ``all``) and its own project references."""
        version = NuGetVersion.parse("1.0.0")
        manifest = _Manifest(name, version, ())
        source = PackageSource(name=name, url=str(path))
        self.projects[name.lower()] = _Item(name, version, source, None, manifest, False, tuple(dependencies))

    async def _find(self, package_id: str, vr: VersionRange) -> _Item | None:
        project = self.projects.get(package_id.lower())
        if project is not None:
            return project
        if not vr.is_floating and vr.min_version is not None and vr.is_min_inclusive:
            local = await asyncio.to_thread(self._global_item, package_id, vr.min_version)
            if local is not None:
                return local
        sources = self.sources_for(package_id)
        lists = await asyncio.gather(*(self.versions(s, package_id) for s in sources))
        best: tuple[NuGetVersion, PackageSource] | None = None
        for source, versions in zip(sources, lists, strict=True):
            pick = best_match(vr, versions)
            if pick is None:
                continue
            if is_better(vr, best[0] if best else None, pick):
                best = (pick, source)
        if best is None:
            return None
        version, source = best
        nuspec = await self.nuspec(source, package_id, version)
        if nuspec is None:
            raise RestoreError(
                f"The feed '{source.url}' lists package '{package_id} {version}' but its .nuspec cannot be found",
                code=NuCode.NU1301,
                package=f"{package_id} {version}",
                source=source.url,
            )
        return _Item(nuspec.id, version, source, self.feed.client(source), nuspec)

    async def all_versions(self, package_id: str) -> list[tuple[NuGetVersion, PackageSource]]:
        out: list[tuple[NuGetVersion, PackageSource]] = []
        for source in self.sources_for(package_id):
            out.extend((v, source) for v in await self.versions(source, package_id))
        return out


@dataclass(frozen=True)
class _Manifest:
    """What resolution needs of a nuspec: identity and the dependency groups, empty groups kept (an empty group
    for the nearest framework means "no dependencies", not "fall back to another group")."""

    id: str
    version: NuGetVersion
    groups: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...]


def _parse_nuspec(data: bytes, label: str, where: str) -> _Manifest:
    """The id, version and dependency groups (:attr:`Nuspec.dependency_groups`: NC
    ``NuspecReader.GetDependencyGroups``) of a downloaded ``.nuspec``, ids trimmed."""
    try:
        nuspec = Nuspec.parse(data, enforce_limits=False)
    except PackageFormatError as exc:
        raise RestoreError(
            f"the .nuspec of {label} from '{where}' cannot be read: {exc.message}", package=label, source=where
        ) from None
    groups = tuple(
        (tfm, tuple((dep_id.strip(), dep_range) for dep_id, dep_range in deps))
        for tfm, deps in nuspec.dependency_groups
    )
    return _Manifest(nuspec.id, nuspec.version, groups)


def _dependencies(item: _Item, framework: str) -> tuple[Dependency, ...]:
    if item.project_dependencies is not None:
        return item.project_dependencies
    groups: dict[str, tuple[tuple[str, str | None], ...]] = {}
    for tfm, deps in item.nuspec.groups:
        groups.setdefault(tfm, deps)
    if not groups:
        return ()
    chosen = select_group(framework, groups)
    if chosen is None:
        return ()
    out: list[Dependency] = []
    for dep_id, text in groups[chosen]:
        if not dep_id:
            continue
        vr = VersionRange.try_parse(text or "") if text and text.strip() else None
        if vr is None:
            if text and text.strip():
                raise RestoreError(
                    f"{item.id} {item.version} depends on {dep_id} with an invalid version range {text!r}",
                    package=f"{item.id} {item.version}",
                    source=item.source.url,
                )
            vr = VersionRange(None, False, None, False, None, "")
        out.append(Dependency(dep_id, vr))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- the graph
class _Disposition(enum.Enum):
    ACCEPTABLE = "acceptable"
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    POTENTIALLY_DOWNGRADED = "potentially-downgraded"
    CYCLE = "cycle"


@dataclass(eq=False)
class _Node:
    id: str
    range: VersionRange
    item: _Item | None
    outer: _Node | None
    dependencies: tuple[Dependency, ...] = ()
    inner: list[_Node] = field(default_factory=list)
    disposition: _Disposition = _Disposition.ACCEPTABLE

    def path(self) -> str:
        parts: list[str] = []
        node: _Node | None = self
        while node is not None and node.outer is not None:
            parts.append(
                f"{node.id} {pretty_print(node.range)}" if node.item is None else f"{node.id} {node.item.version}"
            )
            node = node.outer
        return " -> ".join(reversed(parts))

    def range_path(self) -> str:
        """The path as NuGet logs it in NU1605 and NU1107 (``DependencyNodeExtensions``/``GetPathWithLastRange``):
        ancestors with their resolved versions, this node with its requested range."""
        outer = self.outer.path() if self.outer is not None else ""
        last = f"{self.id} {pretty_print(self.range)}"
        return f"{outer} -> {last}" if outer else last


def pretty_print(vr: VersionRange) -> str:
    """NuGet's ``VersionRange.PrettyPrint`` (``(>= 1.0.0)``, ``(>= 1.0.0 && < 2.0.0)``, ``(= 1.0.0)``; a float shows
    its minimum version)."""
    if vr.min_version is not None and vr.max_version is not None and vr.min_version == vr.max_version:
        return f"(= {vr.min_version})"
    parts = []
    if vr.min_version is not None:
        parts.append(f">= {vr.min_version}" if vr.is_min_inclusive else f"> {vr.min_version}")
    if vr.max_version is not None:
        parts.append(f"<= {vr.max_version}" if vr.is_max_inclusive else f"< {vr.max_version}")
    return f"({' && '.join(parts)})" if parts else ""


_Predicate = Callable[[str, VersionRange], tuple[str, Dependency | None]]


def _root_predicate(name: str, vr: VersionRange) -> tuple[str, Dependency | None]:
    return "acceptable", None


def _chain(predicate: _Predicate, node: _Node, dependency: Dependency) -> _Predicate:
    """``RemoteDependencyWalker.ChainPredicate``: cycle to ``node``, eclipsed by ``node``'s other dependencies."""
    node_name = (node.item.id if node.item else node.id).lower()

    def check(name: str, vr: VersionRange) -> tuple[str, Dependency | None]:
        if name.lower() == node_name:
            return "cycle", None
        for d in node.dependencies:
            if d is not dependency and d.id.lower() == name.lower():
                if not is_greater_or_equal(d.range, vr):
                    return "downgraded", d
                return "eclipsed", d
        return predicate(name, vr)

    return check


async def _walk(
    provider: PackageProvider,
    framework: str,
    name: str,
    vr: VersionRange,
    outer: _Node | None,
    predicate: _Predicate,
) -> _Node:
    item = await provider.find(name, vr)
    node = _Node(name, vr, item, outer)
    if item is None:
        return node
    node.dependencies = _dependencies(item, framework)
    await _expand(provider, framework, node, predicate)
    return node


async def _expand(provider: PackageProvider, framework: str, node: _Node, predicate: _Predicate) -> None:
    """Children in dependency order, as NuGet adds them (cycle and downgrade markers in place)."""
    slots: list[_Node | None] = []
    tasks = []
    for dep in node.dependencies:
        result, _ = predicate(dep.id, dep.range)
        if result == "acceptable":
            slots.append(None)
            tasks.append(_walk(provider, framework, dep.id, dep.range, node, _chain(predicate, node, dep)))
        elif result in ("downgraded", "cycle"):
            marker = _Node(dep.id, dep.range, None, node)
            marker.disposition = _Disposition.CYCLE if result == "cycle" else _Disposition.POTENTIALLY_DOWNGRADED
            slots.append(marker)
    walked = iter(await asyncio.gather(*tasks))
    node.inner = [slot if slot is not None else next(walked) for slot in slots]


def _bfs(root: _Node) -> Iterable[_Node]:
    queue = deque([root])
    while queue:
        node = queue.popleft()
        yield node
        queue.extend(list(node.inner))


def _check_cycles_and_downgrades(root: _Node) -> tuple[list[tuple[_Node, _Node]], list[_Node]]:
    downgrades: dict[int, tuple[_Node, _Node]] = {}
    cycles: list[_Node] = []
    for node in list(_bfs(root)):
        if node.disposition is _Disposition.CYCLE:
            cycles.append(node)
            if node.outer is not None:
                node.outer.inner.remove(node)
            continue
        if node.disposition is not _Disposition.POTENTIALLY_DOWNGRADED:
            continue
        ancestor = node.outer
        while ancestor is not None:
            for side in ancestor.inner:
                if side is not node and side.id.lower() == node.id.lower():
                    if not is_greater_or_equal(side.range, node.range):
                        downgrades[id(node)] = (node, side)
                    else:
                        downgrades.pop(id(node), None)
            ancestor = ancestor.outer
        if node.outer is not None:
            node.outer.inner.remove(node)
    return list(downgrades.values()), cycles


def _track(root: _Node) -> dict[str, set[NuGetVersion]]:
    """First pass of ``TryResolveConflicts``: reject everything under a rejected node, track the rest per id."""
    tracked: dict[str, set[NuGetVersion]] = {}
    queue: deque[tuple[_Node, bool]] = deque([(root, True)])
    while queue:
        node, ok = queue.popleft()
        if not ok or node.disposition is _Disposition.REJECTED:
            node.disposition = _Disposition.REJECTED
            ok = False
        elif node.item is not None:
            tracked.setdefault(node.id.lower(), set()).add(node.item.version)
        queue.extend((child, ok) for child in node.inner)
    return tracked


def _ambiguous(root: _Node, tracked: dict[str, set[NuGetVersion]]) -> set[str]:
    """Second pass: ids found below a disputed node (one with several versions tracked) are ambiguous."""
    ambiguous: set[str] = set()
    queue: deque[tuple[_Node, str]] = deque([(root, "walking")])
    while queue:
        node, state = queue.popleft()
        if node.disposition is _Disposition.REJECTED:
            state = "rejected"
        elif state == "walking" and len(tracked.get(node.id.lower(), ())) > 1:
            state = "ambiguous"
        elif state == "ambiguous":
            ambiguous.add(node.id.lower())
        queue.extend((child, state) for child in node.inner)
    return ambiguous


def _resolve_conflicts(root: _Node) -> tuple[dict[str, _Node], list[tuple[_Node, _Node]]]:
    """``GraphOperations.TryResolveConflicts``: repeat until no node is left undecided; then the version conflicts
    (an accepted node's dependency whose range the accepted version of that id does not satisfy)."""
    accepted: dict[str, _Node] = {}
    for _ in range(1000):
        tracked = _track(root)
        ambiguous = _ambiguous(root, tracked)
        queue: deque[tuple[_Node, bool]] = deque([(root, True)])
        while queue:
            node, ok = queue.popleft()
            keep = False
            lowered = node.id.lower()
            if ok and node.disposition is not _Disposition.REJECTED and lowered not in ambiguous:
                if node.disposition is _Disposition.ACCEPTABLE:
                    versions = tracked.get(lowered, set())
                    if node.item is None or all(node.item.version >= v for v in versions):
                        node.disposition = _Disposition.ACCEPTED
                        accepted[lowered] = node
                    else:
                        node.disposition = _Disposition.REJECTED
                keep = node.disposition is _Disposition.ACCEPTED
            queue.extend((child, keep) for child in node.inner)
        if not any(n.disposition is _Disposition.ACCEPTABLE for n in _bfs(root)):
            break
    conflicts: list[tuple[_Node, _Node]] = []
    for node in _bfs(root):
        if node.disposition is not _Disposition.ACCEPTED:
            continue
        for child in node.inner:
            chosen = accepted.get(child.id.lower())
            if (
                chosen is not None
                and chosen is not child
                and chosen.item is not None
                and not child.range.satisfies(chosen.item.version)
            ):
                conflicts.append((chosen, child))
    return accepted, conflicts


async def _unresolved(provider: PackageProvider, node: _Node) -> Diagnostic:
    """NU1101/NU1103/NU1102 with NuGet's wording (``UnresolvedMessages.cs``): the source list for NU1101, and for
    NU1102/NU1103 one ``\n  - Found N version(s) in SOURCE [ Nearest version: V ]`` line per source, the sources
    with most versions first."""
    label = f"{node.id} {pretty_print(node.range)}"
    sources = provider.sources_for(node.id)
    names = ", ".join(s.name for s in sources) or "(no source: check packageSourceMapping)"
    available = await provider.all_versions(node.id)
    if not available:
        return Diagnostic(
            NuCode.NU1101,
            Level.ERROR,
            f"Unable to find package {node.id}. No packages exist with this id in source(s): {names}",
            node.id,
        )
    floor = node.range.min_version
    per_source: list[tuple[int, str, str]] = []
    for source in sources:
        ordered = sorted({v for v, s in available if s is source})
        if not ordered:
            per_source.append((0, source.name, f"Found 0 version(s) in {source.name}"))
            continue
        nearest = next((v for v in ordered if floor is None or v >= floor), ordered[-1])
        line = f"Found {len(ordered)} version(s) in {source.name} [ Nearest version: {nearest} ]"
        per_source.append((len(ordered), source.name, line))
    per_source.sort(key=lambda e: (-e[0], e[1].lower()))
    info = "".join(f"\n  - {line}" for _n, _name, line in per_source)
    in_range = [v for v, _ in available if node.range.satisfies(v)]
    if in_range and all(v.is_prerelease for v in in_range):
        return Diagnostic(
            NuCode.NU1103,
            Level.ERROR,
            f"Unable to find a stable package {node.id} with version {pretty_print(node.range)}{info}",
            label,
        )
    return Diagnostic(
        NuCode.NU1102,
        Level.ERROR,
        f"Unable to find package {node.id} with version {pretty_print(node.range)}{info}",
        label,
    )


async def resolve(
    references: Sequence[PackageReference],
    framework: str,
    provider: PackageProvider,
    *,
    project_name: str = "project",
    project_references: Sequence[str] = (),
) -> TargetGraph:
    """Resolve ``references`` (the project's direct ``PackageReference`` items) for ``framework``.

    ``project_references`` are the names of referenced projects registered with
    :meth:`PackageProvider.add_project`. Returns the graph with its diagnostics; the caller fails the restore on any
    error diagnostic (NU1101, NU1102, NU1103, NU1107, NU1605, NU1108 as a cycle). NU1605 is an error as the .NET SDK
    makes it one (``WarningsAsErrors`` includes NU1605 in ``Microsoft.NET.Sdk``).

    Raises:
        RestoreError: a source could not be read (NU1301), or a package's nuspec is unreadable.
    """
    root = _Node(project_name, VersionRange(None, False, None, False, None, ""), None, None)
    root.dependencies = tuple(Dependency(r.id, r.range) for r in references) + tuple(
        Dependency(name, VersionRange.parse("1.0.0")) for name in project_references
    )
    await _expand(provider, framework, root, _root_predicate)
    graph = TargetGraph(framework)
    downgrades, cycles = _check_cycles_and_downgrades(root)
    accepted, conflicts = _resolve_conflicts(root)
    for node in cycles:
        graph.diagnostics.append(
            Diagnostic(NuCode.NU1108, Level.ERROR, f"Cycle detected: {project_name} -> {node.path()}", node.id)
        )
    for node in _bfs(root):
        if node is not root and node.item is None and node.disposition is _Disposition.ACCEPTED:
            graph.diagnostics.append(await _unresolved(provider, node))
    for chosen, child in conflicts:
        assert chosen.item is not None
        graph.diagnostics.append(
            Diagnostic(
                NuCode.NU1107,
                Level.ERROR,
                f"Version conflict detected for {child.id}. Install/reference {child.id} {chosen.item.version} "
                f"directly to project {project_name} to resolve this issue. \n {project_name} -> "
                f"{chosen.range_path()} \n {project_name} -> {child.range_path()}.",
                child.id,
            )
        )
    for far, near in downgrades:
        if near.disposition is not _Disposition.ACCEPTED or near.item is None:
            continue
        graph.diagnostics.append(
            Diagnostic(
                NuCode.NU1605,
                Level.ERROR,
                f"Detected package downgrade: {far.id} from {far.range.min_version} to {near.item.version}. "
                f"Reference the package directly from the project to select a different version. \n {project_name} -> "
                f"{far.range_path()} \n {project_name} -> {near.range_path()}",
                far.id,
            )
        )
    direct = {r.id.lower(): r for r in references}
    packages: list[ResolvedPackage] = []
    for lower, node in accepted.items():
        if node is root or node.item is None:
            continue
        item = node.item
        ref = direct.get(lower) if node.outer is root else None
        packages.append(
            ResolvedPackage(
                id=item.id,
                version=item.version,
                source=item.source,
                dependencies=node.dependencies,
                requested=ref.range if ref else None,
                from_global_folder=item.from_global_folder,
                is_project=item.project_dependencies is not None,
            )
        )
        vr = node.range
        exact = vr.min_version is not None and vr.is_min_inclusive and item.version == vr.min_version
        if item.project_dependencies is None and not vr.is_floating and vr.min_version is not None and not exact:
            parent = node.outer
            who = project_name
            if parent is not None and parent is not root and parent.item is not None:
                who = f"{parent.id} {parent.item.version}"
            graph.diagnostics.append(
                Diagnostic(
                    NuCode.NU1603,
                    Level.WARNING,
                    f"{who} depends on {node.id} {pretty_print(vr)} but {node.id} {vr.min_version} was not found. "
                    f"An approximate best match of {node.id} {item.version} was resolved.",
                    f"{item.id} {item.version}",
                )
            )
    resolved = {p.id.lower(): p.version for p in packages}
    conflicted = {child.id.lower() for _chosen, child in conflicts}
    for pkg in packages:
        for dep in pkg.dependencies:
            got = resolved.get(dep.id.lower())
            if got is None or dep.range.max_version is None or dep.id.lower() in conflicted:
                continue
            above = got > dep.range.max_version or (got == dep.range.max_version and not dep.range.is_max_inclusive)
            if above:
                graph.diagnostics.append(
                    Diagnostic(
                        NuCode.NU1608,
                        Level.WARNING,
                        f"Detected package version outside of dependency constraint: {pkg.id} {pkg.version} requires "
                        f"{dep.id} {pretty_print(dep.range)} but version {dep.id} {got} was resolved.",
                        f"{pkg.id} {pkg.version}",
                    )
                )
    packages.sort(key=lambda p: (p.requested is None, p.id.lower()))
    graph.packages = packages
    graph.diagnostics = list(dict.fromkeys(graph.diagnostics))  # one message per distinct problem, as NuGet logs
    return graph
