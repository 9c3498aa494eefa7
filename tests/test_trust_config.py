"""nuget.config: signatureValidationMode and trustedSigners (NUGET-SIGNING.md §4.4-§4.5), NU3040."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import Level, NuCode
from nuseal.errors import ConfigError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.trust import (
    SignatureValidationMode,
    SignerKind,
    TrustedSigner,
    TrustedSignerCertificate,
    fingerprint,
    load_nuget_config,
    merge_trusted_certificates,
    parse_nuget_config,
)
from nuseal.trust.config import MAX_CONFIG_BYTES, find_nuget_configs
from support.trust import vector_signatures

MICROSOFT = "3F9001EA83C560D712C24CF213C3D312CB3BFF51EE89435D3430BD06B5D0EECE"
NUGET_ORG = (
    "0E5F38F57DC1BCC806D8494F4F90FBCEDD988B46760709CBEEC6F4219AA6157D",
    "5A2901D6ADA3D18260B9C6DFE2133C95D74B9EEF6AE0E5DC334C8454D1477DF4",
    "1F4B311D9ACC115C8DC8018B5A49E00FCE6DA8E2855F9F014CA6F34570BC482D",
)

DOCS_EXAMPLE = f"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="signatureValidationMode" value="require" />
  </config>
  <trustedSigners>
    <author name="microsoft">
      <certificate fingerprint="{MICROSOFT}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
    </author>
    <repository name="nuget.org" serviceIndex="https://api.nuget.org/v3/index.json">
      <certificate fingerprint="{NUGET_ORG[0]}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
      <certificate fingerprint="{NUGET_ORG[1]}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
      <certificate fingerprint="{NUGET_ORG[2]}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
      <owners>microsoft; aspnet ;nuget;;</owners>
    </repository>
  </trustedSigners>
</configuration>
""".encode()


def config(body: str) -> bytes:
    return f"<configuration>{body}</configuration>".encode()


def author(certificate_attributes: str) -> bytes:
    """A config with one author holding one certificate with the given attributes."""
    return config(f'<trustedSigners><author name="a"><certificate {certificate_attributes}/></author></trustedSigners>')


def test_docs_example(tmp_path: Path) -> None:
    path = tmp_path / "nuget.config"
    path.write_bytes(DOCS_EXAMPLE)
    parsed = load_nuget_config(path)
    assert parsed.signature_validation_mode is SignatureValidationMode.REQUIRE
    assert parsed.source == str(path)
    assert parsed.warnings == ()
    author, repository = parsed.trusted_signers
    assert author == TrustedSigner(
        "microsoft", SignerKind.AUTHOR, (TrustedSignerCertificate(MICROSOFT, HashAlgorithm.SHA256, False),)
    )
    assert repository.kind is SignerKind.REPOSITORY
    assert repository.service_index == "https://api.nuget.org/v3/index.json"
    assert [c.fingerprint for c in repository.certificates] == list(NUGET_ORG)
    assert repository.owners == ("microsoft", "aspnet", "nuget")


def test_nuget_org_fingerprint_matches_a_real_repository_signature() -> None:
    # The documented nuget.org fingerprint is the SHA-256 of the certificate in the real vectors.
    countersigner = vector_signatures("ILMerge.3.0.41.nupkg")[1].signer
    assert fingerprint(countersigner) == NUGET_ORG[0]
    sha512 = hashlib.sha512(countersigner.public_bytes(Encoding.DER)).hexdigest().upper()
    assert fingerprint(countersigner, HashAlgorithm.SHA512) == sha512


@pytest.mark.parametrize(
    ("value", "expected", "warned"),
    [
        ("accept", SignatureValidationMode.ACCEPT, False),
        ("REQUIRE", SignatureValidationMode.REQUIRE, False),
        (" Require ", SignatureValidationMode.REQUIRE, False),
        ("requre", SignatureValidationMode.ACCEPT, True),
    ],
)
def test_signature_validation_mode(value: str, expected: SignatureValidationMode, warned: bool) -> None:
    parsed = parse_nuget_config(config(f'<config><add key="SignatureValidationMode" value="{value}"/></config>'))
    assert parsed.signature_validation_mode is expected
    assert bool(parsed.warnings) is warned


