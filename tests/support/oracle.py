"""NuGet's own signing and verification code as a test oracle.

Wraps ``../shared/tools/nuget-oracle/run-oracle.sh`` (relative to the repository root): Microsoft's
NuGet.Packaging 6.14.3 on .NET 8, driven by ``src/oracle.cs``. ``verify`` runs NuGet's
``PackageSignatureVerifier`` (integrity + trust-and-validity providers, offline revocation) under four
policies and returns a frozen ``VerifyReport``; ``sign`` runs NuGet's ``SigningUtility.SignAsync``.

Verification results are cached on disk, keyed by the SHA-256 of the package bytes, the arguments (file
arguments by content), and the oracle's sources (``oracle.cs``, the other ``src/`` files and
``run-oracle.sh``), under ``$NUSEAL_TEST_CACHE/oracle`` or ``~/.cache/nuseal-tests/oracle``.

Known oracle.cs limitation: it prints each signature's timestamps outside any try block, so a package whose
timestamp NuGet cannot load (a broken TSA signature, a TSA certificate that fails its ESS check) ends in a
top-level ``fatal`` before any policy runs. ``verify`` then reruns the package with a guarded build of the
same oracle.cs (built once under the cache directory from the oracle's own toolchain; only those two
printing calls are wrapped in try/catch, verification code unchanged) and marks the report ``guarded``.

Cost (measured on this machine, 2 CPUs): one call takes about 0.6 s, half of it .NET start-up and JIT; the
oracle takes one package per call, so ``verify_many`` runs calls on threads (one process each).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from ctypes.util import find_library
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import network

__all__ = [
    "CACHE_DIR",
    "CODESIGN_BUNDLE",
    "ORACLE_DIR",
    "POLICIES",
    "TIMESTAMP_BUNDLE",
    "CertificateInfo",
    "OracleError",
    "OracleIssue",
    "PolicyVerdict",
    "SignReport",
    "SignatureInfo",
    "TimestampInfo",
    "VerifyReport",
    "oracle_available",
    "oracle_unavailable_reason",
    "parse_verify_document",
    "sign",
    "verify",
    "verify_many",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
ORACLE_DIR = SHARED / "tools" / "nuget-oracle"
RUN_SCRIPT = ORACLE_DIR / "run-oracle.sh"
ORACLE_SOURCES = ORACLE_DIR / "src"
CODESIGN_BUNDLE = SHARED / "trust" / "codesignctl.pem"
TIMESTAMP_BUNDLE = SHARED / "trust" / "timestampctl.pem"
CACHE_DIR = (
    Path(os.environ["NUSEAL_TEST_CACHE"]) / "oracle"
    if os.environ.get("NUSEAL_TEST_CACHE")
    else Path.home() / ".cache" / "nuseal-tests" / "oracle"
)
CACHE_FORMAT = b"nuseal-oracle-cache-2"
ORACLE_HOME = Path(
    os.environ.get("ORACLE_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nuget-oracle"
)  # as run-oracle.sh computes it
GUARDED_MARK = "nusealGuardedRerun"  # key added to a document produced by the guarded build
_GUARD_PATCHES = (  # (stock line, guarded line) in oracle.cs
    (
        "                TimestampsJson(j, sig.Timestamps);\n",
        "                try { TimestampsJson(j, sig.Timestamps); }"
        " catch (Exception e) { j.Str(\"timestampsError\", FormatEx(e)); }\n",
    ),
    (
        "                    TimestampsJson(j, cs.Timestamps);\n",
        "                    try { TimestampsJson(j, cs.Timestamps); }"
        " catch (Exception e) { j.Str(\"timestampsError\", FormatEx(e)); }\n",
    ),
)

POLICIES = ("verifyCommand", "verifyCommandAllowUntrusted", "acceptMode", "requireMode")
"""The oracle's policies: NuGet's ``GetVerifyCommandDefaultPolicy`` (``dotnet nuget verify``), the same with
``allowUntrusted``, ``GetAcceptModeDefaultPolicy`` and ``GetRequireModeDefaultPolicy`` (restore's
``signatureValidationMode``), all with offline revocation and no allow lists."""

CALL_TIMEOUT_S = 300
SETUP_TIMEOUT_S = 900  # the first setup downloads ~110 MB from PyPI and npm
STDERR_TAIL = 2000  # characters of the oracle's stderr quoted in an OracleError
EXIT_OK = 0
EXIT_SIGN_FAILED = 1  # oracle.cs: sign ran and NuGet refused (the JSON says why)
EXIT_FATAL = 3  # oracle.cs: an exception escaped (e.g. NuGet could not open the archive); JSON has "fatal"


class OracleError(RuntimeError):
    """The oracle could not be run or printed no parsable JSON document."""


# --------------------------------------------------------------------------- result types
@dataclass(frozen=True)
class OracleIssue:
    """One message NuGet logged: ``level`` lower-case (``error``, ``warning``, ``information``...), ``code``
    ``NU3xxx`` or ``Undefined``."""

    level: str
    code: str
    message: str


@dataclass(frozen=True)
class PolicyVerdict:
    """NuGet's verdict under one policy.

    ``codes`` are the oracle's distinct ``(level, code)`` pairs over all results, sorted, without
    ``Undefined`` codes; ``issues`` are every issue with its message, in NuGet's order (``Undefined`` codes
    included when logged at warning level or above). ``exception`` is set when ``VerifySignaturesAsync``
    threw instead of returning (then ``is_valid`` is None).
    """

    policy: str
    is_valid: bool | None
    is_signed: bool | None
    codes: tuple[tuple[str, str], ...]
    issues: tuple[OracleIssue, ...]
    trusts: tuple[str, ...]  # each provider result's SignatureVerificationStatus: Valid, Disallowed, Suspect...
    exception: str | None

    @property
    def error_codes(self) -> frozenset[str]:
        return frozenset(code for level, code in self.codes if level == "error")

    @property
    def warning_codes(self) -> frozenset[str]:
        return frozenset(code for level, code in self.codes if level == "warning")

    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(i.message for i in self.issues)


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    serial_number: str
    not_before: str
    not_after: str
    signature_algorithm: str
    public_key_algorithm: str
    sha1: str
    sha256: str


@dataclass(frozen=True)
class TimestampInfo:
    generalized_time: str
    lower_limit: str
    upper_limit: str
    message_imprint_algorithm: str | None
    message_imprint: str | None
    policy: str | None
    serial_number: str | None
    accuracy_microseconds: int | None
    signer_certificate: CertificateInfo | None
    decode_error: str | None


@dataclass(frozen=True)
class SignatureInfo:
    """A primary signature or a repository countersignature as NuGet parsed it. The ``content_*`` and
    ``cms_*`` fields are only set for the primary signature."""

    type: str  # Author, Repository, Unknown
    signing_certificate_sha256: str | None
    certificate: CertificateInfo | None
    digest_algorithm: str | None
    signature_algorithm: str | None
    signer_identifier_type: str | None
    signed_attributes: tuple[str, ...]
    unsigned_attributes: tuple[str, ...]
    timestamps: tuple[TimestampInfo, ...]
    v3_service_index_url: str | None
    package_owners: tuple[str, ...]
    timestamps_error: str | None = None  # guarded build only: why NuGet could not load the timestamps
    friendly_name: str | None = None
    content_hash_algorithm: str | None = None
    content_hash_value: str | None = None
    content_text: str | None = None
    cms_version: int | None = None
    cms_certificate_count: int | None = None
    cms_signer_info_count: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    """What NuGet reports for one package.

    ``fatal`` is set when NuGet threw before any policy ran (e.g. ``InvalidDataException`` on an archive
    .NET cannot open); then ``policies`` is empty. ``integrity`` is ``"ok"``, ``"FAILED"`` or None (not
    signed, or the signature could not be loaded: see ``signature_load_error``).
    """

    oracle: str
    is_signed: bool | None
    is_zip64: bool | None
    content_hash: str | None
    content_hash_error: str | None
    integrity: str | None
    integrity_error: str | None
    signature_load_error: str | None
    primary: SignatureInfo | None
    countersignature: SignatureInfo | None
    countersignature_error: str | None
    fatal: str | None
    file_sha512: str | None
    policies: tuple[PolicyVerdict, ...]
    guarded: bool  # produced by the guarded rerun (see the module docstring)
    raw: str = field(repr=False, compare=False)

    def policy(self, name: str) -> PolicyVerdict:
        """The verdict under ``name`` (one of ``POLICIES``); KeyError if that policy did not run."""
        for verdict in self.policies:
            if verdict.policy == name:
                return verdict
        raise KeyError(name)

    @property
    def verdicts(self) -> dict[str, PolicyVerdict]:
        return {v.policy: v for v in self.policies}

    def document(self) -> dict[str, Any]:
        """The oracle's JSON document."""
        doc: dict[str, Any] = json.loads(self.raw)
        return doc


