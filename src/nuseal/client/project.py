"""Restore inputs without MSBuild: SDK-style project files with ``PackageReference``, Central Package Management,
``packages.config``, ``packages.lock.json`` and ``.sln`` files.

What is evaluated, in MSBuild's order (``Microsoft.Common.props`` imports ``Directory.Build.props`` then
``Directory.Packages.props``, each the nearest one found walking up from the project folder; then the project
body): ``<PropertyGroup>`` properties, ``$(Name)`` references (earlier properties, the reserved ``MSBuildProject*``
/ ``MSBuildThisFile*`` properties, environment variables, the global ``TargetFramework`` of each inner build),
``<Import Project="...">`` of a file that exists, ``Condition`` attributes made of ``'...' == '...'`` /
``'...' != '...'`` comparisons joined by ``and`` / ``or`` (parentheses allowed), and the items
``PackageReference`` (``Include``/``Update``/``Remove``, ``Version`` / ``VersionOverride`` as attribute or child),
``PackageVersion``, ``GlobalPackageReference`` and ``ProjectReference`` (with ``PrivateAssets``: a reference
with ``all`` does not flow to the projects that reference this one). Multi-targeting evaluates the project once per
entry of ``TargetFrameworks`` with ``TargetFramework`` set, as MSBuild's inner builds do.

What is not (property functions ``$([...])``, item transforms ``@(...)``, ``%(...)`` metadata, other condition
forms): a :class:`~nuseal.errors.UsageError` names the file, the element and the text, but only when the value
matters for restore (a property used by a package reference or a target framework, a condition on an element that
holds them); elsewhere it is ignored as restore ignores it.

Implicit references: the .NET SDK adds ``NETStandard.Library`` (``[2.0.3, )`` for netstandard2.x, ``[1.6.1, )``
for netstandard1.x) unless ``DisableImplicitFrameworkReferences`` is true (``Microsoft.NET.Sdk.DefaultItems.targets``
``NETStandardImplicitPackageVersion``); nuseal adds the same, so its lock file matches the SDK's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from nuseal.errors import PackageFormatError, UsageError
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import VersionRange

__all__ = [
    "PROJECT_EXTENSIONS",
    "PackageReference",
    "Project",
    "ProjectTarget",
    "RestoreInput",
    "find_inputs",
    "load_packages_config",
    "load_project",
    "solution_projects",
]

PROJECT_EXTENSIONS = (".csproj", ".fsproj", ".vbproj")
MAX_PROJECT_BYTES = 4 << 20
#: Properties whose value decides what restore does; an unevaluable one of these is an error.
_RESTORE_PROPERTIES = frozenset(
    p.lower()
    for p in (
        "TargetFramework",
        "TargetFrameworks",
        "ManagePackageVersionsCentrally",
        "RestorePackagesWithLockFile",
        "NuGetLockFilePath",
        "RestoreLockedMode",
        "DisableImplicitFrameworkReferences",
        "CentralPackageVersionOverrideEnabled",
        "CentralPackageTransitivePinningEnabled",
    )
)
_RESTORE_ITEMS = frozenset({"PackageReference", "PackageVersion", "GlobalPackageReference", "ProjectReference"})
_PROP_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True, slots=True)
class PackageReference:
    """A ``PackageReference`` as restore sees it: ``range`` is the requested version range (NuGet's
    ``VersionRange``); ``text`` the version as written; ``implicit`` for SDK-added references."""

    id: str
    range: VersionRange
    text: str
    implicit: bool = False
    private_assets: str = ""

    @property
    def flows(self) -> bool:
        """Whether the reference flows to projects that reference this one (``PrivateAssets`` is not ``all``)."""
        return "all" not in [p.strip().lower() for p in self.private_assets.split(";")]


@dataclass(frozen=True, slots=True)
class ProjectTarget:
    """One target framework of a project (``framework`` as written in ``TargetFramework(s)``)."""

    framework: str
    references: tuple[PackageReference, ...]
    projects: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Project:
    """An evaluated project. ``central_versions`` is CPM's ``PackageVersion`` list (id -> text) when enabled."""

    path: Path
    name: str
    targets: tuple[ProjectTarget, ...]
    central: bool = False
    central_versions: Mapping[str, str] = field(default_factory=dict)
    use_lock_file: bool = False
    locked_mode: bool = False
    lock_file: Path | None = None

    @property
    def lock_file_path(self) -> Path:
        """``NuGetLockFilePath`` or ``packages.lock.json`` beside the project."""
        return self.lock_file or self.path.parent / "packages.lock.json"


