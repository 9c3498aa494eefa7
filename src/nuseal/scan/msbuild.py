"""MSBuild that NuGet imports into the consuming project (rules NS2xxx).

Which files: NuGet imports ``<id>.props`` and ``<id>.targets`` (file name equal to the package id, any case) from
``build/`` and ``buildTransitive/`` (root and one framework folder, ``build/<tfm>/``) and from
``buildMultiTargeting/`` (and the deprecated ``buildCrossTargeting/``, root only) -- NuGet.Client
``ManagedCodeConventions`` (``MSBuildFiles``: ``build/{tfm}/{msbuild}``, ``build/{msbuild}``;
``MSBuildTransitiveFiles``; ``MSBuildMultiTargetingFiles``: ``buildMultiTargeting/{msbuild}``) and
``LockFileUtils`` (only ``{id}.props`` / ``{id}.targets`` become project imports). Every framework folder is
analysed, since which one applies depends on the consuming project. Files those import from inside the package
(``Import Project=``, relative to the importing file, ``$(MSBuildThisFileDirectory)`` resolved, wildcards
expanded) are analysed too, transitively.

How: each file is parsed with ``defusedxml`` (no DTDs, no entities; a file that does not parse is NS9007) keeping
element line numbers. Then:

* ``UsingTask`` with ``CodeTaskFactory`` / ``RoslynCodeTaskFactory``: NS2101 (note) and the inline C#/VB (or its
  ``Source=`` file in the package) with comments blanked, against the ``code:`` patterns: process start NS2102,
  network NS2103, loading code from bytes NS2104, write-then-run NS2105 (only with a process start), credential
  and wallet files NS2106; network with process start or code loading is NS2110 (error);
* ``UsingTask AssemblyFile=``: inside the package NS2601 (note, names the DLL), outside NS2602; MSBuild's own
  task assemblies (``$(MSBuildToolsPath)``...) are not reported;
* ``Exec``: NS2201 (note); its command against the ``command:`` patterns (NS2202 download, NS2203 download and
  run, NS2204 hidden or encoded) and through the PowerShell analysis (:func:`nuseal.scan.powershell.analyse_script`,
  which decodes ``-EncodedCommand``); a ``.ps1`` of the package that the command runs is analysed with the
  PowerShell rules (NS11xx, located in the script);
* ``DownloadFile``: NS2301; property functions ``$([Type]::Member(...))`` against the ``property-function:``
  patterns (NS2302 process/network/reflection, NS2303 file writes);
* ``InitialTargets``: NS2401; ``BeforeTargets`` / ``AfterTargets`` / ``*DependsOn`` on common targets: NS2402
  (note);
* ``Import`` of a file outside the package: absolute, UNC or URL NS2501 (warning); a relative path climbing out
  of the package NS2502 (note).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from xml.etree.ElementTree import Element, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from nuseal.scan._walk import FileWalk
from nuseal.scan.model import Finding, Location
from nuseal.scan.package import EntryReadError, ScanPackage
from nuseal.scan.powershell import analyse_script, decode_text
from nuseal.scan.rules import RuleSet

if TYPE_CHECKING:
    from nuseal.scan.engine import Analyser, ScanContext

__all__ = ["COMMON_TARGETS", "MAX_MSBUILD_SIZE", "analyse", "analysers", "imported_msbuild_files"]

#: Largest MSBuild file analysed (bytes).
MAX_MSBUILD_SIZE = 8 << 20
#: Most files followed through Import from one package.
MAX_IMPORTED = 200
#: Targets of Microsoft.Common.targets (and the SDK) that run in every build: hooks on them run every time.
COMMON_TARGETS = frozenset(
    t.lower()
    for t in (
        "Build", "BeforeBuild", "AfterBuild", "CoreBuild", "Rebuild", "Compile", "CoreCompile", "BeforeCompile",
        "AfterCompile", "PrepareForBuild", "ResolveReferences", "ResolveAssemblyReferences", "Restore",
        "_CheckForInvalidConfigurationAndPlatform", "CopyFilesToOutputDirectory", "PrepareResources",
        "GenerateAssemblyInfo", "BeforeResolveReferences", "AfterResolveReferences", "Pack", "Publish",
        "CollectPackageReferences", "PrepareForPublish", "GetTargetPath", "ResolveProjectReferences",
        "DesignTimeBuild", "CompileDesignTime", "Clean", "BeforeClean", "AfterClean", "Run",
        "IncrementalClean", "PostBuildEvent", "PreBuildEvent", "_CopyFilesMarkedCopyLocal",
        "GenerateBuildDependencyFile",
    )
)
_DEPENDS_ON = re.compile(r"^(Build|Compile|CoreCompile|PrepareForBuild|ResolveReferences|CoreBuild|Clean|Rebuild|"
                         r"PrepareResources|CopyFilesToOutputDirectory|Run|Publish)DependsOn$", re.IGNORECASE)
_BUILD_DIRS = ("build", "buildtransitive")
#: Imported files that are followed (by extension).
_FOLLOWED = (".props", ".targets", ".proj", ".tasks", ".xml")
_ROOT_ONLY_DIRS = ("buildmultitargeting", "buildcrosstargeting")
_CODE_FACTORIES = {"codetaskfactory", "roslyncodetaskfactory"}
_THIS_FILE = re.compile(r"\$\(\s*MSBuildThisFile(Directory|FullPath|Name|Extension)?\s*\)", re.IGNORECASE)
_PROPERTY = re.compile(r"\$\(\s*([A-Za-z_][\w.]*)\s*\)")
_PROPERTY_FUNCTION = re.compile(r"\$\(\s*(\[[^\]\[]{1,200}\]\s*::\s*\w+)")
_SCRIPT_REF = re.compile(r"([^\s\"';|&<>]+\.ps1)\b", re.IGNORECASE)
_C_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_VB_COMMENT = re.compile(r"^(?P<code>(?:[^'\"\n]|\"[^\"\n]*\")*)'[^\n]*", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class _Resolved:
    """An Import / AssemblyFile path: ``kind`` is ``package`` (``paths`` inside), ``outside`` (absolute, UNC,
    URL), ``climb`` (relative, leaving the package), or ``external`` (through a property MSBuild or the machine
    defines: an SDK import, not judged)."""

    kind: str
    paths: tuple[str, ...] = ()
    text: str = ""


class _LineTreeBuilder(TreeBuilder):
    """A TreeBuilder that remembers each element's start line (expat's ``CurrentLineNumber``)."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: Any = None
        self.lines: dict[int, int] = {}
        self._keep: list[Element] = []

    def start(self, tag: Any, attrs: Any) -> Element:
        el = super().start(tag, attrs)
        self.lines[id(el)] = int(self.parser.parser.CurrentLineNumber)
        self._keep.append(el)
        return el


