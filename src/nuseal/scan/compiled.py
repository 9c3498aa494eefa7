"""Compiled code and scripts in a package: where they sit, and what .NET assemblies declare.

Nothing is loaded or run: PE headers and .NET metadata are read from the bytes by :mod:`nuseal.scan.clrmeta` (a
bounded reader of the few ECMA-335 tables the rules need; docs/adr/0005 says why not ``dnfile``). A PE file up to
:data:`MAX_PE_BYTES` is read whole (CRC-checked and hashed; what its metadata revealed is cached by SHA-256 for the
scanner's lifetime, so a DLL shipped in many packages is parsed once); a larger one is read only as far as needed
(its headers, and a .NET assembly's metadata if it ends within the bound). Reference assemblies (``ref/``) are
not analysed: the compiler reads their metadata, nothing loads or runs them.

Placement (NuGet's package conventions, docs "Creating a package" / NuGet.Client ``ManagedCodeConventions``):
assemblies belong in ``lib/``, ``ref/``, ``runtimes/``, ``build*/`` (MSBuild tasks), ``tools/``,
``tasks/`` and ``Sdk/`` (compiler toolsets and MSBuild SDK packages), ``analyzers/``, or the package root
(MSBuild weavers such as Fody 2's); executables in ``tools/``, ``tasks/``, ``Sdk/``, ``build*/`` and
``runtimes/``; scripts in ``tools/`` (the only folder NuGet runs PowerShell from), and
JavaScript also in the web-asset folders (``content/``, ``contentFiles/``, ``staticwebassets/``,
``wwwroot/``, ``lib/``); a PowerShell module package (``.psd1`` at the root) may hold PowerShell files
anywhere. Anything else is **NS4001** (executable or DLL) or **NS4002** (script). The 20
real packages in ``shared/vectors`` (EntityFramework's ``tools/migrate.exe``, ILMerge, Fody's root DLLs,
jQuery's ``Content/Scripts/*.js``, psake's ``tools/psake/*.cmd``) raise neither.

Per PE file:

* **NS4003** (note) a native PE (no CLR header), with its machine type (x86, x64, ARM64...), however large.
* **NS4005** (note) an ELF or Mach-O file (``.so``, ``.dylib``, ``.node``, no extension...) outside
  ``runtimes/<rid>/native/`` (where NuGet's layout puts native libraries: not reported), with format, kind and
  architecture from its first bytes.
* **NS4004** (warning) a file named as PE that cannot be parsed (bad MZ/PE headers or metadata); a large
  assembly whose metadata ends beyond :data:`MAX_PE_BYTES` is NS9004 "not analysed".
* **NS4010** (warning) a module initializer: a static constructor (``.cctor``) on the ``<Module>`` type
  (row 1 of the TypeDef table, ECMA-335 II.10.8): code that runs when the assembly loads, the
  IL-weaving attack's hook (C# 9's ``[ModuleInitializer]`` compiles to it too).
* **NS4011** (warning; error when a memory writer is combined with a remote-thread, APC, thread-context
  or section-unmapping import: the injection and hollowing shapes) P/Invoke declarations (ImplMap table)
  matching the rule's ``pinvoke:`` patterns (``kernel32!VirtualAllocEx``...).
* **NS4012** (warning) member references to an HTTP download API (``WebClient.DownloadFile``...,
  ``HttpClient.GetByteArrayAsync``/``GetStreamAsync``; not the generic ``SendAsync`` of API clients)
  together with ``Process.Start``/``ProcessStartInfo`` or ``Assembly.Load(byte[])`` in the same assembly,
  with the references and any URL literals (``#US`` heap) as evidence.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from nuseal.scan.clrmeta import Metadata, MetadataError, PeFile
from nuseal.scan.model import Finding, Location, Severity
from nuseal.scan.package import EntryReadError, PackageProblem

if TYPE_CHECKING:
    from nuseal.scan.engine import Analyser, ScanContext
    from nuseal.scan.package import ScanPackage
    from nuseal.scan.rules import RuleSet

__all__ = [
    "HEADER_BYTES",
    "MAX_CACHED_ASSEMBLIES",
    "MAX_PE_BYTES",
    "MAX_PE_BYTES_OPTION",
    "NativeInfo",
    "PeInfo",
    "analysers",
    "inspect_native",
    "inspect_pe",
    "inspect_pe_prefix",
    "placement",
]

#: Largest PE file read whole (bytes); a larger one is read only as far as needed: its headers (a native file:
#: NS4003 with its architecture), and a .NET assembly up to the end of its metadata if that is within this bound.
MAX_PE_BYTES = 64 << 20
#: :class:`~nuseal.scan.engine.ScanContext` option replacing :data:`MAX_PE_BYTES` (a decimal number of bytes).
MAX_PE_BYTES_OPTION = "compiled.max_pe_bytes"
#: Bytes read first from a large PE file, or from a possible ELF/Mach-O file: the headers and section table.
HEADER_BYTES = 64 << 10
#: Assemblies whose analysis is remembered by SHA-256 per scanner (the same DLL in many packages and versions).
MAX_CACHED_ASSEMBLIES = 4096

PE_EXTENSIONS = (".dll", ".exe", ".winmd", ".sys", ".scr", ".com", ".ocx", ".cpl", ".drv", ".efi", ".pif")
EXE_EXTENSIONS = (".exe", ".scr", ".com", ".pif", ".cpl")
SCRIPT_EXTENSIONS = (
    ".bat",
    ".cmd",
    ".vbs",
    ".vbe",
    ".wsf",
    ".wsh",
    ".hta",
    ".js",
    ".jse",
    ".mjs",
    ".sh",
    ".ps1",
    ".psm1",
    ".psd1",
)
_DLL_FOLDERS = frozenset(
    {
        "lib",
        "ref",
        "runtimes",
        "build",
        "buildtransitive",
        "buildmultitargeting",
        "tools",
        "tasks",
        "sdk",
        "analyzers",
        "netclassicweaver",
        "netstandardweaver",
    }
)
_EXE_FOLDERS = frozenset({"tools", "tasks", "sdk", "build", "buildtransitive", "buildmultitargeting", "runtimes"})
_WEB_FOLDERS = frozenset({"content", "contentfiles", "staticwebassets", "wwwroot", "lib"})
_JS_EXTENSIONS = (".js", ".mjs")

#: MemberRefParent coded index (ECMA-335 II.24.2.6): 3 tag bits, 1 = TypeRef.
_MEMBERREF_PARENT_TYPEREF = 1
_MEMORY_WRITERS = frozenset({"writeprocessmemory", "ntwritevirtualmemory", "zwwritevirtualmemory"})
_EXECUTORS = frozenset(
    {
        "createremotethread",
        "createremotethreadex",
        "ntcreatethreadex",
        "rtlcreateuserthread",
        "queueuserapc",
        "ntqueueapcthread",
        "setthreadcontext",
        "ntunmapviewofsection",
        "zwunmapviewofsection",
    }
)
_DOWNLOAD_API = {
    "System.Net.WebClient": frozenset(
        {
            "DownloadFile",
            "DownloadFileAsync",
            "DownloadFileTaskAsync",
            "DownloadData",
            "DownloadDataAsync",
            "DownloadDataTaskAsync",
            "DownloadString",
            "DownloadStringAsync",
            "DownloadStringTaskAsync",
            "OpenRead",
        }
    ),
    # Only the calls that fetch a payload whole: GetAsync/SendAsync/GetStringAsync are every API client's
    # (MSAL opens a browser with Process.Start and talks HTTP with SendAsync: not a downloader).
    "System.Net.Http.HttpClient": frozenset({"GetByteArrayAsync", "GetStreamAsync"}),
}
_EXEC_API = {
    "System.Diagnostics.Process": frozenset({"Start"}),
    "System.Diagnostics.ProcessStartInfo": frozenset({".ctor"}),
}
_WANTED_TYPES = frozenset(set(_DOWNLOAD_API) | set(_EXEC_API) | {"System.Reflection.Assembly"})
_WANTED_NAMESPACES = frozenset(name.rpartition(".")[0] for name in _WANTED_TYPES)
_URL_UTF16 = re.compile(rb"h\x00t\x00t\x00p\x00(?:s\x00)?:\x00/\x00/\x00(?:[\x21-\x7e]\x00){3,120}")


def placement(path: str, *, powershell_module: bool = False) -> str | None:
    """The placement rule ``path`` breaks (``"NS4001"`` or ``"NS4002"``), or ``None`` (see the module docstring).

    ``powershell_module``: the package is a PowerShell module (a ``.psd1`` manifest at its root, as PowerShell
    Gallery packages are): its PowerShell files are the product, not hidden scripts.
    """
    low = path.lower()
    if powershell_module and low.endswith((".ps1", ".psm1", ".psd1", ".ps1xml")):
        return None
    parts = low.split("/")
    top = parts[0] if len(parts) > 1 else ""
    if low.endswith(EXE_EXTENSIONS):
        return None if top in _EXE_FOLDERS else "NS4001"
    if low.endswith((".dll", ".winmd")):
        return None if top == "" or top in _DLL_FOLDERS else "NS4001"
    if low.endswith(SCRIPT_EXTENSIONS):
        if top == "tools":
            return None
        if low.endswith(_JS_EXTENSIONS) and top in _WEB_FOLDERS:
            return None
        return "NS4002"
    return None


@dataclass
class PeInfo:
    """What :func:`inspect_pe` learnt from one file."""

    machine: str = "unknown"
    is_dotnet: bool = False
    #: Why the file could not be parsed (``None`` when it could).
    malformed: str | None = None
    #: Why a large assembly's metadata was not read (beyond the read bound), else ``None``.
    not_analysed: str | None = None
    module_initializer: bool = False
    pinvokes: list[str] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    executes: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


def inspect_pe(data: bytes, pinvoke_patterns: Sequence[re.Pattern[str]] = ()) -> PeInfo:
    """Read ``data`` (a whole PE file) without loading it; never raises for bad bytes (``malformed`` says why).

    ``pinvoke_patterns`` are matched (``search``) against ``module!function`` (module lower-cased, without
    ``.dll``) of every P/Invoke declaration; matches land in :attr:`PeInfo.pinvokes`.
    """
    return inspect_pe_prefix(lambda _size: data, len(data), pinvoke_patterns)


def inspect_pe_prefix(
    fetch: Callable[[int], bytes],
    total: int,
    pinvoke_patterns: Sequence[re.Pattern[str]] = (),
    *,
    max_read: int = MAX_PE_BYTES,
) -> PeInfo:
    """As :func:`inspect_pe` for a file of ``total`` bytes read only as far as needed: ``fetch(n)`` returns its
    first ``n`` bytes (or all of it). Reads the first :data:`HEADER_BYTES` (PE headers and section table), then,
    for a .NET assembly, up to the end of the CLI header and of the metadata, never more than ``max_read``
    bytes: metadata ending beyond that sets :attr:`PeInfo.not_analysed`."""
    info = PeInfo()
    try:
        data = fetch(min(total, HEADER_BYTES, max_read))
        pe = PeFile(data)
        info.machine, info.is_dotnet = pe.machine, pe.is_dotnet
        if not pe.is_dotnet:
            return info
        needs: tuple[Callable[[], int], ...] = (pe.cli_header_end, lambda: sum(pe.metadata_span()))
        for need in needs:
            end = need()
            if end > len(data) and len(data) < total:
                if end > max_read:
                    info.not_analysed = f"its .NET metadata ends at byte {end}; at most {max_read} bytes are read"
                    return info
                data = fetch(end)
                pe.data = data
        at, size = pe.metadata_span()
        _read_metadata(Metadata(data, at, size), info, pinvoke_patterns)
    except MetadataError as exc:
        info.malformed = str(exc) if not info.is_dotnet else f"invalid .NET metadata ({exc})"
    except (struct.error, IndexError, ValueError) as exc:  # a defect in the bounds checks: still never a crash
        info.malformed = f"invalid .NET metadata ({type(exc).__name__}: {str(exc)[:120]})"
    return info


def _read_metadata(md: Metadata, info: PeInfo, pinvoke_patterns: Sequence[re.Pattern[str]]) -> None:
    # Module initializer: <Module> is TypeDef row 1 (II.10.8); its methods run from its MethodList to the next
    # type's (or the end of MethodDef), through MethodPtr when an unoptimized (#-) stream has one (II.22.28).
    if md.count("TypeDef") and md.string(md.row("TypeDef", 1)["TypeName"]) == "<Module>":
        methods = md.count("MethodDef")
        first = md.row("TypeDef", 1)["MethodList"]
        end = md.row("TypeDef", 2)["MethodList"] if md.count("TypeDef") > 1 else methods + 1
        indirect = md.count("MethodPtr") > 0
        for i in range(max(first, 1), min(end, methods + 1)):
            index = md.row("MethodPtr", i)["Method"] if indirect else i
            if 1 <= index <= methods and md.string(md.row("MethodDef", index)["Name"]) == ".cctor":
                info.module_initializer = True
                break
    if md.count("ImplMap"):
        module_names = [md.string(n).lower().removesuffix(".dll") for (n,) in md.columns("ModuleRef", "Name")]
        for name_at, scope in md.columns("ImplMap", "ImportName", "ImportScope"):
            module = module_names[scope - 1] if 1 <= scope <= len(module_names) else "?"
            target = f"{module}!{md.string(name_at)}"
            if any(p.search(target) for p in pinvoke_patterns) and target not in info.pinvokes:
                info.pinvokes.append(target)
    typerefs = md.columns("TypeRef", "TypeName", "TypeNamespace")
    # Namespaces repeat (one #Strings entry each): decide per distinct namespace, then look at its rows only.
    ours = {ns for ns in {ns for _name, ns in typerefs} if md.string(ns) in _WANTED_NAMESPACES}
    if not ours:
        return
    # MemberRef's parent is a MemberRefParent coded index (II.24.2.6): row << 3 | 1 for a TypeRef.
    wanted: dict[int, str] = {}
    for i, (name_at, ns_at) in enumerate(typerefs, start=1):
        if ns_at in ours:
            full = f"{md.string(ns_at)}.{md.string(name_at)}"
            if full in _WANTED_TYPES:
                wanted[i << 3 | _MEMBERREF_PARENT_TYPEREF] = full
    if not wanted:
        return
    for coded, name_at, sig_at in [r for r in md.columns("MemberRef", "Class", "Name", "Signature") if r[0] in wanted]:
        owner = wanted[coded]
        name = md.string(name_at)
        member = f"{owner}::{name}"
        if name in _DOWNLOAD_API.get(owner, ()):
            info.downloads.append(member)
        elif name in _EXEC_API.get(owner, ()):
            info.executes.append(member)
        elif owner == "System.Reflection.Assembly" and name == "Load" and b"\x1d\x05" in md.blob_bytes(sig_at):
            info.executes.append(member + "(byte[])")  # SZARRAY of U1 (II.23.1.16): Load(byte[])
    if info.downloads and info.executes:
        # URL literals are user strings (#US heap, II.24.2.4): UTF-16LE.
        for m in _URL_UTF16.finditer(bytes(md.user_strings)):
            url = m.group().decode("utf-16-le")
            if url not in info.urls:
                info.urls.append(url)
            if len(info.urls) >= 3:
                break


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def analysers(context: ScanContext) -> Sequence[Analyser]:
    """The engine's entry point (see :mod:`nuseal.scan.engine`): one analyser per scanner, remembering what it
    learnt of each assembly by SHA-256 (at most :data:`MAX_CACHED_ASSEMBLIES`), so the same DLL shipped in many
    packages or versions is parsed once per run. Option :data:`MAX_PE_BYTES_OPTION` (bytes) replaces
    :data:`MAX_PE_BYTES`."""
    option = context.option(MAX_PE_BYTES_OPTION)
    max_read = int(option) if option and option.isdigit() else MAX_PE_BYTES
    cache: dict[tuple[str, tuple[str, ...]], PeInfo] = {}

    def analyse_cached(pkg: ScanPackage, rules: RuleSet) -> Iterator[Finding]:
        return analyse(pkg, rules, cache=cache, max_read=max_read)

    return (analyse_cached,)


def _is_native_folder(low: str) -> bool:
    """``runtimes/<rid>/native/...``: where NuGet's layout puts native libraries (docs "Supporting multiple
    .NET versions" / NuGet.Client ``ManagedCodeConventions`` ``NativeLibrary``)."""
    parts = low.split("/")
    return len(parts) >= 4 and parts[0] == "runtimes" and parts[2] == "native"


