"""Seed corpora for the fuzz targets, built at run time from the real vectors (nothing large is committed).

Sources (``../shared/vectors`` relative to the repository root, every ``*.nupkg`` under it):

* ``zip_reader``: the real packages no larger than the target's ``MAX_LEN`` as they are, and a miniature
  of every package: the same entry names in the same order, the nuspec kept whole, other entries cut to
  64 bytes, ``.signature.p7s`` stored and last as NuGet writes it.
* ``signature``: every package's ``.signature.p7s``.
* ``timestamp``: every RFC 3161 token on those signatures (primary and repository countersignature).
* ``nuspec``: every package's nuspec.
* ``nuget_config``: hand-made nuget.config files (trustedSigners, signatureValidationMode, clear, owners).
* ``version``: hand-made version strings and every vector's nuspec ``<version>``.
* ``version_range``: hand-made ranges (floating ones included) and every vector's dependency ``version``.
* ``frameworks``: hand-made target frameworks (short and full names) and every vector's nuspec ``targetFramework``
  values and ``lib/``/``ref/`` folder names.
* ``powershell`` / ``msbuild`` (when the scan engine exists): the ``.ps1``/``.psm1``/``.psd1`` and
  ``.props``/``.targets`` files inside the packages.
* ``clrmeta``: the ``.dll``/``.exe`` files inside the packages (real .NET assemblies and native PE files).
* ``v3documents`` / ``osv``: hand-made V3 documents and OSV records in nuget.org's and the advisory databases' shapes.

Also writes a libFuzzer dictionary per target where one helps (XML and DER tokens).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS = REPO_ROOT.parent / "shared" / "vectors"
SIGNATURE_ENTRY = ".signature.p7s"

_FINGERPRINT = "3F9001EA83C560D712C24CF213C3D312CB3BFF51EE89435D3430BD06B5D0EECE"

NUGET_CONFIGS = (
    f"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="signatureValidationMode" value="require" />
  </config>
  <trustedSigners>
    <author name="microsoft">
      <certificate fingerprint="{_FINGERPRINT}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
    </author>
    <repository name="nuget.org" serviceIndex="https://api.nuget.org/v3/index.json">
      <certificate fingerprint="{_FINGERPRINT}" hashAlgorithm="SHA384" allowUntrustedRoot="true" />
      <owners>microsoft; aspnet ;nuget;;</owners>
    </repository>
  </trustedSigners>
</configuration>
""",
    "<configuration><config><clear/><add key='SignatureValidationMode' value='Accept'/></config></configuration>",
    f"""<configuration xmlns="urn:x"><trustedSigners><clear/>
<author name="a"><certificate fingerprint="{_FINGERPRINT.lower()}" hashAlgorithm="sha512"/></author>
<author name="a"><certificate fingerprint="{_FINGERPRINT}" hashAlgorithm="SHA256" allowUntrustedRoot="TRUE"/>
</author></trustedSigners><packageSources><add key="x" value="https://127.0.0.1/v3/index.json"/></packageSources>
</configuration>""",
    "<configuration><trustedSigners><repository name='r' serviceIndex='https://x/'><owners></owners>"
    "</repository></trustedSigners></configuration>",
)

VERSIONS = (
    "1.0",
    "1.0.0",
    "1.0.0.0",
    "1.2.3.4",
    "01.002.0003",
    "1.0.0-beta",
    "1.0.0-beta.1",
    "1.0.0-Beta.2+meta.01",
    "1.0.0+build",
    "2147483647.0.0",
    "1.0.0-alpha-1.x-y",
    " 3.1.0-rc.1 ",
    "1.0.0-0.3.7",
    "4",
)

RANGES = (
    "1.0",
    "[1.0]",
    "(1.0,)",
    "(,1.0]",
    "[1.0,2.0)",
    "[1.0.0-beta, 2.0.0-rc.1+meta]",
    "1.*",
    "1.0.*",
    "1.0.0-*",
    "1.0.0-beta.*",
    "*",
    "*-*",
    "1.*-*",
    "[1.*, 2.0)",
    " ( , 3.0 ) ",
    "[1.0, 1.0]",
)