@dataclass(frozen=True)
class SignReport:
    """NuGet's signer's answer: ``ok`` and the signed bytes, or the exception and logged issues."""

    ok: bool
    signed: bytes | None = field(repr=False)
    exception: str | None
    issues: tuple[OracleIssue, ...]
    certificate: CertificateInfo | None
    raw: str = field(repr=False, compare=False)


# --------------------------------------------------------------------------- JSON -> types
def _opt_str(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    return None if v is None else str(v)


def _certificate(d: Any) -> CertificateInfo | None:
    if not isinstance(d, Mapping):
        return None
    return CertificateInfo(
        subject=d["subject"], issuer=d["issuer"], serial_number=d["serialNumber"], not_before=d["notBefore"],
        not_after=d["notAfter"], signature_algorithm=d["signatureAlgorithm"],
        public_key_algorithm=d["publicKeyAlgorithm"], sha1=d["sha1"], sha256=d["sha256"],
    )


def _timestamps(items: Any) -> tuple[TimestampInfo, ...]:
    out = []
    for t in items or ():
        acc = t.get("accuracyMicroseconds")
        signer = t.get("signer") or {}
        out.append(TimestampInfo(
            generalized_time=t["generalizedTime"], lower_limit=t["lowerLimit"], upper_limit=t["upperLimit"],
            message_imprint_algorithm=_opt_str(t, "messageImprintAlgorithm"),
            message_imprint=_opt_str(t, "messageImprint"), policy=_opt_str(t, "policy"),
            serial_number=_opt_str(t, "serialNumber"), accuracy_microseconds=None if acc is None else int(acc),
            signer_certificate=_certificate(signer.get("certificate")), decode_error=_opt_str(t, "tokenDecodeError"),
        ))
    return tuple(out)


def _signature(d: Any, *, primary: bool) -> SignatureInfo | None:
    if not isinstance(d, Mapping):
        return None
    extra: dict[str, Any] = {}
    if primary:
        extra = {
            "friendly_name": _opt_str(d, "friendlyName"),
            "content_hash_algorithm": _opt_str(d, "signatureContentHashAlgorithm"),
            "content_hash_value": _opt_str(d, "signatureContentHashValue"),
            "content_text": _opt_str(d, "signatureContentText"),
            "cms_version": None if d.get("cmsVersion") is None else int(d["cmsVersion"]),
            "cms_certificate_count": None if d.get("cmsCertificateCount") is None else int(d["cmsCertificateCount"]),
            "cms_signer_info_count": None if d.get("cmsSignerInfoCount") is None else int(d["cmsSignerInfoCount"]),
        }
    return SignatureInfo(
        type=d["type"], signing_certificate_sha256=_opt_str(d, "signingCertificateSha256"),
        certificate=_certificate(d.get("certificate")), digest_algorithm=_opt_str(d, "digestAlgorithm"),
        signature_algorithm=_opt_str(d, "signatureAlgorithm"),
        signer_identifier_type=_opt_str(d, "signerIdentifierType"),
        signed_attributes=tuple(d.get("signedAttributes") or ()),
        unsigned_attributes=tuple(d.get("unsignedAttributes") or ()),
        timestamps=_timestamps(d.get("timestamps")), v3_service_index_url=_opt_str(d, "v3ServiceIndexUrl"),
        package_owners=tuple(d.get("packageOwners") or ()), timestamps_error=_opt_str(d, "timestampsError"),
        **extra,
    )


def _issues(items: Any) -> tuple[OracleIssue, ...]:
    return tuple(OracleIssue(str(i["level"]).lower(), str(i["code"]), str(i["message"])) for i in items or ())


def _verdict(v: Mapping[str, Any]) -> PolicyVerdict:
    codes = []
    for c in v.get("codes") or ():
        level, _, code = str(c).partition(":")
        codes.append((level, code))
    results = v.get("results") or ()
    return PolicyVerdict(
        policy=str(v["policy"]),
        is_valid=None if "isValid" not in v else bool(v["isValid"]),
        is_signed=None if "isSigned" not in v else bool(v["isSigned"]),
        codes=tuple(codes),
        issues=tuple(i for r in results for i in _issues(r.get("issues"))),
        trusts=tuple(str(r.get("trust")) for r in results),
        exception=_opt_str(v, "exception"),
    )


def _find_key(doc: Any, key: str) -> Any:
    """``doc[key]``, or the first such key in a nested object (an exception thrown mid-object lands there)."""
    if isinstance(doc, Mapping):
        if key in doc:
            return doc[key]
        for v in doc.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _load_json(text: str) -> dict[str, Any]:
    """Parse the oracle's document; if an exception cut it short (oracle.cs's writer then leaves objects
    open), close the open brackets and parse again."""
    try:
        doc: dict[str, Any] = json.loads(text)
        return doc
    except json.JSONDecodeError:
        pass
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif ch in "]}" and stack:
            stack.pop()
    try:
        doc = json.loads(text.rstrip() + "".join(reversed(stack)))
    except json.JSONDecodeError as e:
        raise OracleError(f"oracle printed no parsable JSON: {e}: {text[:200]!r}") from e
    return doc


def parse_verify_document(text: str) -> VerifyReport:
    """A ``VerifyReport`` from the JSON document ``run-oracle.sh verify`` prints (shape: oracle.cs ``Verify``)."""
    doc = _load_json(text)
    is_zip64 = doc.get("isZip64")
    return VerifyReport(
        oracle=str(doc.get("oracle", "")),
        is_signed=None if "isSigned" not in doc else bool(doc["isSigned"]),
        is_zip64=None if is_zip64 is None else bool(is_zip64),
        content_hash=_opt_str(doc, "contentHash"),
        content_hash_error=_opt_str(doc, "contentHashError"),
        integrity=_opt_str(doc, "integrity"),
        integrity_error=_opt_str(doc, "integrityError"),
        signature_load_error=_opt_str(doc, "signatureLoadError"),
        primary=_signature(doc.get("primarySignature"), primary=True),
        countersignature=_signature((doc.get("primarySignature") or {}).get("repositoryCountersignature"),
                                    primary=False),
        countersignature_error=_opt_str(doc.get("primarySignature") or {}, "countersignatureError"),
        fatal=None if _find_key(doc, "fatal") is None else str(_find_key(doc, "fatal")),
        file_sha512=_opt_str(doc, "fileSha512Base64"),
        policies=tuple(_verdict(v) for v in doc.get("verification") or ()),
        guarded=bool(doc.get(GUARDED_MARK)),
        raw=json.dumps(doc, sort_keys=True),
    )


# --------------------------------------------------------------------------- running the oracle
@functools.cache
def _sources_digest() -> bytes:
    h = hashlib.sha256()
    for path in [RUN_SCRIPT, *sorted(ORACLE_SOURCES.glob("*"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.digest()


@functools.cache
def _file_digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def _cache_key(package: bytes, args: list[str], files: Iterable[Path]) -> str:
    h = hashlib.sha256(CACHE_FORMAT)
    h.update(hashlib.sha256(package).digest())
    h.update(json.dumps(args).encode())
    for path in files:
        h.update(_file_digest(path.resolve()))
    h.update(_sources_digest())
    h.update(json.dumps(_GUARD_PATCHES).encode())  # a document may come from the guarded rerun
    return h.hexdigest()


@functools.cache
def oracle_unavailable_reason() -> str | None:
    """None when the oracle can run here; otherwise why not (memoised; runs ``run-oracle.sh setup`` once,
    which installs the oracle on first use and is a no-op later)."""
    if not RUN_SCRIPT.is_file():
        return f"NuGet oracle not found at {RUN_SCRIPT}"
    if shutil.which("bash") is None:
        return "bash is not installed"
    try:
        run = subprocess.run(  # the one step allowed past the test suite's network fence (support.network)
            ["bash", str(RUN_SCRIPT), "setup"], capture_output=True, timeout=SETUP_TIMEOUT_S, check=False,
            env=network.unfenced_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"NuGet oracle setup failed: {e}"
    if run.returncode != 0:
        return f"NuGet oracle setup failed ({run.returncode}): {run.stderr.decode(errors='replace')[-STDERR_TAIL:]}"
    return None


def oracle_available() -> bool:
    """Whether ``verify``/``sign`` can run here (see ``oracle_unavailable_reason``)."""
    return oracle_unavailable_reason() is None


def _run(args: list[str], ok_codes: tuple[int, ...], command: list[str] | None = None) -> str:
    env = None
    if command is not None:  # the guarded build, run the way run-oracle.sh runs the stock one
        env = {**os.environ, "DOTNET_CLI_TELEMETRY_OPTOUT": "1"}
        if find_library("icuuc") is None:
            env["DOTNET_SYSTEM_GLOBALIZATION_INVARIANT"] = "1"
    try:
        run = subprocess.run(
            [*(command or ["bash", str(RUN_SCRIPT)]), *args], capture_output=True, timeout=CALL_TIMEOUT_S,
            check=False, env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise OracleError(f"nuget-oracle {args[0]} did not run: {e}") from e
    out = run.stdout.decode("utf-8", errors="replace")
    if run.returncode not in ok_codes or not out.strip():
        raise OracleError(
            f"nuget-oracle {args[0]} failed ({run.returncode}): {run.stderr.decode(errors='replace')[-STDERR_TAIL:]}"
        )
    return out


_BUILD_LOCK = threading.Lock()


def _guarded_command() -> list[str]:
    """``dotnet exec`` of the guarded oracle build, compiled on first use (see the module docstring)."""
    with _BUILD_LOCK:
        return _build_guarded()


@functools.cache
def _build_guarded() -> list[str]:
    toolchain = ORACLE_HOME / "cache"
    dotnet, lib, roslyn = toolchain / "dotnet" / "dotnet", toolchain / "lib", toolchain / "roslyn"
    source = (ORACLE_SOURCES / "oracle.cs").read_text(encoding="utf-8")
    for stock, guarded in _GUARD_PATCHES:
        if source.count(stock) != 1:
            raise OracleError("oracle.cs changed: cannot build the guarded oracle; update _GUARD_PATCHES")
        source = source.replace(stock, guarded)
    target = CACHE_DIR / f"guarded-{hashlib.sha256(source.encode()).hexdigest()[:16]}"
    exe, config = target / "oracle.exe", target / "oracle.runtimeconfig.json"
    command = [str(dotnet), "exec", "--runtimeconfig", str(config), str(exe)]
    if exe.is_file():
        return command
    frameworks = sorted((toolchain / "dotnet" / "shared" / "Microsoft.NETCore.App").glob("8.*"))
    if not (dotnet.is_file() and frameworks and (roslyn / "rcsc.exe").is_file()):
        raise OracleError(f"the oracle toolchain is not set up under {toolchain}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix="guarded-build-", dir=CACHE_DIR))
    for dll in lib.glob("*.dll"):
        shutil.copy2(dll, build / dll.name)
    (build / "oracle.cs").write_text(source, encoding="utf-8")
    refs = [f"-r:{f}" for f in sorted(frameworks[0].glob("*.dll")) if f.name != "Microsoft.VisualBasic.dll"]
    refs += [f"-r:{build / n}.dll" for n in ("NuGet.Packaging", "NuGet.Common", "NuGet.Versioning",
                                            "NuGet.Frameworks", "System.Security.Cryptography.Pkcs")]
    run = subprocess.run(
        [str(dotnet), "exec", "--runtimeconfig", str(roslyn / "rcsc.runtimeconfig.json"), str(roslyn / "rcsc.exe"),
         str(roslyn), str(build / "oracle.exe"), "exe", str(build / "oracle.cs"), *refs],
        capture_output=True, timeout=SETUP_TIMEOUT_S, check=False,
    )
    if run.returncode != 0 or not (build / "oracle.exe").is_file():
        shutil.rmtree(build, ignore_errors=True)
        raise OracleError(f"guarded oracle build failed: {run.stderr.decode(errors='replace')[-STDERR_TAIL:]}")
    shutil.copy2(lib / "oracle.runtimeconfig.json", build / "oracle.runtimeconfig.json")
    try:
        os.replace(build, target)
    except OSError:  # another process built it first
        shutil.rmtree(build, ignore_errors=True)
    return command


def _crashed_while_printing(doc: Mapping[str, Any]) -> bool:
    """oracle.cs threw after it had loaded and started printing the primary signature (so no policy ran)."""
    return "primarySignature" in doc and "verification" not in doc and _find_key(doc, "fatal") is not None


def _verify_args(
    trust_bundle: Path | None, timestamp_bundle: Path | None, allow_untrusted_roots: Iterable[str]
) -> tuple[list[str], list[Path]]:
    args: list[str] = []
    files: list[Path] = []
    if trust_bundle is not None:
        args += ["--trust-bundle", str(trust_bundle)]
        files.append(trust_bundle)
    if timestamp_bundle is not None:
        args += ["--timestamp-bundle", str(timestamp_bundle)]
        files.append(timestamp_bundle)
    for fingerprint in allow_untrusted_roots:
        args += ["--allow-untrusted-root", fingerprint]
    return args, files


def verify(
    package: bytes | Path,
    *,
    trust_bundle: Path | None = CODESIGN_BUNDLE,
    timestamp_bundle: Path | None = TIMESTAMP_BUNDLE,
    allow_untrusted_roots: Iterable[str] = (),
    verbose: bool = False,
    use_cache: bool = True,
) -> VerifyReport:
    """NuGet's report on ``package`` (bytes, or a path to read).

    ``trust_bundle`` / ``timestamp_bundle``: PEM root bundles for code signing / timestamping (default: the
    .NET SDK's, from ``shared/trust``; None for both = the system roots). ``allow_untrusted_roots``: SHA-256
    fingerprints (upper-case hex) passed as NuGet's allowUntrustedRoot list. ``verbose``: keep NuGet's
    information/debug messages without a code in ``issues`` (e.g. offline revocation notes).
    Raises ``OracleError`` if the oracle cannot run or prints no JSON; never returns a made-up result.
    """
    data = package.read_bytes() if isinstance(package, Path) else package
    args, files = _verify_args(trust_bundle, timestamp_bundle, list(allow_untrusted_roots))
    if verbose:
        args.append("--verbose")
    cached = CACHE_DIR / f"verify-{_cache_key(data, ['verify', *args], files)}.json"
    if use_cache and cached.is_file():
        return parse_verify_document(cached.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="nuseal-oracle-") as tmp:
        path = Path(tmp) / "package.nupkg"
        path.write_bytes(data)
        text = _run(["verify", str(path), *args], (EXIT_OK, EXIT_FATAL))
        if _crashed_while_printing(_load_json(text)):
            doc = _load_json(_run(["verify", str(path), *args], (EXIT_OK, EXIT_FATAL), _guarded_command()))
            doc[GUARDED_MARK] = True
            text = json.dumps(doc)
    report = parse_verify_document(text)
    if use_cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=CACHE_DIR, suffix=".tmp", delete=False, encoding="utf-8") as f:
            f.write(report.raw)
        os.replace(f.name, cached)
    return report


def verify_many(
    packages: Mapping[str, bytes],
    *,
    workers: int | None = None,
    trust_bundle: Path | None = CODESIGN_BUNDLE,
    timestamp_bundle: Path | None = TIMESTAMP_BUNDLE,
    allow_untrusted_roots: Iterable[str] = (),
    verbose: bool = False,
    use_cache: bool = True,
) -> dict[str, VerifyReport]:
    """``verify`` for several packages (name -> bytes), one oracle process per package, ``workers`` at a time
    (default: the CPU count). Returns name -> report; the first ``OracleError`` is raised."""
    roots = tuple(allow_untrusted_roots)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = {
            name: pool.submit(
                verify, data, trust_bundle=trust_bundle, timestamp_bundle=timestamp_bundle,
                allow_untrusted_roots=roots, verbose=verbose, use_cache=use_cache,
            )
            for name, data in packages.items()
        }
        return {name: future.result() for name, future in futures.items()}


def sign(
    package: bytes,
    *,
    pfx: Path,
    password: str = "",
    signature_type: str = "author",
    v3_service_index_url: str | None = None,
    owners: Iterable[str] = (),
    tsa_url: str | None = None,
    hash_algorithm: str = "SHA256",
    extra_certs: Iterable[Path] = (),
    trust_bundle: Path | None = None,
    timestamp_bundle: Path | None = None,
) -> SignReport:
    """Sign ``package`` with NuGet's own signer (never cached: signing time and timestamps differ per run).

    ``signature_type``: ``author`` or ``repository``; ``v3_service_index_url`` and ``owners`` only for
    ``repository`` (NuGet defaults the URL to nuget.org's). ``extra_certs``: PEM/DER files with the chain;
    ``trust_bundle``: the root to trust (else NuGet refuses with NU3018); ``timestamp_bundle``: the roots NuGet
    trusts for the TSA's certificate. Raises ``OracleError`` if the oracle
    cannot run; a refusal by NuGet is ``ok=False`` with the exception text and issues.
    """
    args = ["--pfx", str(pfx), "--password", password, "--type", signature_type, "--hash", hash_algorithm]
    if v3_service_index_url is not None:
        args += ["--v3", v3_service_index_url]
    owner_list = list(owners)
    if owner_list:
        args += ["--owners", ";".join(owner_list)]
    if tsa_url is not None:
        args += ["--tsa", tsa_url]
    for chain in extra_certs:
        args += ["--extra-certs", str(chain)]
    if trust_bundle is not None:
        args += ["--trust-bundle", str(trust_bundle)]
    if timestamp_bundle is not None:
        args += ["--timestamp-bundle", str(timestamp_bundle)]
    with tempfile.TemporaryDirectory(prefix="nuseal-oracle-") as tmp:
        source, target = Path(tmp) / "in.nupkg", Path(tmp) / "out.nupkg"
        source.write_bytes(package)
        text = _run(["sign", "--in", str(source), "--out", str(target), *args],
                    (EXIT_OK, EXIT_SIGN_FAILED, EXIT_FATAL))
        doc = _load_json(text)
        ok = bool(doc.get("ok")) and target.is_file()
        signed = target.read_bytes() if ok else None
    return SignReport(
        ok=ok, signed=signed, exception=_opt_str(doc, "exception") or _opt_str(doc, "fatal"),
        issues=_issues(doc.get("issues")), certificate=_certificate(doc.get("certificate")),
        raw=json.dumps(doc, sort_keys=True),
    )