@dataclass(frozen=True)
class RestoreInput:
    """What a path given to ``nuseal restore`` holds: projects, or one packages.config, or a bare lock file."""

    projects: tuple[Project, ...] = ()
    packages_config: Path | None = None
    lock_file: Path | None = None


class _Unevaluable(str):
    """A property value nuseal could not evaluate; keeps the reason for the error if the value is needed."""

    reason: str

    def __new__(cls, text: str, reason: str) -> _Unevaluable:
        obj = super().__new__(cls, text)
        obj.reason = reason
        return obj


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


def _parse_xml(path: Path) -> Element:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PROJECT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_PROJECT_BYTES:
        raise UsageError(f"{path} is larger than {MAX_PROJECT_BYTES} bytes")
    try:
        return fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise UsageError(f"{path} is not valid XML: {exc}") from exc
    except (LookupError, ValueError) as exc:
        raise UsageError(f"{path} declares an encoding that cannot be read: {exc}") from exc


def _find_above(start: Path, name: str) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


@dataclass
class _Item:
    id: str
    meta: dict[str, str]
    where: str


class _Evaluator:
    """One MSBuild-like evaluation pass (properties, then items, in document order per file)."""

    def __init__(self, project: Path, global_props: Mapping[str, str], environ: Mapping[str, str]) -> None:
        self.project = project
        self.props: dict[str, str] = {k.lower(): v for k, v in environ.items()}
        for key, value in {
            "MSBuildProjectDirectory": str(project.parent),
            "MSBuildProjectFullPath": str(project),
            "MSBuildProjectName": project.stem,
            "MSBuildProjectFile": project.name,
            "MSBuildProjectExtension": project.suffix,
        }.items():
            self.props[key.lower()] = value
        self.globals = {k.lower(): v for k, v in global_props.items()}
        self.props.update(self.globals)
        self.items: dict[str, list[_Item]] = {t.lower(): [] for t in _RESTORE_ITEMS}
        self.file = project
        self.seen: set[Path] = set()

    # ------------------------------------------------------------------ expansion
    def expand(self, text: str, where: str, *, needed: bool) -> str:
        if "$([" in text or "@(" in text or "%(" in text:
            reason = f"{where}: cannot evaluate {text.strip()!r} without MSBuild (property functions, item lists)"
            if needed:
                raise UsageError(reason)
            return _Unevaluable(text, reason)
        unevaluable: list[str] = []

        def sub(m: re.Match[str]) -> str:
            value = self.props.get(m.group(1).lower(), "")
            if isinstance(value, _Unevaluable):
                unevaluable.append(value.reason)
            return str(value)

        out = _PROP_REF.sub(sub, text)
        if unevaluable:
            if needed:
                raise UsageError(unevaluable[0])
            return _Unevaluable(out, unevaluable[0])
        return out

    def condition(self, element: Element, where: str, *, needed: bool) -> bool:
        text = element.get("Condition")
        if text is None or not text.strip():
            return True
        try:
            expanded = self.expand(text, where, needed=True)
            return _evaluate_condition(expanded)
        except UsageError:
            if needed:
                raise UsageError(
                    f"{where}: cannot evaluate the condition {text.strip()!r} without MSBuild "
                    "(only '...' == '...' and '...' != '...' joined by and/or)"
                ) from None
            return False

    # ------------------------------------------------------------------ files
    def run_file(self, path: Path) -> None:
        resolved = path.resolve()
        if resolved in self.seen:
            return
        self.seen.add(resolved)
        root = _parse_xml(path)
        if _local(root.tag) != "Project":
            raise UsageError(f"{path}: the root element must be <Project>, not <{_local(root.tag)}>")
        previous = self.file
        self.file = path
        self.props["msbuildthisfiledirectory"] = str(path.parent) + os.sep
        self.props["msbuildthisfile"] = path.name
        self.props["msbuildthisfilefullpath"] = str(path)
        try:
            self._run_children(root)
        finally:
            self.file = previous

    def _relevant(self, element: Element) -> bool:
        for node in element.iter():
            tag = _local(node.tag)
            if tag in _RESTORE_ITEMS or tag.lower() in _RESTORE_PROPERTIES or tag == "Import":
                return True
        return False

    def _run_children(self, root: Element) -> None:
        for element in root:
            tag = _local(element.tag)
            where = f"{self.file.name}: <{tag}>"
            if tag in ("PropertyGroup", "ItemGroup", "Import", "ImportGroup", "Choose") and not self.condition(
                element, where, needed=self._relevant(element)
            ):
                continue
            if tag == "PropertyGroup":
                for prop in element:
                    self._property(prop)
            elif tag == "ItemGroup":
                for item in element:
                    self._item(item)
            elif tag == "Import":
                self._import(element, where)
            elif tag == "ImportGroup":
                for child in element:
                    if _local(child.tag) == "Import" and self.condition(child, where, needed=True):
                        self._import(child, where)
            elif tag == "Choose":
                self._choose(element, where)

    def _choose(self, element: Element, where: str) -> None:
        for branch in element:
            btag = _local(branch.tag)
            if btag == "When" and self.condition(branch, f"{where} <When>", needed=self._relevant(branch)):
                self._run_children(branch)
                return
            if btag == "Otherwise":
                self._run_children(branch)
                return

    def _import(self, element: Element, where: str) -> None:
        project = element.get("Project") or ""
        if element.get("Sdk") or not project:
            return
        text = self.expand(project, where, needed=False)
        if isinstance(text, _Unevaluable) or "*" in text:
            raise UsageError(f"{where}: cannot evaluate the import {project!r} without MSBuild")
        path = Path(text.replace("\\", "/"))
        path = path if path.is_absolute() else self.file.parent / path
        if path.is_file():
            self.run_file(path)

    def _property(self, prop: Element) -> None:
        name = _local(prop.tag)
        lowered = name.lower()
        where = f"{self.file.name}: <{name}>"
        needed = lowered in _RESTORE_PROPERTIES
        if not self.condition(prop, where, needed=needed):
            return
        if lowered in self.globals:  # global properties cannot be overridden
            return
        self.props[lowered] = self.expand(prop.text or "", where, needed=needed).strip()

    def _item(self, item: Element) -> None:
        tag = _local(item.tag)
        if tag not in _RESTORE_ITEMS:
            return
        where = f"{self.file.name}: <{tag} {' '.join(f'{k}={v!r}' for k, v in item.attrib.items())}>"
        if not self.condition(item, where, needed=True):
            return
        store = self.items[tag.lower()]
        meta: dict[str, str] = {}
        for key, value in item.attrib.items():
            if key not in ("Include", "Update", "Remove", "Condition", "Exclude"):
                meta[key.lower()] = self.expand(value, where, needed=True).strip()
        for child in item:
            if self.condition(child, where, needed=True):
                meta[_local(child.tag).lower()] = self.expand(child.text or "", where, needed=True).strip()
        for attr in ("Include", "Update", "Remove"):
            spec = item.get(attr)
            if spec is None:
                continue
            ids = [p.strip() for p in self.expand(spec, where, needed=True).split(";") if p.strip()]
            for package_id in ids:
                if ("*" in package_id or "@(" in package_id) and tag != "ProjectReference":
                    raise UsageError(f"{where}: wildcards and item lists are not supported in {attr}")
                lowered = package_id.lower()
                if attr == "Include":
                    store.append(_Item(package_id, dict(meta), where))
                elif attr == "Update":
                    for existing in store:
                        if existing.id.lower() == lowered:
                            existing.meta.update(meta)
                else:
                    store[:] = [e for e in store if e.id.lower() != lowered]
            break

    def prop(self, name: str) -> str:
        return str(self.props.get(name.lower(), ""))

    def flag(self, name: str) -> bool:
        return self.prop(name).strip().lower() == "true"


