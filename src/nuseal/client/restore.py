"""``nuseal restore``: resolve, download, gate and install every package a project needs, and keep its lock file.

The flow, per input (:func:`nuseal.client.project.find_inputs`):

1. settings from nuget.config (:func:`nuseal.client.settings.load_settings`) and the gate's settings from them
   (``signatureValidationMode``, ``trustedSigners``) and ``nuseal.toml`` (the scan allow list) - built in one place,
   :func:`gate_settings`;
2. per project and target framework: the lock file's packages when it is used and still matches the project
   (``PackagesLockFileUtilities.IsLockFileStillValid``), else a fresh resolution (:mod:`nuseal.client.resolve`);
   ``--locked-mode`` with a lock file that does not match fails with NU1004 before anything is downloaded;
   referenced projects (``ProjectReference``, their target nearest to the framework) are graph nodes whose flowing
   package references become dependencies, and ``Project`` entries of the lock file;
3. every package not already in the global-packages folder is downloaded (bounded, in parallel), its content hash
   compared with the lock file's (NU1403 before any byte is written), then handed to
   :meth:`nuseal.client.globalpackages.GlobalPackagesFolder.install`, which runs the gate (verification, then the
   scan) and extracts it as NuGet's ``PackageExtractor`` does; a package already installed is checked against the
   lock file's hash too (NuGet does the same with the installed ``.nupkg.metadata``);
4. the lock file is written (``--use-lock-file`` or ``RestorePackagesWithLockFile``) when everything succeeded and
   not in locked mode.

Errors never stop the other packages: every failure is collected with its NU code, package and source, and the
restore fails at the end (nothing of a refused package is on disk).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from nuseal.client.feedclient import FeedClient, HttpSettings
from nuseal.client.gate import GateSettings, client_policy, load_allow_list
from nuseal.client.globalpackages import GlobalPackagesFolder, InstallOutcome
from nuseal.client.lockfile import (
    DependencyType,
    LockedPackage,
    LockFile,
    LockTarget,
    direct_mismatches,
    legacy_short,
    load_lock_file,
    write_lock_file,
)
from nuseal.client.project import (
    Project,
    ProjectTarget,
    RestoreInput,
    find_inputs,
    load_packages_config,
    load_project,
)
from nuseal.client.resolve import Dependency, Diagnostic, PackageProvider, ResolvedPackage, resolve
from nuseal.client.settings import NuGetSettings, PackageSource, load_settings
from nuseal.codes import Level, NuCode
from nuseal.errors import NusealError, RestoreError
from nuseal.package.archive import PackageArchive
from nuseal.package.frameworks import NuGetFramework, get_nearest
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import VersionRange
from nuseal.scan.model import Severity
from nuseal.trust import NuGetConfig

__all__ = [
    "PackageOutcome",
    "RestoreOptions",
    "RestoreResult",
    "framework_key",
    "gate_settings",
    "restore",
]


@dataclass(frozen=True)
class RestoreOptions:
    """What ``nuseal restore`` was asked for (see the CLI for each option)."""

    path: Path
    config_file: Path | None = None
    packages: Path | None = None
    use_lock_file: bool = False
    locked_mode: bool = False
    block_on: Severity = Severity.ERROR
    sources: tuple[str, ...] = ()
    http: HttpSettings = field(default_factory=HttpSettings)
    install_parallel: int = 2


@dataclass(frozen=True)
class PackageOutcome:
    """One package of the restore: ``installed`` when this run extracted it, ``False`` when it was already in the
    global-packages folder; ``content_hash`` is NuGet's (``.nupkg.metadata``)."""

    id: str
    version: str
    source: str
    installed: bool
    content_hash: str | None
    folder: Path | None


@dataclass
class RestoreResult:
    """The outcome: packages, warnings and errors (the restore failed iff ``errors``), lock files written."""

    global_packages_folder: Path
    projects: list[str] = field(default_factory=list)
    packages: list[PackageOutcome] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    errors: list[RestoreError] = field(default_factory=list)
    lock_files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


#: Progress events: ("total", n) packages to fetch, ("done", 1) one more handled, ("bytes", n) downloaded.
ProgressHook = Callable[[str, int], None]