def test_last_add_wins_and_clear_resets() -> None:
    body = (
        '<config><add key="signatureValidationMode" value="require"/><clear/></config>'
        '<config><add key="signatureValidationMode" value="accept"/>'
        '<add key="signatureValidationMode" value="require"/></config>'
    )
    assert parse_nuget_config(config(body)).signature_validation_mode is SignatureValidationMode.REQUIRE
    cleared = '<config><add key="signatureValidationMode" value="require"/><clear/></config>'
    assert parse_nuget_config(config(cleared)).signature_validation_mode is SignatureValidationMode.ACCEPT
    assert parse_nuget_config(config("")).signature_validation_mode is SignatureValidationMode.ACCEPT


@pytest.mark.parametrize(
    ("element", "missing"),
    [
        ('<author><certificate fingerprint="AA" hashAlgorithm="SHA256"/></author>', "'name' in element 'author'"),
        (
            '<repository name="r"><certificate fingerprint="AA" hashAlgorithm="SHA256"/></repository>',
            "'serviceIndex' in element 'repository'",
        ),
        ('<author name="a"><certificate hashAlgorithm="SHA256"/></author>', "'fingerprint' in element 'certificate'"),
        ('<author name="a"><certificate fingerprint="AA"/></author>', "'hashAlgorithm' in element 'certificate'"),
    ],
)
def test_missing_required_attributes_name_the_element(element: str, missing: str) -> None:
    with pytest.raises(ConfigError, match=f"Missing required attribute {missing}"):
        parse_nuget_config(config(f"<trustedSigners>{element}</trustedSigners>"))


@pytest.mark.parametrize("algorithm", ["SHA1", "MD5", "sha-256x", ""])
def test_bad_hash_algorithm(algorithm: str) -> None:
    with pytest.raises(ConfigError, match="hashAlgorithm"):
        parse_nuget_config(author(f'fingerprint="AA" hashAlgorithm="{algorithm}"'))


def test_hash_algorithm_case_insensitive_and_bool_parsing() -> None:
    body = (
        '<trustedSigners><author name="a">'
        f'<certificate fingerprint="{MICROSOFT}" hashAlgorithm="sha256" allowUntrustedRoot="TRUE"/>'
        f'<certificate fingerprint="{"AB" * 48}" hashAlgorithm="Sha384"/>'
        "</author></trustedSigners>"
    )
    first, second = parse_nuget_config(config(body)).trusted_signers[0].certificates
    assert first.hash_algorithm is HashAlgorithm.SHA256 and first.allow_untrusted_root
    assert second.hash_algorithm is HashAlgorithm.SHA384 and not second.allow_untrusted_root
    with pytest.raises(ConfigError, match="allowUntrustedRoot"):
        parse_nuget_config(author('fingerprint="AA" hashAlgorithm="SHA256" allowUntrustedRoot="yes"'))


def test_signer_without_certificates_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one certificate"):
        parse_nuget_config(config('<trustedSigners><author name="a"/></trustedSigners>'))


def test_lowercase_fingerprint_quirk_is_kept_and_warned() -> None:
    lower = MICROSOFT.lower()
    parsed = parse_nuget_config(author(f'fingerprint="{lower}" hashAlgorithm="SHA256" allowUntrustedRoot="true"'))
    cert = parsed.trusted_signers[0].certificates[0]
    assert cert.fingerprint == lower
    assert cert.normalized_fingerprint == MICROSOFT
    assert cert.allow_untrusted_root and not cert.grants_untrusted_root
    assert any("allowUntrustedRoot is ignored" in w for w in parsed.warnings)


def test_fingerprint_of_wrong_length_is_warned() -> None:
    parsed = parse_nuget_config(author('fingerprint="ABCD" hashAlgorithm="SHA256"'))
    assert any("can never match" in w for w in parsed.warnings)


def test_clear_in_trusted_signers_and_unknown_elements() -> None:
    body = (
        "<trustedSigners>"
        f'<author name="gone"><certificate fingerprint="{MICROSOFT}" hashAlgorithm="SHA256"/></author>'
        "<clear/>"
        f'<author name="kept"><certificate fingerprint="{MICROSOFT}" hashAlgorithm="SHA256"/><unknown/></author>'
        "<somethingElse/>"
        # element names are case-sensitive, as NuGet's SettingFactory switch is
        f'<Author name="ignored"><certificate fingerprint="{MICROSOFT}" hashAlgorithm="SHA256"/></Author>'
        "</trustedSigners>"
    )
    assert [s.name for s in parse_nuget_config(config(body)).trusted_signers] == ["kept"]