def _maybe_native(low: str) -> bool:
    """Names an ELF or Mach-O binary may have: ``.so``/``.so.N``, ``.dylib``, ``.bundle``, ``.node``, ``.o``, or
    no extension (executables)."""
    name = low.rpartition("/")[2]
    if _SO_NAME.search(name) or name.endswith(_NATIVE_EXTENSIONS):
        return True
    return "." not in name.lstrip(".") and bool(name)


def analyse(
    pkg: ScanPackage,
    rules: RuleSet,
    *,
    cache: dict[tuple[str, tuple[str, ...]], PeInfo] | None = None,
    max_read: int = MAX_PE_BYTES,
) -> Iterator[Finding]:
    """Findings NS4001-NS4012 for ``pkg`` (see the module docstring). ``cache`` maps ``(SHA-256, P/Invoke
    patterns)`` to what an assembly revealed (filled here; bounded by :data:`MAX_CACHED_ASSEMBLIES`); PE files
    over ``max_read`` bytes are read only as far as needed, never beyond ``max_read``."""
    patterns = [p.regex for p in rules.patterns("compiled", "pinvoke") if p.rule_id == "NS4011"]
    key_patterns = tuple(p.pattern for p in patterns)
    paths = pkg.content_paths()
    module = any("/" not in p and p.lower().endswith(".psd1") for p in paths)
    for path in paths:
        low = path.lower()
        broken = placement(path, powershell_module=module)
        is_pe = low.endswith(PE_EXTENSIONS)
        digest = None
        if broken is not None and rules.enabled(broken):
            digest = pkg.sha256(path, limit=max_read)
            kind = "executable" if broken == "NS4001" else "script"
            yield rules.finding(
                broken,
                f"{rules.get(broken).title}: {kind} {path}",
                pkg.ref,
                location=Location(path=path),
                evidence=path,
                file_sha256=digest,
            )
        if not is_pe:
            if rules.enabled("NS4005") and not _is_native_folder(low) and _maybe_native(low):
                yield from _native_findings(pkg, rules, path)
            continue
        if low.startswith("ref/"):
            continue  # reference assemblies: metadata for the compiler, never loaded or run
        size = pkg.sizes.get(path, 0)
        if size > max_read:
            info = inspect_pe_prefix(partial(pkg.read_prefix, path), size, patterns, max_read=max_read)
            if info.not_analysed is not None:
                pkg.problems.append(PackageProblem("NS9004", f"not analysed: {path}: {info.not_analysed}", path))
                continue
            yield from _pe_findings(pkg, rules, path, info, digest, size=size)
            continue
        try:
            data = pkg.read(path, limit=max_read)
        except EntryReadError as exc:
            pkg.read_problem(exc)
            continue
        digest = digest or pkg.sha256(path, limit=max_read)
        info_key = (digest or "", key_patterns)
        cached = cache.get(info_key) if cache is not None and digest else None
        if cached is None:
            cached = inspect_pe(data, patterns)
            if cache is not None and digest:
                if len(cache) >= MAX_CACHED_ASSEMBLIES:
                    cache.clear()
                cache[info_key] = cached
        yield from _pe_findings(pkg, rules, path, cached, digest)