def framework_key(framework: str) -> str:
    """The lock file's key for a target framework (``NuGetFramework.ToString()``): ``.NETCoreApp,Version=v3.1``,
    ``.NETStandard,Version=v2.0``, ``.NETFramework,Version=v4.7.2``, and the short name for .NET 5 and later."""
    return str(NuGetFramework.parse(framework))


def gate_settings(settings: NuGetSettings, project_folder: Path, block_on: Severity) -> tuple[GateSettings, list[str]]:
    """The gate's settings for a restore: restore's policy from nuget.config (``signatureValidationMode``,
    ``trustedSigners``; :func:`nuseal.client.gate.client_policy`), the scan threshold, and the ``nuseal.toml``
    allow list found beside the project or in a folder above it. Returns the settings and warnings to print."""
    config = NuGetConfig(
        trusted_signers=settings.trusted_signers,
        signature_validation_mode=settings.signature_validation_mode,
    )
    policy, issues = client_policy([config])
    allow_file = None
    for folder in (project_folder, *project_folder.parents):
        if (folder / "nuseal.toml").is_file():
            allow_file = folder / "nuseal.toml"
            break
    gate = GateSettings(policy=policy, block_on=block_on, allow=load_allow_list(allow_file))
    return gate, [str(i) for i in issues]


@dataclass
class _Wanted:
    id: str
    version: NuGetVersion
    source: PackageSource
    content_hash: str | None = None  # from the lock file
    from_global_folder: bool = False


@dataclass
class _ProjectPlan:
    project: Project | None
    lock_path: Path | None
    write_lock: bool
    graphs: list[tuple[str, list[ResolvedPackage]]] = field(default_factory=list)  # (framework key, packages)
    locked: LockFile | None = None