def _parse(data: bytes) -> tuple[Element, dict[int, int]]:
    builder = _LineTreeBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder.parser = parser
    parser.feed(data)
    root: Element = parser.close()
    return root, builder.lines


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(el: Element, name: str) -> str | None:
    for key, value in el.attrib.items():
        if _local(key).lower() == name.lower():
            return value
    return None


def imported_msbuild_files(pkg: ScanPackage) -> list[str]:
    """The entry paths NuGet imports for ``pkg`` (see the module docstring), in package order."""
    if pkg.id is None:
        return []
    wanted = {f"{pkg.id.lower()}.props", f"{pkg.id.lower()}.targets"}
    out: list[str] = []
    for path in pkg.paths:
        parts = path.split("/")
        if parts[-1].lower() not in wanted:
            continue
        top = parts[0].lower()
        if (top in _BUILD_DIRS and len(parts) in (2, 3)) or (top in _ROOT_ONLY_DIRS and len(parts) == 2):
            out.append(path)
    return out


_ROOT = "/\x00package"


def _resolve(value: str, base_dir: str, pkg: ScanPackage) -> _Resolved:
    """Resolve an Import/AssemblyFile/Source path as MSBuild would, relative to the file's folder, with
    ``$(MSBuildThisFile*)`` substituted; anything that leaves the package root is ``outside``."""
    text = value.strip()
    here = f"{_ROOT}/{base_dir}" if base_dir else _ROOT

    def this_file(m: re.Match[str]) -> str:
        part = (m.group(1) or "").lower()
        return {"directory": here + "/", "fullpath": here}.get(part, "")

    replaced = _THIS_FILE.sub(this_file, text).replace("\\", "/")
    if "$(" in replaced or "@(" in replaced or "%(" in replaced:
        return _Resolved("external", text=text)
    if not replaced.startswith(_ROOT):
        if replaced.startswith("/") or re.match(r"^[a-zA-Z]:", replaced):
            return _Resolved("outside", text=text)
        if re.match(r"^[a-z][a-z0-9+.-]*://", replaced, re.IGNORECASE):
            return _Resolved("outside", text=text)
        replaced = f"{here}/{replaced}"
    norm = posixpath.normpath(replaced)
    if not norm.startswith(_ROOT + "/"):
        return _Resolved("climb", text=text)
    joined = norm[len(_ROOT) + 1 :]
    lower = pkg.lower_paths
    if any(ch in joined for ch in "*?"):
        pattern = joined.lower().replace("**/", "*")
        return _Resolved("package", tuple(p for low, p in lower.items() if fnmatch.fnmatchcase(low, pattern)), text)
    found = lower.get(joined.lower()) or lower.get(unquote(joined).lower())
    return _Resolved("package", (found,) if found else (), text)


