"""The gate before extraction: the scan allow list (nuseal.toml), the scan threshold, restore's policy from
nuget.config, a source's repository signature info, and the refusal messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.client.gate import (
    RepositorySignatureInfo,
    check,
    client_policy,
    load_allow_list,
)
from nuseal.errors import ConfigError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive
from nuseal.scan.model import Severity
from nuseal.signature import PrimarySignature
from nuseal.trust import RevocationMode, SignatureValidationMode, fingerprint, parse_nuget_config
from nuseal.verify import AllowListEntry, SignaturePlacement, VerificationTarget
from support.clock import VECTOR_NOW

from .gate_support import CRADLE, SHARED, SOURCE, gate_settings, make_nupkg

RESTSHARP = SHARED / "vectors" / "nuget.org" / "RestSharp.106.11.4.nupkg"




def write_toml(folder: Path, text: str) -> Path:
    path = folder / "nuseal.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- allow list
def test_allow_list_read_from_the_project_folder(tmp_path: Path) -> None:
    write_toml(
        tmp_path,
        '[[scan.allow]]\nid = "EntityFramework"\nrules = ["NS1101", "NS11*"]\nreason = "EF commands"\n'
        '[[scan.allow]]\nid = "Contoso.*"\nrules = "NS2001"\n',
    )
    allow = load_allow_list(tmp_path)
    assert allow.source == str(tmp_path / "nuseal.toml")
    assert allow.allows("entityframework", "NS1110") is not None
    assert allow.allows("EntityFramework", "NS2001") is None
    assert allow.allows("Contoso.Build", "ns2001") is not None
    assert allow.allows("EntityFramework.Core", "NS1101") is None
    assert allow.allows(None, "NS1101") is None


def test_missing_allow_list_is_empty(tmp_path: Path) -> None:
    assert load_allow_list(None).entries == ()
    assert load_allow_list(tmp_path).entries == ()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[scan.allow]]\nid = "A"\n', "'rules'"),
        ('[[scan.allow]]\nrules = ["NS1101"]\n', "'id'"),
        ('[[scan.allow]]\nid = "A"\nrules = ["NS1101"]\nversion = "1.0"\n', "unknown key(s) version"),
        ("[scan]\nallow = 3\n", "array of tables"),
        ("[[scan.allow]\n", "cannot read"),
    ],
)
def test_bad_allow_list_names_the_file_and_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_allow_list(path)
    assert str(path) in info.value.message and needle in info.value.message


# ---------------------------------------------------------------------------------------------- scan verdict
def test_download_and_run_init_ps1_refused_then_allowed(tmp_path: Path) -> None:
    data = make_nupkg("Evil.Lib", "1.0.0", {"tools/init.ps1": CRADLE})
    refused = check(data, package_id="Evil.Lib", version="1.0.0", source=SOURCE, settings=gate_settings(),
                    now=VECTOR_NOW)
    assert refused.refused and refused.verification.valid
    assert refused.rule_id == "NS1110" and refused.code is None
    err = refused.error()
    assert err.rule_id == "NS1110" and err.package == "Evil.Lib 1.0.0" and err.source == SOURCE
    assert "Evil.Lib 1.0.0" in err.message and SOURCE in err.message and "tools/init.ps1" in err.message

    other_rule = load_allow_list(write_toml(tmp_path, '[[scan.allow]]\nid = "Evil.Lib"\nrules = ["NS2001"]\n'))
    assert check(
        data, package_id="Evil.Lib", version="1.0.0", source=SOURCE, settings=gate_settings(allow=other_rule),
        now=VECTOR_NOW,
    ).refused
    other_id = load_allow_list(write_toml(tmp_path, '[[scan.allow]]\nid = "Good.Lib"\nrules = ["NS1110"]\n'))
    other = gate_settings(allow=other_id)
    assert check(data, package_id="Evil.Lib", version="1.0.0", source=SOURCE, settings=other, now=VECTOR_NOW).refused

    allow = load_allow_list(write_toml(tmp_path, '[[scan.allow]]\nid = "evil.*"\nrules = ["NS1*"]\n'))
    passed = check(data, package_id="Evil.Lib", version="1.0.0", source=SOURCE, settings=gate_settings(allow=allow),
                   now=VECTOR_NOW)
    assert not passed.refused and passed.message == ""
    assert [f.rule_id for f in passed.allowed] == ["NS1110"]


def test_block_on_threshold() -> None:
    # a hidden-window Start-Process in install.ps1 is a warning, not an error
    data = make_nupkg("Warn.Lib", "1.0.0", {"tools/install.ps1": "Start-Process calc.exe -WindowStyle Hidden\n"})
    at_error = check(data, package_id="Warn.Lib", version="1.0.0", source=SOURCE, settings=gate_settings(),
                     now=VECTOR_NOW)
    assert at_error.scan is not None
    worst = at_error.scan.max_severity
    assert worst is Severity.WARNING, [f.rule_id for f in at_error.scan.findings]
    assert not at_error.refused
    at_warning = check(
        data, package_id="Warn.Lib", version="1.0.0", source=SOURCE, settings=gate_settings(block_on=Severity.WARNING),
        now=VECTOR_NOW,
    )
    assert at_warning.refused and at_warning.rule_id is not None
    assert "--block-on warning" in at_warning.message


def test_scan_off_skips_the_scan() -> None:
    data = make_nupkg("Evil.Lib", "1.0.0", {"tools/init.ps1": CRADLE})
    result = check(data, package_id="Evil.Lib", version="1.0.0", source=SOURCE, settings=gate_settings(scan=False),
                   now=VECTOR_NOW)
    assert not result.refused and result.scan is None


def test_package_other_than_the_one_asked_for_is_refused() -> None:
    data = make_nupkg("Other.Lib", "2.0.0")
    result = check(data, package_id="Wanted.Lib", version="1.0.0", source=SOURCE, settings=gate_settings(),
                   now=VECTOR_NOW)
    assert result.refused and result.problem is not None
    assert "Other.Lib 2.0.0" in result.message and "Wanted.Lib 1.0.0" in result.message
    same = check(data, package_id="other.lib", version="2.0", source=SOURCE, settings=gate_settings(), now=VECTOR_NOW)
    assert not same.refused


def test_not_a_zip_is_refused_without_a_traceback() -> None:
    result = check(b"not a zip", package_id="X", version="1.0.0", source=SOURCE, settings=gate_settings(),
                   now=VECTOR_NOW)
    assert result.refused and "Package 'X 1.0.0'" in result.message


# ---------------------------------------------------------------------------------------------- policy
def _repository_fp(data: bytes) -> str:
    primary = PrimarySignature.load(PackageArchive.from_bytes(data).read_signature())
    assert primary.signer_certificate is not None
    return fingerprint(primary.signer_certificate, HashAlgorithm.SHA256)


def test_client_policy_from_nuget_config() -> None:
    data = RESTSHARP.read_bytes()
    fp = _repository_fp(data)
    config = parse_nuget_config(
        f"""<configuration><config><add key="signatureValidationMode" value="require" /></config>
        <trustedSigners><repository name="nuget.org" serviceIndex="https://api.nuget.org/v3/index.json">
        <certificate fingerprint="{fp}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
        <owners>Ubiquitous;nuget</owners></repository></trustedSigners></configuration>""".encode()
    )
    policy, issues = client_policy([config], revocation_mode=RevocationMode.OFFLINE)
    assert policy.name == "require" and not issues
    ok = check(data, package_id="RestSharp", version="106.11.4", source=SOURCE, settings=gate_settings(policy=policy),
               now=VECTOR_NOW)
    assert not ok.refused, ok.message
    # an owner list that does not hold the package's owners: NU3034
    wrong = parse_nuget_config(
        f"""<configuration><config><add key="signatureValidationMode" value="require" /></config>
        <trustedSigners><repository name="nuget.org" serviceIndex="https://api.nuget.org/v3/index.json">
        <certificate fingerprint="{fp}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />
        <owners>someone-else</owners></repository></trustedSigners></configuration>""".encode()
    )
    policy2, _ = client_policy([wrong], revocation_mode=RevocationMode.OFFLINE)
    refused = check(
        data, package_id="RestSharp", version="106.11.4", source=SOURCE, settings=gate_settings(policy=policy2),
        now=VECTOR_NOW,
    )
    assert refused.refused and refused.code is not None and refused.code.value == "NU3034"
    accept, _ = client_policy([wrong], mode=SignatureValidationMode.ACCEPT, revocation_mode=RevocationMode.OFFLINE)
    assert accept.name == "accept"
    warned = check(
        data, package_id="RestSharp", version="106.11.4", source=SOURCE, settings=gate_settings(policy=accept),
        now=VECTOR_NOW,
    )
    assert not warned.refused and any(w.code is not None and w.code.value == "NU3034" for w in warned.warnings)


def test_repository_signatures_of_a_source() -> None:
    data = RESTSHARP.read_bytes()
    fp = _repository_fp(data)
    unsigned = make_nupkg("Plain.Lib")
    signed_source = RepositorySignatureInfo(
        all_repository_signed=True,
        certificates=(AllowListEntry(fp, HashAlgorithm.SHA256, VerificationTarget.REPOSITORY, SignaturePlacement.ANY),),
    )
    gate = gate_settings(repository_signatures=((SOURCE, signed_source),))
    # accept mode lets unsigned packages in, except from a source that says all its packages are signed
    assert not check(unsigned, package_id="Plain.Lib", version="1.0.0", source="https://other/", settings=gate,
                     now=VECTOR_NOW).refused
    refused = check(unsigned, package_id="Plain.Lib", version="1.0.0", source=SOURCE, settings=gate, now=VECTOR_NOW)
    assert refused.refused and refused.code is not None and refused.code.value == "NU3004"
    assert not check(data, package_id="RestSharp", version="106.11.4", source=SOURCE, settings=gate,
                     now=VECTOR_NOW).refused
    other_cert = RepositorySignatureInfo(
        all_repository_signed=True,
        certificates=(AllowListEntry("AB" * 32, HashAlgorithm.SHA256, VerificationTarget.REPOSITORY),),
    )
    gate2 = gate_settings(repository_signatures=((SOURCE, other_cert),))
    wrong = check(data, package_id="RestSharp", version="106.11.4", source=SOURCE, settings=gate2, now=VECTOR_NOW)
    assert wrong.refused and wrong.code is not None and wrong.code.value == "NU3034"
