"""The fuzz targets (``fuzz/``): regression tests for what they found, and the CI smoke run.

Each regression test replays the input the fuzzer found (minimized by hand) and failed before its fix.
The smoke run (``slow``; CI runs it) runs every target for a few seconds under libFuzzer, seeded from
``../shared/vectors``, and fails when a target finds an exception other than nuseal's own errors, an input
past the time bound or memory past the bound. The long run is ``make fuzz`` (docs/feed.md).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import NuCode
from nuseal.errors import ConfigError, PackageFormatError, SignatureFormatError, TimestampError
from nuseal.package import PackageArchive
from nuseal.package.nuspec import Nuspec
from nuseal.package.version import MAX_VERSION_LENGTH, NuGetVersion
from nuseal.package.version_range import VersionRange
from nuseal.scan import msbuild, powershell
from nuseal.scan.model import PackageRef
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import load_rules
from nuseal.signature import PrimarySignature
from nuseal.signature._cms import load_certificates
from nuseal.timestamp import Timestamp, timestamps_of
from nuseal.timestamp.client import with_certificates
from nuseal.trust.certificate import load_der_certificate
from nuseal.trust.config import parse_nuget_config

REPO_ROOT = Path(__file__).resolve().parents[1]
VECTORS = REPO_ROOT.parent / "shared" / "vectors"
#: The smoke run's whole fuzzing budget (seconds), shared by the targets; each also loads its seeds first.
SMOKE_BUDGET_S = 48


@pytest.mark.slow
def test_fuzz_smoke_run(tmp_path: Path) -> None:
    """Every target (the scan engine's too) for its share of :data:`SMOKE_BUDGET_S`, one at a time, from the
    vectors' seeds: no finding."""
    if not VECTORS.is_dir():
        pytest.skip(f"no vectors at {VECTORS}")
    listed = subprocess.run(
        [sys.executable, "-c", "from fuzz.run import available_targets; print(*available_targets())"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"zip_reader", "signature", "timestamp", "nuspec", "nuget_config", "version", "version_range"} <= set(listed)
    assert {"frameworks", "powershell", "msbuild", "clrmeta", "v3documents", "osv"} <= set(listed)
    seconds = max(5, SMOKE_BUDGET_S // len(listed))
    run = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "--seconds", str(seconds), "--workdir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=len(listed) * (seconds + 120),
        check=False,
    )
    report = run.stdout + run.stderr
    lines = [line for line in report.splitlines() if line.split(" ")[0] in listed]
    found = [line.split()[0] for line in lines if "FOUND" in line]
    tails = "".join(
        f"\n--- {name}.log (tail)\n" + (tmp_path / "logs" / f"{name}.log").read_text("utf-8", "replace")[-3000:]
        for name in found
    )
    assert run.returncode == 0 and not found, report + tails
    assert len(lines) == len(listed), report
    for line in lines:  # each target ran past its seeds
        assert int(line.split()[1].replace(",", "")) > 0, line


# --------------------------------------------------------------------------- regressions (found by fuzz/)
XML_DECLARATIONS = [
    pytest.param(b'<?xml version="1.0" encoding="utf-1"?>', id="unknown-encoding"),  # LookupError before
    pytest.param(b'<?xml version="1.0" encoding="utf-7"?>', id="multi-byte-encoding"),  # ValueError before
    pytest.param(b'<?xml version="1.0" encoding="shift_jis"?>', id="shift-jis"),
]


@pytest.mark.parametrize("declaration", XML_DECLARATIONS)
def test_nuspec_with_an_unusable_xml_encoding_is_a_format_error(declaration: bytes) -> None:
    """expat raises LookupError/ValueError for these declarations; the reader must name the problem instead."""
    with pytest.raises(PackageFormatError, match="encoding"):
        Nuspec.parse(declaration + b"<package><metadata><id>a</id></metadata></package>")


@pytest.mark.parametrize("declaration", XML_DECLARATIONS)
def test_nuget_config_with_an_unusable_xml_encoding_is_a_config_error(declaration: bytes) -> None:
    with pytest.raises(ConfigError, match="encoding"):
        parse_nuget_config(declaration + b"<configuration/>", source="x/nuget.config")


def test_a_version_whose_normalized_form_is_too_long_is_refused() -> None:
    """``1-<62 characters>`` fit the length limit, but its normalized form ``1.0.0-<62 characters>`` (what the
    feed stores and serves) did not, so nuseal accepted a version whose own normalized form it then refused.
    Found by the ``version`` target's round-trip assertion."""
    label = "a" * (MAX_VERSION_LENGTH - 2)
    with pytest.raises(PackageFormatError, match="once normalized"):
        NuGetVersion.parse(f"1-{label}")
    fits = NuGetVersion.parse(f"1.0.0-{label[:-4]}")
    assert NuGetVersion.parse(fits.normalized) == fits
    # A long spelling whose normalized form is short stays accepted.
    assert NuGetVersion.parse("0001.0002.0003.0000-" + "b" * 44).normalized == "1.2.3-" + "b" * 44


def _with_odd_issuer_attribute(certificate_der: bytes) -> bytes:
    """``certificate_der`` with its issuer's commonName attribute turned into an attribute of type 2.5.4.99
    whose value is an ObjectDescriptor (universal tag 7), same length; asn1crypto has no ``native`` for it."""
    issuer = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]["issuer"].dump()
    at = certificate_der.index(b"\x06\x03\x55\x04\x03\x13", certificate_der.index(issuer))
    return certificate_der[:at] + b"\x06\x03\x55\x04\x63\x07" + certificate_der[at + 6 :]


def _vector_signature() -> bytes:
    package = VECTORS / "nuget.org" / "microsoft.data.sqlite.6.0.9.nupkg"
    if not package.is_file():
        pytest.skip(f"no vector at {package}")
    return PackageArchive.from_path(package).read_signature()


def test_a_certificate_name_value_asn1crypto_cannot_decode_is_compared_by_its_encoding() -> None:
    """AttributeError escaped ``Timestamp.parse`` (found by the ``timestamp`` target) and ``PrimarySignature.load``
    for a certificate whose issuer holds an ObjectDescriptor/InstanceOf/Real value: such a value is now compared
    by its DER, like every non-string value."""
    p7s = _vector_signature()
    primary = PrimarySignature.load(p7s)
    assert primary.signer_certificate is not None
    original = primary.signer_certificate.public_bytes(Encoding.DER)
    odd = _with_odd_issuer_attribute(original)
    (ref,) = load_certificates([odd])
    assert any(oid == "2.5.4.99" and value.startswith("07") for rdn in ref.issuer for oid, value in rdn)
    # In a signature the certificate then no longer matches the signing-certificate-v2 issuer: NU3011, not a
    # traceback.
    with pytest.raises(SignatureFormatError) as caught:
        PrimarySignature.load(p7s.replace(original, odd))
    assert caught.value.code is NuCode.NU3011
    # In a timestamp token the TSA certificate likewise no longer matches: the token parses, NU3020 follows.
    (stamp,) = timestamps_of(primary)
    assert stamp.signer_certificate is not None
    tsa = stamp.signer_certificate.public_bytes(Encoding.DER)
    parsed = Timestamp.parse(stamp.token_der.replace(tsa, _with_odd_issuer_attribute(tsa)))
    assert parsed.signer_certificate is None
    # judged at the timestamp's own time, not the wall clock: the vector's certificates expire
    codes = [i.code for i in parsed.check(primary.signature_value, now=stamp.gen_time)]
    assert NuCode.NU3020 in codes


def test_msbuild_file_with_an_unknown_xml_encoding_is_ns9007() -> None:
    """LookupError escaped the MSBuild analyser (found by the ``msbuild`` target); such a file is now NS9007."""
    data = b'<?xml version="1.0" encoding="utf-0"?><Project/>'
    paths = ("build/Fuzz.targets",)
    package = ScanPackage(
        ref=PackageRef("Fuzz", "1.0.0", "fuzz"),
        nuspec=None,
        paths=paths,
        sizes={paths[0]: len(data)},
        reader=lambda path, limit: data[:limit],
    )
    rule_ids = [f.rule_id for f in msbuild.analyse(package, load_rules())]
    assert rule_ids == ["NS2001", "NS9007"]


def test_powershell_analysis_of_many_matching_tokens_stays_within_the_fuzzing_time_bound() -> None:
    """Each token matching a rule split the whole script into lines for its evidence, even past the per-rule cap
    of findings: time grew with matches x size (336 KB of ``Invoke-Expression $a`` lines took 103 s; a 4 MB
    install.ps1, the size limit, hours). Found while profiling the ``powershell`` target, whose per-input bound
    is :data:`fuzz.run.DEFAULT_TIMEOUT` (10 s); the analysis now stops looking once a rule has its findings."""
    rules = load_rules()
    script = "Invoke-Expression $a\n" * 16000
    started = time.monotonic()
    analysis = powershell.analyse_script(script, rules)
    elapsed = time.monotonic() - started
    assert [h.line for h in analysis.hits if h.rule_id == "NS1102"][:3] == [1, 2, 3]
    assert elapsed < 10, f"{elapsed:.1f} s"


@pytest.mark.parametrize(
    ("text", "min_inclusive", "max_inclusive"),
    [("*", True, False), ("[,2.0)", False, False), ("[1.0,]", True, False), ("[, 2.0]", False, True)],
)
def test_an_absent_range_bound_is_never_inclusive(text: str, min_inclusive: bool, max_inclusive: bool) -> None:
    """``*``, ``[,2.0)`` and ``[1.0,]`` parsed with an inclusive flag on a bound they do not have, unlike their own
    normalized forms (``[*, )``, ``(, 2.0.0)``, ``[1.0.0, )``) and unlike NuGet.Versioning 6.14
    (``VersionRangeBase``: inclusive only with a bound; flags as the oracle's ``versions range`` reports them).
    Found by the ``version_range`` target's round trip."""
    parsed = VersionRange.parse(text)
    assert (parsed.is_min_inclusive, parsed.is_max_inclusive) == (min_inclusive, max_inclusive)
    again = VersionRange.parse(parsed.normalized)
    fields = ("min_version", "is_min_inclusive", "max_version", "is_max_inclusive", "is_floating")
    assert [getattr(parsed, f) for f in fields] == [getattr(again, f) for f in fields]


def _with_x509_version(certificate_der: bytes, version: int) -> bytes:
    """``certificate_der`` with its TBSCertificate version INTEGER set to ``version`` (same length)."""
    field = b"\xa0\x03\x02\x01\x02"  # [0] EXPLICIT INTEGER 2 (v3)
    at = certificate_der.index(field)
    return certificate_der[:at] + field[:4] + bytes([version]) + certificate_der[at + 5 :]


def test_a_certificate_with_an_unknown_x509_version_is_a_decoding_error() -> None:
    """``cryptography.x509.InvalidVersion`` (not a ValueError) escaped ``PrimarySignature.load`` and
    ``Timestamp.parse`` (found by the ``signature`` and ``timestamp`` targets in the long run) and
    ``load_der_certificate`` (so a feed certificate upload); now NU3003 / a ValueError."""
    p7s = _vector_signature()
    primary = PrimarySignature.load(p7s)
    assert primary.signer_certificate is not None
    original = primary.signer_certificate.public_bytes(Encoding.DER)
    bad = _with_x509_version(original, 34)
    with pytest.raises(ValueError, match="version"):
        load_der_certificate(bad)
    with pytest.raises(SignatureFormatError) as caught:
        PrimarySignature.load(p7s.replace(original, bad))
    assert caught.value.code is NuCode.NU3003
    (stamp,) = timestamps_of(primary)
    assert stamp.signer_certificate is not None
    tsa = stamp.signer_certificate.public_bytes(Encoding.DER)
    with pytest.raises(TimestampError) as stamp_error:
        Timestamp.parse(stamp.token_der.replace(tsa, _with_x509_version(tsa, 66)))
    assert stamp_error.value.code is NuCode.NU3003


def test_completing_a_token_whose_certificates_asn1crypto_cannot_render_keeps_them() -> None:
    """``with_certificates`` (signing completes the TSA's certificate set) asked asn1crypto for the whole set's
    ``.native`` just to see whether it was present, and a certificate name holding an ObjectDescriptor made that
    raise AttributeError (found by the ``timestamp`` target in the long run). The set is now copied as it is."""
    primary = PrimarySignature.load(_vector_signature())
    (stamp,) = timestamps_of(primary)
    assert stamp.signer_certificate is not None
    tsa = stamp.signer_certificate.public_bytes(Encoding.DER)
    token = stamp.token_der.replace(tsa, _with_odd_issuer_attribute(tsa))
    assert primary.signer_certificate is not None
    completed = with_certificates(token, [primary.signer_certificate])
    certificates = [c.dump() for c in asn1_cms.ContentInfo.load(completed)["content"]["certificates"]]
    assert _with_odd_issuer_attribute(tsa) in certificates
    assert primary.signer_certificate.public_bytes(Encoding.DER) in certificates
    assert len(certificates) == len(stamp.certificates) + 1