class _Run:
    def __init__(self, options: RestoreOptions, progress: ProgressHook | None, now: datetime) -> None:
        self.options = options
        self.now = now
        self.progress = progress or (lambda _e, _n: None)
        self.settings_warnings: list[str] = []
        self._projects: dict[Path, Project] = {}

    async def run(self) -> RestoreResult:
        options = self.options
        inputs = find_inputs(options.path)
        folder = options.path if options.path.is_dir() else options.path.parent
        settings = load_settings(folder, config_file=options.config_file, extra_sources=options.sources)
        gpf_root = options.packages or settings.global_packages_folder
        result = RestoreResult(global_packages_folder=gpf_root)
        self.settings_warnings = list(settings.warnings)
        if not settings.enabled_sources:
            raise RestoreError("no package source is enabled (nuget.config <packageSources>, or --source)")
        gate, gate_warnings = gate_settings(settings, folder.resolve(), options.block_on)
        self.settings_warnings += gate_warnings
        gpf = GlobalPackagesFolder(gpf_root)
        async with FeedClient(
            settings.enabled_sources, options.http, on_bytes=lambda n: self.progress("bytes", n)
        ) as feed:
            provider = PackageProvider(feed, settings, global_folder=gpf_root)
            try:
                plans = await self._plan(inputs, provider, result)
            except RestoreError as exc:  # a source failed while resolving (NU1301): the restore fails
                result.errors.append(exc)
                return result
            if result.errors:
                return result
            wanted = self._collect(plans)
            self.progress("total", len(wanted))
            outcomes = await self._install(wanted, feed, gpf, gate, result)
        if result.errors:
            return result
        for plan in plans:
            if plan.write_lock and plan.lock_path is not None and plan.project is not None:
                lock = self._lock_for(plan, outcomes)
                if write_lock_file(lock, plan.lock_path):
                    result.lock_files.append(plan.lock_path)
        return result

    # ------------------------------------------------------------------ planning
    async def _plan(self, inputs: RestoreInput, provider: PackageProvider, result: RestoreResult) -> list[_ProjectPlan]:
        plans: list[_ProjectPlan] = []
        if inputs.packages_config is not None:
            result.projects.append(str(inputs.packages_config))
            plan = _ProjectPlan(None, None, False)
            pkgs = []
            for package_id, version in load_packages_config(inputs.packages_config):
                item = await provider.exact(package_id, version)
                if item is None:
                    result.errors.append(_not_found(package_id, version, provider))
                    continue
                pkgs.append(ResolvedPackage(item.id, item.version, item.source, (), None, item.from_global_folder))
            plan.graphs.append(("packages.config", pkgs))
            plans.append(plan)
        if inputs.lock_file is not None:
            result.projects.append(str(inputs.lock_file))
            lock = load_lock_file(inputs.lock_file)
            plan = _ProjectPlan(None, inputs.lock_file, False, locked=lock)
            await self._from_lock(plan, lock, [t.name for t in lock.targets], provider, result)
            plans.append(plan)
        for project in inputs.projects:
            result.projects.append(str(project.path))
            plans.append(await self._plan_project(project, provider, result))
        return plans

    async def _plan_project(self, project: Project, provider: PackageProvider, result: RestoreResult) -> _ProjectPlan:
        options = self.options
        lock_path = project.lock_file_path
        locked_mode = options.locked_mode or project.locked_mode
        use_lock = options.use_lock_file or project.use_lock_file or lock_path.is_file() or locked_mode
        plan = _ProjectPlan(project, lock_path, use_lock and not locked_mode)
        keys = [framework_key(t.framework) for t in project.targets]
        lock: LockFile | None = None
        problems: list[str] = []
        if use_lock and lock_path.is_file():
            try:
                lock = load_lock_file(lock_path)
            except RestoreError as exc:
                problems.append(exc.message)
            if lock is not None:
                for target, key in zip(project.targets, keys, strict=True):
                    refs = [(r.id, r.range) for r in target.references]
                    problems += [f"{key}: {p}" for p in direct_mismatches(lock.target(key), key, refs)]
                extra = {t.name for t in lock.targets} - set(keys)
                problems += [f"the lock file has a target {name} the project no longer has" for name in sorted(extra)]
        elif locked_mode:
            problems.append(f"there is no lock file at {lock_path}")
        if locked_mode and problems:
            result.errors.append(
                RestoreError(
                    f"The packages lock file is inconsistent with the project dependencies so restore can't be run in "
                    f"locked mode ({project.path.name}): " + "; ".join(problems),
                    code=NuCode.NU1004,
                    package=project.name,
                )
            )
            return plan
        if lock is not None and not problems:
            plan.locked = lock
            await self._from_lock(plan, lock, keys, provider, result)
            return plan
        for target, key in zip(project.targets, keys, strict=True):
            names = self._register_projects(target, provider, (project.path,))
            graph = await resolve(
                target.references, target.framework, provider, project_name=project.name, project_references=names
            )
            for d in graph.diagnostics:
                if d.level is Level.ERROR:
                    result.errors.append(RestoreError(d.message, code=d.code, package=d.package))
                else:
                    result.warnings.append(d)
            plan.graphs.append((key, graph.packages))
        return plan

    def _register_projects(
        self, target: ProjectTarget, provider: PackageProvider, chain: tuple[Path, ...]
    ) -> list[str]:
        """Register ``target``'s referenced projects (recursively) with the provider; returns their names. Each
        referenced project contributes its target nearest to ``target``'s framework (NuGet's ``GetNearest``)."""
        names: list[str] = []
        for path in target.projects:
            if path in chain:
                raise RestoreError(
                    f"NU1108: cycle in project references: {' -> '.join(p.name for p in (*chain, path))}",
                    code=NuCode.NU1108,
                )
            referenced = self._projects.get(path)
            if referenced is None:
                referenced = load_project(path)
                self._projects[path] = referenced
            framework = NuGetFramework.parse(target.framework)
            candidates = [NuGetFramework.parse(t.framework) for t in referenced.targets]
            nearest = get_nearest(framework, candidates)
            if nearest is None:
                raise RestoreError(
                    f"Project {referenced.name} is not compatible with {target.framework}. Project {referenced.name} "
                    f"supports: {', '.join(t.framework for t in referenced.targets)}",
                    package=referenced.name,
                )
            chosen = referenced.targets[candidates.index(nearest)]
            inner = self._register_projects(chosen, provider, (*chain, path))
            deps = [Dependency(r.id, r.range) for r in chosen.references if r.flows]
            deps += [Dependency(n, VersionRange.parse("1.0.0")) for n in inner]
            provider.add_project(referenced.name, referenced.path, deps)
            names.append(referenced.name)
        return names

    async def _from_lock(
        self,
        plan: _ProjectPlan,
        lock: LockFile,
        keys: Sequence[str],
        provider: PackageProvider,
        result: RestoreResult,
    ) -> None:
        for key in keys:
            target = lock.target(key)
            if target is None:
                continue
            packages: list[ResolvedPackage] = []
            for entry in target.packages:
                if entry.type is DependencyType.PROJECT or entry.resolved is None:
                    continue
                item = await provider.exact(entry.id, entry.resolved)
                if item is None:
                    result.errors.append(_not_found(entry.id, entry.resolved, provider))
                    continue
                packages.append(
                    ResolvedPackage(item.id, item.version, item.source, (), entry.requested, item.from_global_folder)
                )
            plan.graphs.append((key, packages))

    def _collect(self, plans: Sequence[_ProjectPlan]) -> dict[str, _Wanted]:
        wanted: dict[str, _Wanted] = {}
        for plan in plans:
            hashes: dict[str, str] = {}
            if plan.locked is not None:
                for target in plan.locked.targets:
                    for entry in target.packages:
                        if entry.resolved is not None and entry.content_hash:
                            hashes[f"{entry.id.lower()}/{entry.resolved.normalized.lower()}"] = entry.content_hash
            for _key, packages in plan.graphs:
                for pkg in packages:
                    if pkg.is_project:
                        continue
                    item = wanted.setdefault(
                        pkg.key, _Wanted(pkg.id, pkg.version, pkg.source, from_global_folder=pkg.from_global_folder)
                    )
                    if pkg.key in hashes:
                        item.content_hash = hashes[pkg.key]
        return wanted

    # ------------------------------------------------------------------ download + install
    async def _install(
        self,
        wanted: dict[str, _Wanted],
        feed: FeedClient,
        gpf: GlobalPackagesFolder,
        gate: GateSettings,
        result: RestoreResult,
    ) -> dict[str, PackageOutcome]:
        outcomes: dict[str, PackageOutcome] = {}
        installs = asyncio.Semaphore(max(1, self.options.install_parallel))
        used = {item.source.name.lower(): item.source for item in wanted.values() if not item.from_global_folder}
        infos = []
        for source in used.values():
            try:
                info = await feed.client(source).repository_signatures()
            except RestoreError as exc:
                result.errors.append(exc)
                return outcomes
            if info is not None:
                infos.append((source.url, info))
        if infos:  # each source's RepositorySignatures tightens the policy for its packages
            gate = replace(gate, repository_signatures=tuple(infos))

        async def one(key: str, item: _Wanted) -> None:
            label = f"{item.id} {item.version}"
            try:
                if gpf.is_installed(item.id, item.version):
                    installed_hash = gpf.installed_content_hash(item.id, item.version)
                    if item.content_hash is not None and installed_hash != item.content_hash:
                        raise _nu1403(item.id, item.version, str(gpf.version_folder(item.id, item.version)))
                    outcomes[key] = PackageOutcome(
                        item.id,
                        item.version.normalized,
                        str(gpf.version_folder(item.id, item.version)),
                        False,
                        installed_hash,
                        gpf.version_folder(item.id, item.version),
                    )
                    return
                data = await feed.client(item.source).nupkg(item.id, item.version)
                if data is None:
                    raise RestoreError(
                        f"Package '{label}' is listed by source '{item.source.url}' but cannot be downloaded from it",
                        code=NuCode.NU1102,
                        package=label,
                        source=item.source.url,
                    )
                if item.content_hash is not None:
                    actual = await asyncio.to_thread(_content_hash, data, item.source.url, label)
                    if actual != item.content_hash:
                        raise _nu1403(item.id, item.version, item.source.url)
                async with installs:
                    outcome: InstallOutcome = await asyncio.to_thread(
                        gpf.install,
                        data,
                        package_id=item.id,
                        version=item.version,
                        source=item.source.url,
                        gate=gate,
                        now=self.now,
                    )
                if outcome.gate is not None:
                    for issue in outcome.gate.warnings:
                        if issue.code is not None:
                            result.warnings.append(
                                Diagnostic(issue.code, Level.WARNING, f"Package '{label}': {issue.message}", label)
                            )
                outcomes[key] = PackageOutcome(
                    item.id,
                    item.version.normalized,
                    item.source.url,
                    outcome.installed,
                    outcome.content_hash,
                    outcome.folder,
                )
            except RestoreError as exc:
                result.errors.append(exc)
            except NusealError as exc:
                result.errors.append(
                    RestoreError(
                        f"Package '{label}': {exc.message}", code=exc.code, package=label, source=item.source.url
                    )
                )
            finally:
                self.progress("done", 1)

        await asyncio.gather(*(one(k, v) for k, v in wanted.items()))
        result.packages.extend(outcomes[k] for k in sorted(outcomes))
        return outcomes

    # ------------------------------------------------------------------ lock file
    def _lock_for(self, plan: _ProjectPlan, outcomes: dict[str, PackageOutcome]) -> LockFile:
        targets: list[LockTarget] = []
        assert plan.project is not None
        requested = {framework_key(t.framework): {r.id.lower(): r for r in t.references} for t in plan.project.targets}
        for key, packages in plan.graphs:
            direct = requested.get(key, {})
            entries: list[LockedPackage] = []
            lock_target = plan.locked.target(key) if plan.locked is not None else None
            for pkg in packages:
                if pkg.is_project:  # dotnet 3.1 (NuGet 5.4) writes the project's name lower-case, ranges short
                    deps = {d.id: legacy_short(d.range) for d in pkg.dependencies}
                    entries.append(LockedPackage(pkg.id.lower(), DependencyType.PROJECT, None, None, None, deps))
                    continue
                outcome = outcomes.get(pkg.key)
                ref = direct.get(pkg.id.lower())
                deps = {d.id: legacy_short(d.range) for d in pkg.dependencies}
                if lock_target is not None and not deps:
                    old = lock_target.get(pkg.id)
                    deps = dict(old.dependencies) if old is not None else {}
                entries.append(
                    LockedPackage(
                        id=pkg.id,
                        type=DependencyType.DIRECT if ref is not None else DependencyType.TRANSITIVE,
                        resolved=pkg.version,
                        requested=ref.range if ref is not None else None,
                        content_hash=outcome.content_hash if outcome else None,
                        dependencies=deps,
                    )
                )
            targets.append(LockTarget(key, tuple(entries)))
        return LockFile(1, tuple(targets), plan.lock_path)