@dataclass(frozen=True)
class NativeInfo:
    """An ELF or Mach-O file's format, architecture and kind, from its first bytes."""

    format: str
    machine: str
    kind: str


_ELF_MACHINES = {
    3: "x86",
    62: "x64",
    40: "ARM",
    183: "ARM64",
    243: "RISC-V",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC 64",
    22: "s390x",
    258: "LoongArch",
}
_ELF_TYPES = {1: "relocatable object", 2: "executable", 3: "shared object or executable", 4: "core dump"}
_MACHO_CPUS = {7: "x86", 0x01000007: "x64", 12: "ARM", 0x0100000C: "ARM64", 0x0200000C: "ARM64_32", 18: "PowerPC"}
_MACHO_TYPES = {1: "object", 2: "executable", 6: "dynamic library", 8: "bundle"}
_MACHO_MAGICS = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
_SO_NAME = re.compile(r"\.so(\.\d+)*$")
_NATIVE_EXTENSIONS = (".dylib", ".bundle", ".node", ".o")
#: Fat Mach-O and Java class files share the magic 0xCAFEBABE; a fat header's architecture count is small, a
#: class file's version (read as the same field) is 45 or more.
_MAX_FAT_ARCHES = 30


def inspect_native(head: bytes) -> NativeInfo | None:
    """The ELF (System V ABI gABI "ELF Header") or Mach-O (``<mach-o/loader.h>``, ``<mach-o/fat.h>``) header in
    ``head`` (a file's first bytes), or ``None`` when it is neither."""
    if head[:4] == b"\x7fELF" and len(head) >= 20:
        order = "<" if head[5] != 2 else ">"
        etype, machine = struct.unpack_from(order + "HH", head, 16)
        bits = {1: "32-bit", 2: "64-bit"}.get(head[4], "")
        name = _ELF_MACHINES.get(machine, f"machine {machine}")
        return NativeInfo("ELF", f"{name} {bits}".strip(), _ELF_TYPES.get(etype, f"type {etype}"))
    if len(head) >= 16 and head[:4] in _MACHO_MAGICS:
        order = ">" if head[:2] == b"\xfe\xed" else "<"
        cpu, _sub, ftype = struct.unpack_from(order + "III", head, 4)
        machine = _MACHO_CPUS.get(cpu, f"cpu 0x{cpu:x}")
        return NativeInfo("Mach-O", machine, _MACHO_TYPES.get(ftype, f"type {ftype}"))
    if len(head) >= 8 and head[:4] in (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"):
        (count,) = struct.unpack_from(">I", head, 4)
        if not 0 < count <= _MAX_FAT_ARCHES:
            return None
        width = 20 if head[3] == 0xBE else 32
        cpus = []
        for i in range(count):
            at = 8 + width * i
            if at + 4 > len(head):
                break
            (cpu,) = struct.unpack_from(">I", head, at)
            cpus.append(_MACHO_CPUS.get(cpu, f"cpu 0x{cpu:x}"))
        return NativeInfo("Mach-O", "universal (" + ", ".join(cpus) + ")", "fat binary")
    return None


def _native_findings(pkg: ScanPackage, rules: RuleSet, path: str) -> Iterator[Finding]:
    try:
        head = pkg.read_prefix(path, 4096)
    except EntryReadError:
        return  # not a file we know to be native: unreadable data is the placement/other analysers' concern
    info = inspect_native(head)
    if info is None:
        return
    yield rules.finding(
        "NS4005",
        f"native code: {path} is {'an' if info.format == 'ELF' else 'a'} {info.format} {info.kind} for {info.machine}",
        pkg.ref,
        location=Location(path=path),
        evidence=f"{path}: {info.format} {info.kind}, {info.machine}",
        file_sha256=pkg.sha256(path, limit=MAX_PE_BYTES),
    )


def _pe_findings(
    pkg: ScanPackage, rules: RuleSet, path: str, info: PeInfo, digest: str | None, *, size: int | None = None
) -> Iterator[Finding]:
    where = Location(path=path)
    read = f" ({size / (1 << 20):.0f} MB; headers read)" if size is not None else ""
    if info.malformed is not None:
        yield rules.finding(
            "NS4004",
            f"{path} cannot be parsed as a PE/.NET file: {info.malformed}",
            pkg.ref,
            location=where,
            evidence=info.malformed,
            file_sha256=digest,
        )
        return
    if not info.is_dotnet:
        yield rules.finding(
            "NS4003",
            f"native code: {path} is a native {info.machine} PE file{read}",
            pkg.ref,
            location=where,
            evidence=f"{path}: native {info.machine}",
            file_sha256=digest,
        )
        return
    if info.module_initializer:
        yield rules.finding(
            "NS4010",
            f"{path} has a module initializer (<Module>::.cctor): it runs code as soon as the assembly is loaded",
            pkg.ref,
            location=where,
            evidence="<Module>::.cctor",
            file_sha256=digest,
        )
    if info.pinvokes:
        names = {p.rpartition("!")[2].lower() for p in info.pinvokes}
        injection = bool(names & _MEMORY_WRITERS) and bool(names & _EXECUTORS)
        yield rules.finding(
            "NS4011",
            f"{path} declares P/Invoke imports used for process injection"
            + (" (a memory writer with a remote execution primitive: the injection shape)" if injection else ""),
            pkg.ref,
            location=where,
            evidence=", ".join(_dedupe(info.pinvokes)),
            file_sha256=digest,
            severity=Severity.ERROR if injection else None,
        )
    if info.downloads and info.executes:
        refs = _dedupe(info.downloads)[:3] + _dedupe(info.executes)[:2]
        yield rules.finding(
            "NS4012",
            f"{path} references a download API and a way to run what it fetched",
            pkg.ref,
            location=where,
            evidence="; ".join(refs + info.urls[:2]),
            file_sha256=digest,
        )