_TOKEN = re.compile(r"\s*('(?:[^']*)'|==|!=|\(|\)|and\b|or\b|AND\b|OR\b|And\b|Or\b)", re.IGNORECASE)


def _evaluate_condition(text: str) -> bool:
    """``'a' == 'b'`` / ``!=`` joined by ``and`` / ``or`` with parentheses (MSBuild compares case-insensitively).

    Raises:
        UsageError: any other form (the caller names the element).
    """
    tokens: list[str] = []
    pos = 0
    stripped = text.strip()
    while pos < len(stripped):
        m = _TOKEN.match(stripped, pos)
        if not m:
            raise UsageError("unsupported condition")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(stripped) and stripped[pos].isspace():
            pos += 1
    index = 0

    def peek() -> str | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> str:
        nonlocal index
        if index >= len(tokens):
            raise UsageError("unsupported condition")
        index += 1
        return tokens[index - 1]

    def primary() -> bool:
        tok = take()
        if tok == "(":
            value = disjunction()
            if take() != ")":
                raise UsageError("unsupported condition")
            return value
        if not tok.startswith("'"):
            raise UsageError("unsupported condition")
        op = take()
        right = take()
        if op not in ("==", "!=") or not right.startswith("'"):
            raise UsageError("unsupported condition")
        equal = tok[1:-1].strip().lower() == right[1:-1].strip().lower()
        return equal if op == "==" else not equal

    def conjunction() -> bool:
        value = primary()
        while (peek() or "").lower() == "and":
            take()
            value = primary() and value
        return value

    def disjunction() -> bool:
        value = conjunction()
        while (peek() or "").lower() == "or":
            take()
            value = conjunction() or value
        return value

    result = disjunction()
    if index != len(tokens):
        raise UsageError("unsupported condition")
    return result