FRAMEWORKS = (
    "net462",
    "net8.0-windows10.0.19041",
    "netstandard2.0",
    "netcoreapp3.1",
    ".NETFramework,Version=v4.6.2,Profile=Client",
    ".NETPortable,Version=v0.0,Profile=Profile259",
    "portable-net45+win8+wpa81+wp8+monoandroid10",
    "sl4-wp71",
    "uap10.0.16299",
    "net%34%35",
    "dotnet5.6",
    "net6.0-android31.0",
)

#: V3 documents as nuget.org shapes them (service index, version list, RepositorySignatures, registrations).
V3_DOCUMENTS = (
    '{"version": "3.0.0", "resources": [{"@id": "https://api.nuget.org/v3-flatcontainer/", "@type":'
    ' "PackageBaseAddress/3.0.0"}, {"@id": "https://api.nuget.org/v3/registration5-gz-semver2/", "@type":'
    ' "RegistrationsBaseUrl/3.6.0"}, {"@id": "https://api.nuget.org/v3-index/repository-signatures/5.0.0/index.json",'
    ' "@type": "RepositorySignatures/5.0.0"}]}',
    '{"versions": ["1.0.0", "2.0.0-beta.1+build", "13.0.3"]}',
    '{"allRepositorySigned": true, "signingCertificates": [{"fingerprints": {"2.16.840.1.101.3.4.2.1":'
    ' "0e5f38f57dc1bcc806d8494f4f90fbcedd988b46760709cbeec6f4219aa6157d"}, "subject": "CN=NuGet.org Repository by'
    ' Microsoft", "issuer": "CN=DigiCert", "notBefore": "2018-04-10T00:00:00.0000000Z", "notAfter":'
    ' "2021-04-14T12:00:00.0000000Z", "contentUrl": "https://api.nuget.org/v3-index/repository-signatures/x.crt"}]}',
    '{"count": 1, "items": [{"@id": "https://f/reg/a/index.json#page/1.0.0/2.0.0", "lower": "1.0.0", "upper":'
    ' "2.0.0", "count": 1, "items": [{"@id": "https://f/reg/a/1.0.0.json", "packageContent": "https://f/a.1.0.0.nupkg",'
    ' "catalogEntry": {"id": "A", "version": "1.0.0", "listed": true, "published": "2020-01-01T00:00:00+00:00"}}]},'
    ' {"@id": "https://f/reg/a/page2.json", "lower": "3.0.0", "upper": "4.0.0", "count": 2}]}',
    '{"items": [{"@id": "x", "catalogEntry": {"id": "A", "version": "01.0", "listed": false, "published":'
    ' "1900-01-01T00:00:00Z"}}]}',
)

#: OSV records as GitHub advisories and OpenSSF malicious-packages write them (ecosystem NuGet).
OSV_RECORDS = (
    '{"id": "GHSA-5crp-9r3c-p9vr", "modified": "2024-02-01T00:00:00Z", "summary": "Improper handling",'
    ' "database_specific": {"severity": "HIGH"}, "affected": [{"package": {"ecosystem": "NuGet", "name":'
    ' "Newtonsoft.Json"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "13.0.1"}]}]}]}',
    '{"id": "MAL-2026-0001", "modified": "2026-11-01T00:00:00Z", "affected": [{"package": {"ecosystem": "NuGet",'
    ' "name": "Evil.Pkg"}, "versions": ["1.0.0", "1.0.1"]}]}',
    '{"id": "GHSA-aaaa-bbbb-cccc", "severity": [{"type": "CVSS_V3", "score":'
    ' "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}], "affected": [{"package": {"ecosystem": "NuGet", "name": "A"},'
    ' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0.0"}, {"last_affected": "2.0.0"},'
    ' {"introduced": "3.0.0"}, {"fixed": "3.0.0"}]}]}]}',
)

