"""nuget.config as restore reads it (nuseal.client.settings): the hierarchy, <clear/>, disabled sources, source
mapping, credentials with %ENV% passwords, globalPackagesFolder / NUGET_PACKAGES, --configfile, and the signing
policy merged from several files."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.client.settings import NUGET_ORG, load_settings
from nuseal.errors import ConfigError, UsageError
from nuseal.trust import SignatureValidationMode

FP = "3F9001EA83C560D712C24CF213C3D312CB3BFF51EE89435D3430BD06B5D0EECE"


def _write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n{body}\n</configuration>\n')
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME so the machine's user nuget.config never leaks in."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("NUGET_PACKAGES", raising=False)
    return h


def test_no_config_anywhere_means_nuget_org_and_the_default_folder(tmp_path: Path, home: Path) -> None:
    s = load_settings(tmp_path)
    assert [(x.name, x.url) for x in s.enabled_sources] == [("nuget.org", NUGET_ORG)]
    assert s.global_packages_folder == home / ".nuget" / "packages"
    assert s.signature_validation_mode is SignatureValidationMode.ACCEPT


def test_hierarchy_closer_files_override_and_clear_drops_farther_sources(tmp_path: Path, home: Path) -> None:
    _write(
        home / ".nuget" / "NuGet" / "NuGet.Config",
        '<packageSources><add key="user" value="https://u/v3/index.json"/></packageSources>',
    )
    _write(
        tmp_path / "repo" / "nuget.config",
        '<packageSources><add key="repo" value="https://r/v3/index.json"/><add key="dup" value="https://old/"/>'
        "</packageSources>",
    )
    project = tmp_path / "repo" / "src" / "app"
    _write(
        project / "NuGet.Config",
        '<packageSources><add key="dup" value="https://new/v3/index.json"/><add key="local" value="../feed"/>'
        '</packageSources><disabledPackageSources><add key="repo" value="true"/></disabledPackageSources>',
    )
    s = load_settings(project)
    names = [(x.name, x.url, x.enabled) for x in s.sources]
    assert ("user", "https://u/v3/index.json", True) in names
    assert ("repo", "https://r/v3/index.json", False) in names
    assert ("dup", "https://new/v3/index.json", True) in names
    local = next(x for x in s.sources if x.name == "local")
    assert local.is_local and Path(local.url) == (project.parent / "feed").resolve()
    assert s.config_files[0] == (project / "NuGet.Config").resolve()
    # a <clear/> in the closest file drops everything farther away
    _write(
        project / "NuGet.Config",
        '<packageSources><clear/><add key="only" value="https://o/v3/index.json"/></packageSources>',
    )
    assert [x.name for x in load_settings(project).sources] == ["only"]


def test_configfile_replaces_the_hierarchy(tmp_path: Path, home: Path) -> None:
    _write(
        tmp_path / "nuget.config", '<packageSources><add key="near" value="https://n/v3/index.json"/></packageSources>'
    )
    chosen = _write(
        tmp_path / "other.config",
        '<packageSources><add key="chosen" value="https://c/v3/index.json"/></packageSources>',
    )
    s = load_settings(tmp_path, config_file=chosen)
    assert [x.name for x in s.sources] == ["chosen"]
    with pytest.raises(UsageError, match="does not exist"):
        load_settings(tmp_path, config_file=tmp_path / "missing.config")


def test_credentials_cleartext_and_environment_variables(tmp_path: Path, home: Path) -> None:
    _write(
        tmp_path / "nuget.config",
        '<packageSources><clear/><add key="Contoso Feed" value="https://c/v3/index.json"/></packageSources>'
        "<packageSourceCredentials><Contoso_x0020_Feed>"
        '<add key="Username" value="%FEED_USER%"/><add key="ClearTextPassword" value="%FEED_TOKEN%"/>'
        '<add key="ValidAuthenticationTypes" value="basic"/>'
        "</Contoso_x0020_Feed></packageSourceCredentials>",
    )
    s = load_settings(tmp_path, environ={"FEED_USER": "alice", "FEED_TOKEN": "s3cret"})
    cred = s.sources[0].credential
    assert cred is not None and (cred.username, cred.password) == ("alice", "s3cret")
    assert cred.valid_authentication_types == ("basic",)
    # an unset variable stays as written (Environment.ExpandEnvironmentVariables)
    cred2 = load_settings(tmp_path, environ={}).sources[0].credential
    assert cred2 is not None and cred2.password == "%FEED_TOKEN%"


def test_encrypted_password_is_a_clear_error(tmp_path: Path, home: Path) -> None:
    _write(
        tmp_path / "nuget.config",
        '<packageSources><add key="x" value="https://x/v3/index.json"/></packageSources>'
        '<packageSourceCredentials><x><add key="Username" value="u"/>'
        '<add key="Password" value="AQAAANCMnd8BFdERjHoAwE"/>'
        "</x></packageSourceCredentials>",
    )
    with pytest.raises(ConfigError, match="only NuGet on Windows can decrypt"):
        load_settings(tmp_path)


def test_package_source_mapping_longest_pattern_wins(tmp_path: Path, home: Path) -> None:
    _write(
        tmp_path / "nuget.config",
        '<packageSources><clear/><add key="nuget" value="https://n/v3/index.json"/>'
        '<add key="contoso" value="https://c/v3/index.json"/></packageSources>'
        "<packageSourceMapping>"
        '<packageSource key="nuget"><package pattern="*"/><package pattern="Contoso.Public.*"/></packageSource>'
        '<packageSource key="contoso"><package pattern="Contoso.*"/><package pattern="Exact.Id"/></packageSource>'
        "</packageSourceMapping>",
    )
    s = load_settings(tmp_path)
    assert [x.name for x in s.sources_for("Newtonsoft.Json")] == ["nuget"]
    assert [x.name for x in s.sources_for("contoso.lib")] == ["contoso"]
    assert [x.name for x in s.sources_for("Contoso.Public.Thing")] == ["nuget"]
    assert [x.name for x in s.sources_for("exact.id")] == ["contoso"]
    _write(
        tmp_path / "nuget.config",
        '<packageSources><add key="a" value="https://a/"/></packageSources>'
        '<packageSourceMapping><packageSource key="a"><package pattern="A*B"/></packageSource></packageSourceMapping>',
    )
    with pytest.raises(ConfigError, match="may only end a pattern"):
        load_settings(tmp_path)


def test_global_packages_folder_relative_to_its_file_and_nuget_packages_wins(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "repo" / "nuget.config", '<config><add key="globalPackagesFolder" value="../gpf"/></config>')
    assert load_settings(tmp_path / "repo").global_packages_folder == (tmp_path / "gpf").resolve()
    monkeypatch.setenv("NUGET_PACKAGES", str(tmp_path / "env-gpf"))
    assert load_settings(tmp_path / "repo").global_packages_folder == tmp_path / "env-gpf"


def test_signing_policy_merged_across_files(tmp_path: Path, home: Path) -> None:
    _write(
        tmp_path / "nuget.config",
        '<config><add key="signatureValidationMode" value="require"/></config>'
        f'<trustedSigners><author name="far"><certificate fingerprint="{FP}" hashAlgorithm="SHA256"/></author>'
        "</trustedSigners>",
    )
    near = tmp_path / "app"
    _write(
        near / "nuget.config",
        f'<trustedSigners><repository name="nuget.org" serviceIndex="https://api.nuget.org/v3/index.json">'
        f'<certificate fingerprint="{FP}" hashAlgorithm="SHA256"/><owners>microsoft</owners></repository>'
        "</trustedSigners>",
    )
    s = load_settings(near)
    assert s.signature_validation_mode is SignatureValidationMode.REQUIRE
    assert [t.name for t in s.trusted_signers] == ["far", "nuget.org"]
    _write(
        near / "nuget.config",
        '<config><add key="signatureValidationMode" value="accept"/></config><trustedSigners><clear/></trustedSigners>',
    )
    s = load_settings(near)
    assert s.signature_validation_mode is SignatureValidationMode.ACCEPT
    assert s.trusted_signers == ()


def test_bad_xml_names_the_file(tmp_path: Path, home: Path) -> None:
    (tmp_path / "nuget.config").write_text("<configuration><packageSources>")
    with pytest.raises(ConfigError, match=r"nuget\.config is not a valid XML"):
        load_settings(tmp_path)


def test_source_option_replaces_configured_sources(tmp_path: Path, home: Path) -> None:
    _write(
        tmp_path / "nuget.config", '<packageSources><add key="cfg" value="https://cfg/v3/index.json"/></packageSources>'
    )
    s = load_settings(tmp_path, extra_sources=["https://cli/v3/index.json"])
    assert [x.url for x in s.enabled_sources] == ["https://cli/v3/index.json"]