def _parse_range(text: str, package_id: str, where: str) -> VersionRange:
    found = VersionRange.try_parse(text)
    if found is None:
        raise UsageError(f"{where}: {text!r} is not a valid version range for package {package_id} (NU1105)")
    return found


def _evaluate(path: Path, global_props: Mapping[str, str], environ: Mapping[str, str]) -> _Evaluator:
    ev = _Evaluator(path, global_props, environ)
    build_props = _find_above(path.parent, "Directory.Build.props")
    if build_props is not None and ev.prop("ImportDirectoryBuildProps").lower() != "false":
        ev.run_file(build_props)
    packages_props = _find_above(path.parent, "Directory.Packages.props")
    if packages_props is not None and ev.prop("ImportDirectoryPackagesProps").lower() != "false":
        ev.run_file(packages_props)
    ev.run_file(path)
    return ev


def _implicit(framework: str, ev: _Evaluator) -> list[PackageReference]:
    if ev.flag("DisableImplicitFrameworkReferences"):
        return []
    m = re.fullmatch(r"netstandard(\d+)\.(\d+)", framework.strip().lower())
    if not m:
        return []
    text = ev.prop("NETStandardImplicitPackageVersion") or ("2.0.3" if m.group(1) == "2" else "1.6.1")
    return [PackageReference("NETStandard.Library", VersionRange.parse(text), text, implicit=True)]