def _blank_comments(code: str, language: str) -> str:
    def blank(m: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", m.group())

    if language.lower() in ("vb", "visualbasic", "vbs"):
        return _VB_COMMENT.sub(lambda m: m.group("code") + " " * (len(m.group()) - len(m.group("code"))), code)
    return _C_COMMENTS.sub(blank, code)


class _FileAnalysis:
    def __init__(self, pkg: ScanPackage, rules: RuleSet, path: str, sha: str | None, lines: dict[int, int]) -> None:
        self.pkg = pkg
        self.rules = rules
        self.path = path
        self.sha = sha
        self.lines = lines
        self.findings: list[Finding] = []
        self.imports: list[str] = []
        self.properties: dict[str, str] = {}
        self.scripts_done: set[str] = set()

    def collect_properties(self, root: Element) -> None:
        """The file's own unconditional-or-not property definitions (first wins), for resolving paths such as
        Fody's ``$(FodyPath)\\Fody.dll`` (``$(MSBuildThisFileDirectory)..\\..\\``)."""
        for group in root.iter():
            if _local(str(group.tag)).lower() != "propertygroup":
                continue
            for prop in group:
                name = _local(str(prop.tag))
                text = (prop.text or "").strip()
                if text and f"$({name.lower()})" not in text.lower().replace(" ", ""):
                    self.properties.setdefault(name.lower(), text)

    def expand(self, value: str) -> str:
        """``value`` with this file's properties substituted (bounded; unknown ones left as they are)."""
        for _ in range(5):
            changed = _PROPERTY.sub(lambda m: self.properties.get(m.group(1).lower(), m.group()), value)
            if changed == value:
                break
            value = changed
        return value

    def line(self, el: Element) -> int | None:
        return self.lines.get(id(el))

    def add(self, rule_id: str, message: str, evidence: str, line: int | None, column: int | None = None) -> None:
        self.findings.append(
            self.rules.finding(
                rule_id,
                message,
                self.pkg.ref,
                location=Location(path=self.path, line=line, column=column),
                evidence=evidence,
                file_sha256=self.sha,
            )
        )

    # ------------------------------------------------------------------ elements
    def run(self, root: Element) -> None:
        base_dir = posixpath.dirname(self.path)
        self.collect_properties(root)
        initial = _attr(root, "InitialTargets")
        if initial and initial.strip():
            self.add(
                "NS2401",
                f"{self.path} sets InitialTargets={initial.strip()!r}: they run first in every build",
                f'InitialTargets="{initial.strip()}"',
                self.line(root),
            )
        for el in root.iter():
            name = _local(str(el.tag))
            low = name.lower()
            if low == "usingtask":
                self.using_task(el, base_dir)
            elif low == "target":
                self.target(el)
            elif low == "exec":
                self.exec_task(el)
            elif low == "downloadfile":
                address = _attr(el, "SourceUrl") or ""
                evidence = f'<DownloadFile SourceUrl="{address}"'
                self.add("NS2301", f"DownloadFile task in {self.path}", evidence, self.line(el))
            elif low == "import":
                self.import_(el, base_dir)
            elif _DEPENDS_ON.match(name) and el.text and el.text.strip():
                self.add(
                    "NS2402",
                    f"{self.path} extends {name}: its targets run in every build",
                    f"<{name}>{el.text.strip()}</{name}>",
                    self.line(el),
                )
            self.property_functions(el)

    def using_task(self, el: Element, base_dir: str) -> None:
        factory = (_attr(el, "TaskFactory") or "").strip()
        task_name = _attr(el, "TaskName") or "?"
        assembly = _attr(el, "AssemblyFile")
        if factory.lower() in _CODE_FACTORIES:
            self.inline_task(el, task_name, factory, base_dir)
        elif assembly:
            where = _resolve(self.expand(assembly), base_dir, self.pkg)
            if where.kind == "package":
                dll = ", ".join(where.paths) or assembly
                self.add(
                    "NS2601",
                    f"UsingTask {task_name} loads {dll} from the package in every build",
                    f'<UsingTask TaskName="{task_name}" AssemblyFile="{assembly}"',
                    self.line(el),
                )
            elif where.kind in ("outside", "climb"):
                self.add(
                    "NS2602",
                    f"UsingTask {task_name} loads an assembly from outside the package: {assembly}",
                    f'<UsingTask TaskName="{task_name}" AssemblyFile="{assembly}"',
                    self.line(el),
                )

    def inline_task(self, el: Element, task_name: str, factory: str, base_dir: str) -> None:
        line = self.line(el)
        self.add(
            "NS2101",
            f"{self.path}: inline task {task_name} ({factory}) compiles and runs code in the build",
            f'<UsingTask TaskName="{task_name}" TaskFactory="{factory}"',
            line,
        )
        for code_el in el.iter():
            if _local(str(code_el.tag)).lower() != "code":
                continue
            language = _attr(code_el, "Language") or "cs"
            source = _attr(code_el, "Source")
            code = code_el.text or ""
            code_line = self.line(code_el) or line or 1
            where = self.path
            if source:
                resolved = _resolve(self.expand(source), base_dir, self.pkg)
                if resolved.kind == "package" and resolved.paths:
                    try:
                        code = decode_text(self.pkg.read(resolved.paths[0], limit=MAX_MSBUILD_SIZE))
                        where, code_line = resolved.paths[0], 1
                    except EntryReadError as exc:
                        self.pkg.read_problem(exc)
            self.inline_code(task_name, code, language, code_line, where)

    def inline_code(self, task_name: str, code: str, language: str, first_line: int, where: str) -> None:
        clean = _blank_comments(code, language)
        hits: dict[str, list[tuple[int, str]]] = {}
        for pattern in self.rules.patterns("msbuild", "code"):
            for m in pattern.regex.finditer(clean):
                offset = clean.count("\n", 0, m.start())
                line_text = clean.split("\n")[offset].strip()
                hits.setdefault(pattern.rule_id, []).append((first_line + offset, line_text))
        if "NS2105" in hits and "NS2102" not in hits:
            del hits["NS2105"]  # writing files alone is what build tasks do
        if "NS2103" in hits and ("NS2102" in hits or "NS2104" in hits):
            start = hits.get("NS2102") or hits["NS2104"]
            hits["NS2110"] = [start[0]]
        for rule_id, found in sorted(hits.items()):
            seen: set[int] = set()
            for line, text in found[:10]:
                if line in seen:
                    continue
                seen.add(line)
                title = self.rules.get(rule_id).title
                self.findings.append(
                    self.rules.finding(
                        rule_id,
                        f"{title}: inline task {task_name} in {where}",
                        self.pkg.ref,
                        location=Location(path=where, line=line),
                        evidence=text,
                        file_sha256=self.sha if where == self.path else self.pkg.sha256(where),
                    )
                )

    def target(self, el: Element) -> None:
        name = _attr(el, "Name") or "?"
        for attr in ("BeforeTargets", "AfterTargets"):
            value = _attr(el, attr)
            if not value:
                continue
            hooked = [t.strip() for t in value.split(";") if t.strip().lower() in COMMON_TARGETS]
            if hooked:
                self.add(
                    "NS2402",
                    f"target {name} in {self.path} runs {attr.removesuffix('Targets').lower()} {', '.join(hooked)}",
                    f'<Target Name="{name}" {attr}="{value}"',
                    self.line(el),
                )

    def exec_task(self, el: Element) -> None:
        command = _attr(el, "Command") or ""
        line = self.line(el)
        self.add("NS2201", f"Exec task in {self.path} runs a command in the build", command or "<Exec>", line)
        matched: set[str] = set()
        for pattern in self.rules.patterns("msbuild", "command"):
            if pattern.regex.search(command) and pattern.rule_id not in matched:
                matched.add(pattern.rule_id)
                title = self.rules.get(pattern.rule_id).title
                self.add(pattern.rule_id, f"{title} ({self.path})", command, line)
        analysis = analyse_script(command, self.rules)
        mapped = {"NS1101": "NS2202", "NS1110": "NS2203", "NS1120": "NS2204"}
        for hit in analysis.hits:
            rule_id = mapped.get(hit.rule_id)
            if rule_id is None and hit.rule_id in ("NS1130", "NS1131", "NS1132"):
                rule_id = hit.rule_id
            if rule_id is None or (rule_id in matched and hit.rule_id != "NS1120"):
                continue
            matched.add(rule_id)
            title = self.rules.get(rule_id).title
            evidence = hit.evidence if hit.decoded or hit.rule_id == "NS1120" else command
            self.add(rule_id, f"{title} (Exec in {self.path})", evidence, line)
        if "NS2202" in matched and ("NS1102" in analysis.rules() or "NS1103" in analysis.rules()) and (
            "NS2203" not in matched
        ):
            self.add("NS2203", f"{self.rules.get('NS2203').title} (Exec in {self.path})", command, line)
        self.exec_scripts(command)

    def exec_scripts(self, command: str) -> None:
        """PowerShell scripts of the package that the command runs (``powershell -File x.ps1``, ``& x.ps1``) are
        analysed with the PowerShell rules, located in the script."""
        for m in _SCRIPT_REF.finditer(self.expand(command)):
            where = _resolve(m.group(1), posixpath.dirname(self.path), self.pkg)
            for script in where.paths if where.kind == "package" else ():
                if script in self.scripts_done:
                    continue
                self.scripts_done.add(script)
                try:
                    data = self.pkg.read(script, limit=MAX_MSBUILD_SIZE)
                except EntryReadError as exc:
                    self.pkg.read_problem(exc)
                    continue
                sha = self.pkg.sha256(script)
                for hit in analyse_script(decode_text(data), self.rules).hits:
                    title = self.rules.get(hit.rule_id).title
                    self.findings.append(
                        self.rules.finding(
                            hit.rule_id,
                            f"{'decoded command: ' if hit.decoded else ''}{title} in {script} "
                            f"(run by an Exec task in {self.path})",
                            self.pkg.ref,
                            location=Location(path=script, line=hit.line, column=hit.column),
                            evidence=hit.evidence,
                            file_sha256=sha,
                        )
                    )

    def import_(self, el: Element, base_dir: str) -> None:
        project = _attr(el, "Project")
        if not project:
            return
        where = _resolve(self.expand(project), base_dir, self.pkg)
        if where.kind in ("outside", "climb"):
            self.add(
                "NS2501" if where.kind == "outside" else "NS2502",
                f"{self.path} imports {project}, which is not in the package",
                f'<Import Project="{project}"',
                self.line(el),
            )
        elif where.kind == "package":
            self.imports.extend(where.paths)

    def property_functions(self, el: Element) -> None:
        texts = list(el.attrib.values())
        if el.text:
            texts.append(el.text)
        for text in texts:
            if "$([" not in text.replace(" ", ""):
                continue
            for m in _PROPERTY_FUNCTION.finditer(text):
                call = re.sub(r"\s+", "", m.group(1))
                for pattern in self.rules.patterns("msbuild", "property-function"):
                    if pattern.regex.search(call):
                        title = self.rules.get(pattern.rule_id).title
                        self.add(pattern.rule_id, f"{title}: {call} in {self.path}", text.strip(), self.line(el))
                        break


def analyse(pkg: ScanPackage, rules: RuleSet) -> Iterable[Finding]:
    """The ``msbuild`` analyser (see the module docstring)."""
    walk = FileWalk(pkg, imported_msbuild_files(pkg), limit=MAX_MSBUILD_SIZE, max_files=MAX_IMPORTED)
    for file in walk:
        path, sha = file.path, file.sha256
        if file.via is None:
            message = f"NuGet imports {path} into every project that references {pkg.id}"
            yield walk.finding(rules, "NS2001", message, file)
        try:
            root, lines = _parse(file.data)
        except (ParseError, DefusedXmlException, ValueError, LookupError) as exc:  # LookupError: unknown encoding
            message = f"{path} is not well-formed MSBuild XML: {exc}"
            yield walk.finding(rules, "NS9007", message, file, evidence=str(exc))
            continue
        analysis = _FileAnalysis(pkg, rules, path, sha, lines)
        analysis.run(root)
        yield from analysis.findings
        walk.follow((p for p in analysis.imports if p.lower().endswith(_FOLLOWED)), path)


def analysers(context: ScanContext) -> Sequence[Analyser]:
    """Engine hook (:mod:`nuseal.scan.engine`)."""
    return (analyse,)