@pytest.mark.parametrize(
    "data",
    [
        b"<configuration><config>",
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE configuration [<!ENTITY x "y">]><configuration>&x;</configuration>',
        b"<settings/>",
    ],
)
def test_malformed_or_hostile_xml(data: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_nuget_config(data)


def test_size_limit_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="larger than"):
        parse_nuget_config(b" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(UsageError, match="cannot read"):
        load_nuget_config(tmp_path / "nope.config")


def test_merge_reports_nu3040_and_keeps_most_restrictive() -> None:
    # NuGet's own unit test (TrustedSignersProviderTests ...ConflictingAllowUntrustedRoot_WarnsAndSetsToFalse).
    body = """<trustedSigners>
        <repository name="repository1" serviceIndex="api.v3ServiceIndex.test/json">
            <certificate fingerprint="abc" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
            <certificate fingerprint="def" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
            <certificate fingerprint="abc" hashAlgorithm="SHA512" allowUntrustedRoot="false" />
            <owners>nuget;randomOwner</owners>
        </repository>
        <author name="author1">
            <certificate fingerprint="jkl" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
            <certificate fingerprint="abc" hashAlgorithm="SHA256" allowUntrustedRoot="true" />
        </author>
    </trustedSigners>"""
    entries, issues = merge_trusted_certificates(parse_nuget_config(config(body)).trusted_signers)
    assert [(i.code, i.level) for i in issues] == [(NuCode.NU3040, Level.WARNING)]
    assert issues[0].message.endswith("Certificate: SHA256-abc")
    by_key = {(e.hash_algorithm, e.fingerprint): e for e in entries}
    assert len(entries) == 4
    merged = by_key[(HashAlgorithm.SHA256, "abc")]
    assert merged.author and merged.repository and not merged.allow_untrusted_root
    assert merged.owners == ("nuget", "randomOwner")
    assert merged.names == ("repository1", "author1")
    assert by_key[(HashAlgorithm.SHA512, "abc")].repository and not by_key[(HashAlgorithm.SHA512, "abc")].author
    jkl = by_key[(HashAlgorithm.SHA256, "jkl")]
    assert jkl.author and not jkl.repository and jkl.owners is None


def test_merge_key_is_case_sensitive_text() -> None:
    signers = [
        TrustedSigner("a", SignerKind.AUTHOR, (TrustedSignerCertificate("ABC", HashAlgorithm.SHA256, True),)),
        TrustedSigner("b", SignerKind.AUTHOR, (TrustedSignerCertificate("abc", HashAlgorithm.SHA256, False),)),
    ]
    entries, issues = merge_trusted_certificates(signers)
    assert len(entries) == 2 and issues == []


def test_find_nuget_configs_is_nugets_chain_nearest_first(tmp_path: Path) -> None:
    """One discovery for verify and restore (issue 12): each folder's file up to the root, NuGet's names matched
    exactly in NuGet's order, then the user file once."""
    root, project = tmp_path / "repo", tmp_path / "repo" / "src" / "app"
    project.mkdir(parents=True)
    (root / "NuGet.Config").write_text("<configuration/>")
    (root / "src" / "NUGET.CONFIG").write_text("<configuration/>")  # not a name NuGet looks for
    (project / "NuGet.config").write_text("<configuration/>")
    (project / "nuget.config").write_text("<configuration/>")  # both present: nuget.config comes first
    user = tmp_path / "home" / ".nuget" / "NuGet" / "NuGet.Config"
    user.parent.mkdir(parents=True)
    user.write_text("<configuration/>")
    found = find_nuget_configs(project, user_config=user)
    assert found == [(project / "nuget.config").resolve(), (root / "NuGet.Config").resolve(), user.resolve()]
    assert find_nuget_configs(root, user_config=root / "NuGet.Config") == [(root / "NuGet.Config").resolve()]
    assert find_nuget_configs(project, user_config=tmp_path / "missing")[-1] == (root / "NuGet.Config").resolve()