def load_project(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Project:
    """Evaluate an SDK-style project's package references per target framework.

    Raises:
        UsageError: unreadable or invalid XML, no ``TargetFramework(s)``, a ``RuntimeIdentifier(s)`` (runtime graphs
            are not supported), ``netcoreapp1.x``/``2.x`` (SDK-versioned implicit references), a
            ``PackageReference`` without a version (NU1015 outside CPM), a version in a ``PackageReference`` under
            CPM (NU1008), a bad range (NU1105), or anything restore depends on that cannot be evaluated without
            MSBuild, naming the file and the text.
    """
    project = Path(path).resolve()
    env = dict(os.environ if environ is None else environ)
    outer = _evaluate(project, {}, env)
    frameworks_text = outer.prop("TargetFrameworks") or outer.prop("TargetFramework")
    frameworks = [f.strip() for f in frameworks_text.split(";") if f.strip()]
    if not frameworks:
        raise UsageError(
            f"{project.name}: no TargetFramework or TargetFrameworks (only SDK-style projects with PackageReference "
            "are supported; use packages.config for the others)"
        )
    for rid_property in ("RuntimeIdentifier", "RuntimeIdentifiers"):
        if outer.prop(rid_property).strip():
            raise UsageError(
                f"{project.name}: {rid_property} is set ({outer.prop(rid_property).strip()!r}); runtime-specific "
                "restore graphs (runtime.json, <framework>/<rid> lock file targets) are not supported by nuseal restore"
            )
    for framework in frameworks:
        if re.fullmatch(r"netcoreapp[12](\.\d+)?", framework.strip().lower()):
            raise UsageError(
                f"{project.name}: {framework} needs the SDK's implicit Microsoft.NETCore.App package reference, whose "
                "version depends on the SDK; nuseal restore supports netcoreapp3.0 and later, net5.0+, netstandard, "
                "and .NET Framework targets"
            )
    seen: set[str] = set()
    targets: list[ProjectTarget] = []
    central = False
    central_versions: dict[str, str] = {}
    for framework in frameworks:
        if framework.lower() in seen:
            continue
        seen.add(framework.lower())
        ev = _evaluate(project, {"TargetFramework": framework}, env)
        central = ev.flag("ManagePackageVersionsCentrally")
        overrides = ev.prop("CentralPackageVersionOverrideEnabled").lower() != "false"
        versions = {i.id.lower(): (i.id, i.meta.get("version", ""), i.where) for i in ev.items["packageversion"]}
        central_versions = {v[0]: v[1] for v in versions.values()} if central else {}
        refs: list[PackageReference] = []
        items = list(ev.items["packagereference"])
        if central:
            items += ev.items["globalpackagereference"]
        names: set[str] = set()
        for item in items:
            lowered = item.id.lower()
            if lowered in names:
                continue  # NuGet uses the first and warns NU1504
            names.add(lowered)
            text = item.meta.get("version", "")
            if central:
                override = item.meta.get("versionoverride", "")
                if text and item not in ev.items["globalpackagereference"]:
                    raise UsageError(
                        f"{item.where}: NU1008: projects that use central package version management should not "
                        f"define the version on the PackageReference item but on the PackageVersion item: {item.id}"
                    )
                if override:
                    if not overrides:
                        raise UsageError(f"{item.where}: NU1013: VersionOverride is disabled for {item.id}")
                    text = override
                elif not text:
                    if lowered not in versions:
                        raise UsageError(
                            f"{item.where}: NU1010: the PackageReference item {item.id} has no corresponding "
                            "PackageVersion item"
                        )
                    text = versions[lowered][1]
            if not text:
                raise UsageError(f"{item.where}: NU1015: the PackageReference item {item.id} has no version")
            private = item.meta.get("privateassets", "")
            refs.append(PackageReference(item.id, _parse_range(text, item.id, item.where), text, False, private))
        refs += [r for r in _implicit(framework, ev) if r.id.lower() not in names]
        projects: list[Path] = []
        for item in ev.items["projectreference"]:
            ref_path = Path(item.id.replace("\\", "/"))
            ref_path = (ref_path if ref_path.is_absolute() else project.parent / ref_path).resolve()
            if not ref_path.is_file():
                raise UsageError(f"{item.where}: the referenced project {item.id} does not exist")
            if ref_path not in projects:
                projects.append(ref_path)
        targets.append(ProjectTarget(framework, tuple(refs), tuple(projects)))
    lock_text = outer.prop("NuGetLockFilePath")
    lock_file = None
    if lock_text:
        lock_path = Path(lock_text.replace("\\", "/"))
        lock_file = lock_path if lock_path.is_absolute() else project.parent / lock_path
    return Project(
        path=project,
        name=project.stem,
        targets=tuple(targets),
        central=central,
        central_versions=central_versions,
        use_lock_file=outer.flag("RestorePackagesWithLockFile"),
        locked_mode=outer.flag("RestoreLockedMode"),
        lock_file=lock_file,
    )


def load_packages_config(path: str | os.PathLike[str]) -> list[tuple[str, NuGetVersion]]:
    """``packages.config``: ``<packages><package id=".." version=".."/>``, exact versions (no resolution).

    Raises:
        UsageError: unreadable, not ``<packages>``, an entry without id or with an invalid version.
    """
    file = Path(path)
    root = _parse_xml(file)
    if _local(root.tag) != "packages":
        raise UsageError(f"{file}: the root element must be <packages>")
    out: list[tuple[str, NuGetVersion]] = []
    for item in root:
        if _local(item.tag) != "package":
            continue
        package_id = (item.get("id") or "").strip()
        version = (item.get("version") or "").strip()
        if not package_id or not version:
            raise UsageError(f"{file}: a <package> needs both id and version")
        try:
            out.append((package_id, NuGetVersion.parse(version)))
        except PackageFormatError as exc:
            raise UsageError(f"{file}: package {package_id}: {exc.message}") from None
    return out


_SLN_PROJECT = re.compile(r'^Project\("\{[^}]*\}"\)\s*=\s*"[^"]*",\s*"([^"]+)"', re.MULTILINE)


def solution_projects(path: str | os.PathLike[str]) -> list[Path]:
    """The project files a ``.sln`` lists (solution folders and other project kinds skipped), in file order.

    Raises:
        UsageError: unreadable, or a listed project that does not exist.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from exc
    out: list[Path] = []
    for m in _SLN_PROJECT.finditer(text):
        rel = Path(m.group(1).replace("\\", "/"))
        if rel.suffix.lower() not in PROJECT_EXTENSIONS:
            continue
        project = (file.parent / rel).resolve()
        if not project.is_file():
            raise UsageError(f"{file}: the project {m.group(1)} it lists does not exist")
        out.append(project)
    return out


def find_inputs(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> RestoreInput:
    """What to restore for ``path``: a project file, a ``.sln``, a ``packages.config``, a ``packages.lock.json``,
    or a folder holding one of them (a single ``.sln`` first, then project files, then packages.config, then a
    lock file), as ``dotnet restore`` / ``nuget restore`` pick.

    Raises:
        UsageError: nothing restorable there, several solutions or projects in a folder (name one), or an error
            from :func:`load_project`.
    """
    target = Path(path)
    if not target.exists():
        raise UsageError(f"{target} does not exist")
    if target.is_dir():
        entries = sorted(p for p in target.iterdir() if p.is_file())
        slns = [p for p in entries if p.suffix.lower() == ".sln"]
        projects = [p for p in entries if p.suffix.lower() in PROJECT_EXTENSIONS]
        if len(slns) > 1:
            raise UsageError(f"{target} holds several solution files; name one: {', '.join(p.name for p in slns)}")
        if slns:
            target = slns[0]
        elif len(projects) > 1:
            raise UsageError(f"{target} holds several project files; name one: {', '.join(p.name for p in projects)}")
        elif projects:
            target = projects[0]
        elif (target / "packages.config").is_file():
            target = target / "packages.config"
        elif (target / "packages.lock.json").is_file():
            target = target / "packages.lock.json"
        else:
            raise UsageError(f"{target} holds no project, solution, packages.config or packages.lock.json to restore")
    suffix = target.suffix.lower()
    if suffix == ".sln":
        return RestoreInput(projects=tuple(load_project(p, environ=environ) for p in solution_projects(target)))
    if suffix in PROJECT_EXTENSIONS:
        return RestoreInput(projects=(load_project(target, environ=environ),))
    if target.name.lower() == "packages.config":
        return RestoreInput(packages_config=target.resolve())
    if suffix == ".json":
        return RestoreInput(lock_file=target.resolve())
    raise UsageError(
        f"{target}: not a project (.csproj/.fsproj/.vbproj), solution, packages.config or packages.lock.json"
    )