_XML_TOKENS = (
    '<?xml version="1.0"?>',
    "<!DOCTYPE",
    "<!ENTITY",
    "<![CDATA[",
    "]]>",
    "&amp;",
    "&#x0;",
    "xmlns=",
    "xmlns:x=",
    "<package>",
    "</package>",
    "<metadata>",
    "</metadata>",
    "<id>",
    "<version>",
    "<authors>",
    "<description>",
    "<dependencies>",
    "<group targetFramework=",
    "<dependency id=",
    "<packageTypes>",
    "<packageType name=",
    "<configuration>",
    "<config>",
    "<trustedSigners>",
    "<author name=",
    "<repository name=",
    "serviceIndex=",
    "<certificate ",
    "fingerprint=",
    "hashAlgorithm=",
    "allowUntrustedRoot=",
    "<owners>",
    "<clear/>",
    "<add key=",
    "value=",
    "signatureValidationMode",
)
_DER_TOKENS = (
    b"\x30\x80",
    b"\x30\x82",
    b"\x31\x82",
    b"\xa0\x82",
    b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02",
    b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x04",
    b"\x17\x0d",
    b"\x18\x0f",
    b"\x02\x01\x00",
    b"\x05\x00",
    b"\x04\x20",
    b"\x01\x01\xff",
    b"\x80\x00",
    b"\x00\x00",
)
_MSBUILD_TOKENS = (
    "<Project>", "</Project>", "<UsingTask TaskName=", 'TaskFactory="RoslynCodeTaskFactory"', "AssemblyFile=",
    "<Task>", '<Code Type="Fragment" Language="cs">', 'Source="tasks/Task.cs"', "<Exec Command=",
    '<Import Project="imported.targets"', "$(MSBuildThisFileDirectory)", "$([System.IO.File]::WriteAllText(",
    "$([System.Diagnostics.Process]::Start(", "<Target Name=", "BeforeTargets=", "InitialTargets=",
    "<DownloadFile SourceUrl=", "<PropertyGroup>", "$(Foo)", "**/*.targets", "..\\",
)  # fmt: skip
_POWERSHELL_TOKENS = (
    "-EncodedCommand ", "-enc ", "Invoke-Expression", "iex ", "DownloadString(", "New-Object Net.WebClient",
    "[Convert]::FromBase64String(", "& $", ". $", "@'\n", "\n'@", '@"\n', '\n"@', "<#", "#>", "`", "$(",
    "Start-Process ", "powershell.exe -e ", ". .\\common.ps1", "# SIG # Begin signature block",
)  # fmt: skip
_ZIP_TOKENS = (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b".signature.p7s")


def vector_packages(vectors: Path = VECTORS) -> list[Path]:
    """Every ``*.nupkg`` under ``vectors`` (sorted). Raises FileNotFoundError when the directory is missing."""
    if not vectors.is_dir():
        raise FileNotFoundError(f"the vectors directory {vectors} does not exist")
    return sorted(vectors.rglob("*.nupkg"))


def _nuspec_name(names: Iterable[str]) -> str | None:
    return next((n for n in names if "/" not in n and n.lower().endswith(".nuspec")), None)


