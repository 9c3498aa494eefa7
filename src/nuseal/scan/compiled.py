"""Compiled code and scripts in a package: where they sit, and what .NET assemblies declare.

Nothing is loaded or run: PE headers are read from the bytes, .NET metadata with ``dnfile`` (a pure-Python
ECMA-335 metadata parser over ``pefile``), each file bounded by :data:`MAX_PE_BYTES`.

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

* **NS4003** (note) a native PE (no CLR header), with its machine type (x86, x64, ARM64...).
* **NS4004** (warning) a file named or shaped as PE that cannot be parsed (bad MZ/PE headers, metadata
  dnfile rejects, over :data:`MAX_PE_BYTES` -- the latter reported as NS9004 "not analysed").
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dnfile

from nuseal.scan.model import Finding, Location, Severity
from nuseal.scan.package import EntryReadError

if TYPE_CHECKING:
    from nuseal.scan.engine import Analyser, ScanContext
    from nuseal.scan.package import ScanPackage
    from nuseal.scan.rules import RuleSet

__all__ = ["MAX_PE_BYTES", "PeInfo", "analysers", "inspect_pe", "placement"]

#: Largest PE file analysed (bytes); larger ones are reported as not analysed (NS9004).
MAX_PE_BYTES = 64 << 20

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

_MACHINES = {
    0x014C: "x86",
    0x8664: "x64",
    0xAA64: "ARM64",
    0x01C0: "ARM",
    0x01C4: "ARMv7 (Thumb-2)",
    0x0200: "IA-64",
    0xA641: "ARM64EC",
    0x5064: "RISC-V 64",
}
_CLR_DIRECTORY = 14
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
    module_initializer: bool = False
    pinvokes: list[str] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    executes: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


def _headers(data: bytes) -> tuple[str, bool] | str:
    """``(machine, has CLR header)`` from the MZ/PE headers, or the reason they are malformed."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        return "no MZ header"
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if lfanew + 24 > len(data) or data[lfanew : lfanew + 4] != b"PE\x00\x00":
        return "no PE signature at e_lfanew"
    machine, _sections, _ts, _sym, _nsym, opt_size, _chars = struct.unpack_from("<HHIIIHH", data, lfanew + 4)
    opt = lfanew + 24
    if opt_size < 2 or opt + opt_size > len(data):
        return "optional header outside the file"
    (magic,) = struct.unpack_from("<H", data, opt)
    if magic == 0x10B:
        dirs_at, count_at = opt + 96, opt + 92
    elif magic == 0x20B:
        dirs_at, count_at = opt + 112, opt + 108
    else:
        return f"unknown optional header magic 0x{magic:x}"
    name = _MACHINES.get(machine, f"machine 0x{machine:04x}")
    if count_at + 4 > opt + opt_size:
        return name, False
    (count,) = struct.unpack_from("<I", data, count_at)
    clr = False
    if count > _CLR_DIRECTORY and dirs_at + 8 * (_CLR_DIRECTORY + 1) <= opt + opt_size:
        rva, size = struct.unpack_from("<II", data, dirs_at + 8 * _CLR_DIRECTORY)
        clr = rva != 0 and size != 0
    return name, clr


def inspect_pe(data: bytes, pinvoke_patterns: Sequence[re.Pattern[str]] = ()) -> PeInfo:
    """Read ``data`` (a whole PE file) without loading it; never raises for bad bytes (``malformed`` says why).

    ``pinvoke_patterns`` are matched (``search``) against ``module!function`` (module lower-cased, without
    ``.dll``) of every P/Invoke declaration; matches land in :attr:`PeInfo.pinvokes`.
    """
    info = PeInfo()
    head = _headers(data)
    if isinstance(head, str):
        info.malformed = head
        return info
    info.machine, info.is_dotnet = head
    if not info.is_dotnet:
        return info
    try:
        _read_metadata(data, info, pinvoke_patterns)
    except Exception as exc:  # dnfile/pefile raise many types on hostile input; any of them means malformed
        info.malformed = f"invalid .NET metadata ({type(exc).__name__}: {str(exc)[:120]})"
    return info


def _text(value: Any) -> str:
    if value is None:
        return ""
    inner = getattr(value, "value", value)
    if isinstance(inner, bytes):
        return inner.decode("utf-8", "replace")
    return str(inner)