def _content_hash(data: bytes, source: str, label: str) -> str:
    try:
        return PackageArchive.from_bytes(data, source=source).content_hash()
    except NusealError as exc:
        raise RestoreError(
            f"Package '{label}' from source '{source}' is not a readable package: {exc.message}",
            code=exc.code,
            package=label,
            source=source,
        ) from None


def _nu1403(package_id: str, version: NuGetVersion, source: str) -> RestoreError:
    """NU1403 in NuGet's words (``RestoreCommand``: ``Error_PackageValidationFailed``, ``{id}.{version}``), then
    where the package came from."""
    return RestoreError(
        f"Package content hash validation failed for {package_id}.{version}. The package is different than the last "
        f"restore. Source: '{source}'; it was not installed.",
        code=NuCode.NU1403,
        package=f"{package_id} {version}",
        source=source,
    )


def _not_found(package_id: str, version: NuGetVersion, provider: PackageProvider) -> RestoreError:
    names = ", ".join(s.name for s in provider.sources_for(package_id)) or "(none)"
    return RestoreError(
        f"Unable to find package {package_id} with version (= {version}) in source(s): {names}",
        code=NuCode.NU1102,
        package=f"{package_id} {version}",
    )


def restore(
    options: RestoreOptions, *, now: datetime, progress: ProgressHook | None = None
) -> tuple[RestoreResult, list[str]]:
    """Run a restore (see the module docstring) judging every package's signatures at ``now`` (timezone-aware;
    the CLI passes the current time). Returns the result and the settings warnings to print.

    Raises:
        UsageError, ConfigError: the input or a nuget.config cannot be read or evaluated.
        RestoreError: nothing can be restored at all (no source enabled).
    """
    run = _Run(options, progress, now)
    result = asyncio.run(run.run())
    return result, run.settings_warnings