def miniature(package: bytes) -> bytes:
    """The package with every entry but the nuspec cut to 64 bytes (at most 48 entries), the signature entry
    (cut too: the ZIP reader does not decode it) stored and last, as NuGet writes it."""
    source = zipfile.ZipFile(io.BytesIO(package))
    infos = source.infolist()
    keep = _nuspec_name(i.filename for i in infos)
    signature = [i for i in infos if i.filename == SIGNATURE_ENTRY]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in [i for i in infos if i.filename != SIGNATURE_ENTRY][:48]:
            data = source.read(info)
            target.writestr(info, data if info.filename == keep else data[:64], compress_type=info.compress_type)
        for info in signature:  # last, stored, as NuGet's signer writes it
            target.writestr(info, source.read(info)[:64], compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def _timestamp_tokens(p7s: bytes) -> Iterator[bytes]:
    from nuseal.errors import NusealError
    from nuseal.signature import PrimarySignature
    from nuseal.timestamp import timestamps_of

    try:
        primary = PrimarySignature.load(p7s)
    except NusealError:
        return
    for stamp in timestamps_of(primary):
        yield stamp.token_der
    for counter in primary.countersignatures:
        for stamp in timestamps_of(counter):
            yield stamp.token_der


def _samples(target: str, packages: list[Path], max_len: int) -> Iterator[bytes]:
    for path in packages:
        package = path.read_bytes()
        archive = zipfile.ZipFile(io.BytesIO(package))
        names = archive.namelist()
        nuspec = _nuspec_name(names)
        p7s = archive.read(SIGNATURE_ENTRY) if SIGNATURE_ENTRY in names else None
        if target == "zip_reader":
            if len(package) <= max_len:
                yield package
            yield miniature(package)
        elif target == "signature" and p7s is not None:
            yield p7s
        elif target == "timestamp" and p7s is not None:
            yield from _timestamp_tokens(p7s)
        elif target == "nuspec" and nuspec is not None:
            yield archive.read(nuspec)
        elif target == "version" and nuspec is not None:
            found = re.search(rb"<version>([^<]*)</version>", archive.read(nuspec))
            if found:
                yield found.group(1)
        elif target == "version_range" and nuspec is not None:
            yield from re.findall(rb'<dependency [^>]*version="([^"]*)"', archive.read(nuspec))
        elif target == "frameworks":
            if nuspec is not None:
                yield from re.findall(rb'targetFramework="([^"]*)"', archive.read(nuspec))
            yield from {n.split("/")[1].encode() for n in names if n.startswith(("lib/", "ref/")) and n.count("/") > 1}
        elif target == "powershell":
            yield from (archive.read(n) for n in names if n.lower().endswith((".ps1", ".psm1", ".psd1")))
        elif target == "msbuild":
            yield from (archive.read(n) for n in names if n.lower().endswith((".props", ".targets")))
        elif target == "clrmeta":
            yield from (archive.read(n) for n in names if n.lower().endswith((".dll", ".exe")))
    if target == "nuget_config":
        yield from (c.encode() for c in NUGET_CONFIGS)
    elif target == "version":
        yield from (v.encode() for v in VERSIONS)
    elif target == "version_range":
        yield from (r.encode() for r in RANGES)
    elif target == "frameworks":
        yield from (f.encode() for f in FRAMEWORKS)
    elif target == "v3documents":
        yield from (d.encode() for d in V3_DOCUMENTS)
    elif target == "osv":
        yield from (r.encode() for r in OSV_RECORDS)


def _dictionary(target: str) -> list[bytes]:
    if target in ("nuspec", "nuget_config"):
        return [t.encode() for t in _XML_TOKENS]
    if target == "msbuild":
        return [t.encode() for t in _XML_TOKENS + _MSBUILD_TOKENS]
    if target == "powershell":
        return [t.encode() for t in _POWERSHELL_TOKENS]
    if target in ("signature", "timestamp"):
        return list(_DER_TOKENS)
    if target == "zip_reader":
        return list(_ZIP_TOKENS)
    if target == "clrmeta":
        return [b"MZ", b"PE\x00\x00", b"BSJB", b"#~\x00\x00", b"#Strings\x00\x00\x00\x00", b"#Blob\x00\x00\x00",
                b"#US\x00", b"#GUID\x00\x00\x00", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"]
    if target == "frameworks":
        return [b"net", b"netstandard", b"netcoreapp", b"portable-", b"+", b"-", b".", b",Version=v", b",Profile="]
    if target in ("v3documents", "osv"):
        return [b"{", b"}", b"[", b"]", b'"', b":", b",", b"null", b"true", b"false", b'"items"', b'"versions"',
                b'"catalogEntry"', b'"events"', b'"introduced"', b'"fixed"', b'"last_affected"', b'"NuGet"']
    if target in ("version", "version_range"):
        return [b".", b"-", b"+", b"0", b"2147483648", b"\n", b" ", b"*", b"[", b"]", b"(", b")", b","]
    return []


def write_seeds(target: str, directory: Path, *, max_len: int, vectors: Path = VECTORS) -> tuple[int, Path | None]:
    """Write ``target``'s seed files into ``directory`` (named by SHA-1, as libFuzzer names corpus files) and
    its dictionary next to it. Returns the number of seeds and the dictionary path (``None`` without one).
    Seeds larger than ``max_len`` are left out (libFuzzer would only see their first ``max_len`` bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.iterdir():  # rebuilt each run: the vectors or this file may have changed
        stale.unlink()
    count = 0
    for sample in _samples(target, vector_packages(vectors), max_len):
        if 0 < len(sample) <= max_len:
            (directory / hashlib.sha1(sample, usedforsecurity=False).hexdigest()).write_bytes(sample)
            count += 1
    tokens = _dictionary(target)
    if not tokens:
        return count, None
    dictionary = directory.parent / f"{target}.dict"
    dictionary.write_text("".join(f'"{_escape(t)}"\n' for t in tokens), encoding="ascii")
    return count, dictionary


def _escape(token: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\x{b:02x}" for b in token)