def _read_metadata(data: bytes, info: PeInfo, pinvoke_patterns: Sequence[re.Pattern[str]]) -> None:
    # Not pe.close() afterwards: for in-memory data it only runs gc.collect() (half the analyser's time).
    pe: Any = dnfile.dnPE(data=data, fast_load=True, clr_lazy_load=True)  # type: ignore[no-untyped-call]
    pe.parse_data_directories(directories=[_CLR_DIRECTORY])
    net: Any = pe.net
    if net is None or net.mdtables is None:
        raise ValueError("CLR header without metadata tables")
    md = net.mdtables
    # Raw struct indices only: dnfile's resolved references (MethodList, ImportScope, Class) make it
    # parse every table of the assembly (seconds for a large one).
    typedefs, methods = md.TypeDef, md.MethodDef
    if typedefs is not None and typedefs.num_rows > 0 and _text(typedefs[0].TypeName) == "<Module>":
        first = typedefs[0].struct.MethodList_Index
        end = typedefs[1].struct.MethodList_Index if typedefs.num_rows > 1 else (methods.num_rows + 1 if methods else 1)
        if methods is not None:
            for i in range(max(first, 1), min(end, methods.num_rows + 1)):
                if _text(methods[i - 1].Name) == ".cctor":
                    info.module_initializer = True
                    break
    modulerefs = md.ModuleRef
    module_names = [_text(r.Name).lower().removesuffix(".dll") for r in modulerefs] if modulerefs else []
    for imp in md.ImplMap or ():
        scope = imp.struct.ImportScope_Index - 1
        module = module_names[scope] if 0 <= scope < len(module_names) else "?"
        target = f"{module}!{_text(imp.ImportName)}"
        if any(p.search(target) for p in pinvoke_patterns) and target not in info.pinvokes:
            info.pinvokes.append(target)
    strings = net.strings
    if strings is None:
        return

    def string(index: int) -> str:
        return str(strings.get_str(index) or "")

    wanted = set(_DOWNLOAD_API) | set(_EXEC_API) | {"System.Reflection.Assembly"}
    wanted_rows: dict[int, str] = {}
    namespaces = {name.rpartition(".")[0] for name in wanted}
    seen: dict[int, bool] = {}  # namespace string index -> one of ours (namespaces repeat a lot)
    for i, (name_at, ns_at) in enumerate(
        _raw_rows(data, md.TypeRef, ("TypeName_StringIndex", "TypeNamespace_StringIndex"))
    ):
        ours = seen.get(ns_at)
        if ours is None:
            ours = seen[ns_at] = string(ns_at) in namespaces
        if ours:
            full = f"{string(ns_at)}.{string(name_at)}"
            if full in wanted:
                wanted_rows[i + 1] = full
    if not wanted_rows:
        return
    member_refs: Any = md.MemberRef
    for i, (coded,) in enumerate(_raw_rows(data, member_refs, ("Class_CodedIndex",))):
        if coded & 0b111 != _MEMBERREF_PARENT_TYPEREF:
            continue
        owner = wanted_rows.get(coded >> 3)
        if owner is None:
            continue
        ref = member_refs[i]
        name = _text(ref.Name)
        member = f"{owner}::{name}"
        if name in _DOWNLOAD_API.get(owner, ()):
            info.downloads.append(member)
        elif name in _EXEC_API.get(owner, ()):
            info.executes.append(member)
        elif owner == "System.Reflection.Assembly" and name == "Load":
            sig = getattr(ref.Signature, "value", b"") or b""
            if b"\x1d\x05" in bytes(sig):  # SZARRAY of U1: Load(byte[])
                info.executes.append(member + "(byte[])")
    if info.downloads and info.executes:
        for m in _URL_UTF16.finditer(data):
            url = m.group().decode("utf-16-le")
            if url not in info.urls:
                info.urls.append(url)
            if len(info.urls) >= 3:
                break


def _raw_rows(data: bytes, table: Any, fields: tuple[str, ...]) -> list[tuple[int, ...]]:
    """``fields`` of every row of a dnfile metadata ``table``, unpacked straight from the file's bytes
    (dnfile's row objects cost ~50 us each; a large assembly has thousands of member references)."""
    if table is None or not table.num_rows:
        return []
    sample = table[0].struct
    fmt, keys = sample.__format_str__, [k[0] for k in sample.__keys__]
    size = struct.calcsize(fmt)
    start = table.file_offset
    if size != table.row_size or start is None or start + size * table.num_rows > len(data):
        raise ValueError(f"metadata table {table.name} does not fit the file")
    positions = [keys.index(f) for f in fields]
    rows = struct.iter_unpack(fmt, data[start : start + size * table.num_rows])
    return [tuple(row[p] for p in positions) for row in rows]


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def analysers(context: ScanContext) -> Sequence[Analyser]:
    """The engine's entry point (see :mod:`nuseal.scan.engine`): one analyser, no context needed."""
    del context
    return (analyse,)


def analyse(pkg: ScanPackage, rules: RuleSet) -> Iterator[Finding]:
    """Findings NS4001-NS4012 for ``pkg`` (see the module docstring)."""
    patterns = [p.regex for p in rules.patterns("compiled", "pinvoke") if p.rule_id == "NS4011"]
    paths = pkg.content_paths()
    module = any("/" not in p and p.lower().endswith(".psd1") for p in paths)
    for path in paths:
        low = path.lower()
        broken = placement(path, powershell_module=module)
        is_pe = low.endswith(PE_EXTENSIONS)
        if broken is None and not is_pe:
            continue
        digest = None
        if broken is not None and rules.enabled(broken):
            digest = pkg.sha256(path, limit=MAX_PE_BYTES)
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
            continue
        try:
            data = pkg.read(path, limit=MAX_PE_BYTES)
        except EntryReadError as exc:
            pkg.read_problem(exc)
            continue
        digest = digest or pkg.sha256(path, limit=MAX_PE_BYTES)
        yield from _pe_findings(pkg, rules, path, inspect_pe(data, patterns), digest)


def _pe_findings(pkg: ScanPackage, rules: RuleSet, path: str, info: PeInfo, digest: str | None) -> Iterator[Finding]:
    where = Location(path=path)
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
            f"native code: {path} is a native {info.machine} PE file",
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
