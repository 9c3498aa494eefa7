"""nuget.org's submission rules in the feed's push pipeline (issue 5, ``../shared/NUGET-SIGNING.md`` §5.2), one
rejected package per rule: each refusal carries NuGet's code, names the problem, and leaves nothing visible
(no flat-container entry, no registration, no search hit, nothing stored).

The feed trusts only the dev PKI's root (``--trust-bundle``) and refuses unsigned packages
(``--require-author-signature``). Packages nuseal's own signer refuses to make (RSA-1024, wrong EKU,
self-signed, untrusted, expired, revoked, no timestamp) are made with ``SigningPki.forced``. Where the rule's
certificate can be registered at all (self-signed, untrusted, revoked), its owner has registered it, so the rule
itself is what refuses the push; the others (RSA-1024, wrong EKU, expired: refused at registration) are pushed by
an owner whose registered certificate is the valid ``author`` one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive, append_signature
from nuseal.signature import PrimarySignature, oids
from nuseal.signature.attributes import SignatureType
from nuseal.signature.builder import create_primary_signature
from nuseal.trust import RevocationMode, TrustStore
from nuseal.verify import VerificationPolicy, Verifier

from .conftest import Feed, make_package
from .signing_support import (
    OTHER_REPOSITORY_URL,
    SigningPki,
    admin_result,
    assert_not_visible,
    download,
    enable_2fa_cli,
    feed_index_url,
    issue_tsa,
    pki_feed_args,
    pki_feed_env,
    served_pki,
    signature_entry,
    signed_with_tsa,
    start_signing_feed,
    with_second_timestamp,
)

#: user -> the dev certificate they register (nora registers none).
REGISTERED = {"alice": "author", "sam": "self-signed-signer", "uma": "untrusted-signer", "rita": "revoked-signer"}
USERS = (*REGISTERED, "nora")


def fingerprint(pki: SigningPki, name: str) -> str:
    return hashlib.sha256(pki.dev.cert(name).public_bytes(Encoding.DER)).hexdigest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningPki]:
    yield from served_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory, pki: SigningPki) -> Iterator[Feed]:
    f = start_signing_feed(
        tmp_path_factory.mktemp("feed"),
        *pki_feed_args(pki),
        "--require-author-signature",
        env=pki_feed_env(pki),
        users=USERS,
    )
    cer = f.data_dir / "cer"
    cer.mkdir()
    for user, name in REGISTERED.items():
        codes = enable_2fa_cli(f.data_dir, None, user)
        path = cer / f"{name}.cer"
        path.write_bytes(pki.dev.cert(name).public_bytes(Encoding.DER))
        rc, out = admin_result(f.data_dir, None, "register-certificate", user, str(path), "--totp", codes.fresh())
        assert rc == 0, out
    yield f
    f.stop()


def _refused(feed: Feed, data: bytes, user: str, package_id: str, version: str = "1.0.0") -> str:
    r = feed.push(data, key=user)
    assert r.status_code == 400, (r.status_code, r.text)
    assert_not_visible(feed, package_id, version)
    return r.text


def _tsa_stamped_by(pki: SigningPki, data: bytes, tsa: str) -> bytes:
    """Author-signed with ``author``, the timestamp token signed by dev certificate ``tsa``."""
    now = datetime.now(UTC)
    der = create_primary_signature(
        package_hash=HashAlgorithm.SHA256.digest(data),
        hash_algorithm=HashAlgorithm.SHA256,
        signer=pki.signer("author"),
        signature_type=SignatureType.AUTHOR,
        signing_time=now,
        timestamper=pki.timestamper(tsa=tsa),
    )
    return append_signature(data, der, when=now)


def _made_tsa_case(pki: SigningPki, data: bytes, case: str) -> bytes:
    """Author-signed with ``author``, timestamped by a TSA certificate made here (the dev PKI has none like it),
    issued by the dev intermediate with EKU timeStamping:

    * ``tsa-rsa-1024``: an RSA-1024 key, valid now, token of now (NuGet: NU3023, ``Timestamp.Verify``);
    * ``tsa-expired``: expired an hour ago, token of two hours ago (inside its validity and the signer's). NuGet's
      client accepts it (the timestamp chain ignores NotTimeValid), nuget.org refuses it at ingestion
      (``OnlineCertificateVerifier`` at the current time): the feed's rule, NU3028;
    * ``tsa-expired-before-stamping``: expired an hour ago, token of now (NuGet: NU3036, genTime outside the TSA
      certificate's validity).
    """
    now = datetime.now(UTC).replace(microsecond=0)
    if case == "tsa-rsa-1024":
        tsa = issue_tsa(pki, key_size=1024, not_before=now - timedelta(days=1), not_after=now + timedelta(days=365))
        return signed_with_tsa(pki, data, tsa, gen_time=now)
    tsa = issue_tsa(pki, not_before=now - timedelta(days=3 * 365), not_after=now - timedelta(hours=1))
    gen_time = now - timedelta(hours=2) if case == "tsa-expired" else now
    return signed_with_tsa(pki, data, tsa, gen_time=gen_time)


Make = Callable[[SigningPki, bytes], bytes]

# (rule, pushing user, how the package is made, NU code, words the refusal must contain)
CASES: list[tuple[str, str, Make, str, str]] = [
    (
        "repository-primary",
        "alice",
        lambda p, d: p.repository_sign(d),
        "NU3000",
        "primary signature is a repository signature",
    ),
    ("no-timestamp", "alice", lambda p, d: p.forced(d, "author", timestamped=False), "NU3027", "timestamp"),
    ("two-timestamps", "alice", lambda p, d: with_second_timestamp(p.sign(d), p), "NU3000", "timestamp"),
    ("rsa-1024", "alice", lambda p, d: p.forced(d, "rsa1024-signer"), "NU3014", "minimum public key length"),
    ("self-issued", "sam", lambda p, d: p.forced(d, "self-signed-signer"), "NU3018", ""),
    ("untrusted-root", "uma", lambda p, d: p.forced(d, "untrusted-signer"), "NU3018", ""),
    ("wrong-eku", "alice", lambda p, d: p.forced(d, "no-eku-signer"), "NU3012", "invalid policy"),
    ("expired", "alice", lambda p, d: p.forced(d, "expired-signer"), "NU3037", "expired"),
    (
        "expired-since-signing",
        "alice",
        lambda p, d: p.forced(
            d,
            "expired-signer",
            signed_at=p.dev.cert("expired-signer").not_valid_after_utc - timedelta(days=30),
            gen_time=p.dev.cert("expired-signer").not_valid_after_utc - timedelta(days=30),
        ),
        "NU3037",
        "valid at submission",
    ),
    (
        "tsa-without-timestamping-eku",
        "alice",
        lambda p, d: _tsa_stamped_by(p, d, "tsa-no-eku"),
        "NU3028",
        "invalid policy",
    ),
    ("tsa-rsa-1024", "alice", lambda p, d: _made_tsa_case(p, d, "tsa-rsa-1024"), "NU3023", "minimum public key length"),
    ("tsa-expired", "alice", lambda p, d: _made_tsa_case(p, d, "tsa-expired"), "NU3028", "valid at submission"),
    (
        "tsa-expired-before-stamping",
        "alice",
        lambda p, d: _made_tsa_case(p, d, "tsa-expired-before-stamping"),
        "NU3036",
        "",
    ),
]


@pytest.mark.parametrize(("rule", "user", "make", "nu_code", "words"), CASES, ids=[c[0] for c in CASES])
def test_submission_rule(
    feed: Feed, pki: SigningPki, rule: str, user: str, make: Make, nu_code: str, words: str
) -> None:
    package_id = f"Rule.{rule.title().replace('-', '')}"
    data = make(pki, make_package(package_id, "1.0.0"))
    text = _refused(feed, data, user, package_id)
    assert text.startswith(f"{nu_code}: "), text
    assert words in text, text


def test_self_issued_refused_even_when_the_trust_store_holds_it(
    pki: SigningPki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """nuget.org refuses self-issued signers ("Packages signed with self-issued certificates are rejected"); a feed
    whose administrator put the certificate into the trust bundle refuses them too, with the reason."""
    data_dir = tmp_path_factory.mktemp("trusting-feed")
    bundle = data_dir / "roots.pem"
    bundle.write_bytes(pki.dev.root_pem_path.read_bytes() + pki.dev.cert_path("self-signed-signer").read_bytes())
    args = pki_feed_args(pki)
    args[args.index("--trust-bundle") + 1] = str(bundle)
    f = start_signing_feed(data_dir, *args, env=pki_feed_env(pki), users=("sam",))
    try:
        codes = enable_2fa_cli(f.data_dir, None, "sam")
        cer = data_dir / "self.cer"
        cer.write_bytes(pki.dev.cert("self-signed-signer").public_bytes(Encoding.DER))
        rc, out = admin_result(f.data_dir, None, "register-certificate", "sam", str(cer), "--totp", codes.fresh())
        assert rc == 0, out
        text = _refused(
            f, pki.forced(make_package("Rule.SelfTrusted", "1.0.0"), "self-signed-signer"), "sam", "Rule.SelfTrusted"
        )
        assert text.startswith("NU3018: ") and "self-issued" in text and "NU3034" not in text, text
    finally:
        f.stop()


def test_revoked_signer(feed: Feed, pki: SigningPki) -> None:
    """rita's registered certificate is revoked in the dev OCSP responder and CRL before she pushes."""
    package_id = "Rule.Revoked"
    data = pki.forced(make_package(package_id, "1.0.0"), "revoked-signer")
    pki.server.revoke("revoked-signer", at=datetime.now(UTC) - timedelta(hours=1))
    try:
        text = _refused(feed, data, "rita", package_id)
    finally:
        pki.server.unrevoke("revoked-signer")
    assert text.startswith("NU3012: ") and "revoked" in text.lower(), text


def test_valid_signatures_of_each_registered_owner_pass(feed: Feed, pki: SigningPki) -> None:
    """The control: the same feed accepts alice's package signed with her registered, valid certificate and
    serves it repository-countersigned, so the refusals above are the rules' doing."""
    r = feed.push(pki.sign(make_package("Rule.Control", "1.0.0")))
    assert r.status_code == 201, r.text
    served = PrimarySignature.load(signature_entry(download(feed, "Rule.Control", "1.0.0")))
    assert served.type is SignatureType.AUTHOR and served.repository_countersignature() is not None
    # --advertise-repository-signatures auto on an http base URL: not listed (NuGet requires https for it)
    with feed.client() as c:
        types = {r["@type"] for r in c.get("/v3/index.json").json()["resources"]}
    assert not any(t.startswith("RepositorySignatures") for t in types), types


def test_unsigned_refused_with_require_author_signature(feed: Feed) -> None:
    text = _refused(feed, make_package("Rule.Unsigned", "1.0.0"), "nora", "Rule.Unsigned")
    assert text.startswith("NU3004: ") and "only author-signed" in text, text


def test_signed_push_without_any_registered_certificate_says_what_to_do(feed: Feed, pki: SigningPki) -> None:
    """nuget.org's ``RejectSignedPackagesWithNoRegisteredCertificate``: nora registered nothing."""
    text = _refused(feed, pki.sign(make_package("Rule.Nobody", "1.0.0")), "nora", "Rule.Nobody")
    assert text.startswith("NU3034: "), text
    assert "No owner of Rule.Nobody has registered a signing certificate" in text
    assert "register-certificate" in text and "account page" in text


def test_refusal_names_the_registered_fingerprints(feed: Feed, pki: SigningPki) -> None:
    """sam's id refuses a package signed with alice's (valid) certificate, naming sam's fingerprint only."""
    text = _refused(feed, pki.sign(make_package("Rule.Foreign", "1.0.0")), "sam", "Rule.Foreign")
    assert text.startswith("NU3034: "), text
    assert fingerprint(pki, "self-signed-signer") in text and fingerprint(pki, "author") not in text


def test_foreign_repository_countersignature_is_replaced_by_the_feeds(feed: Feed, pki: SigningPki) -> None:
    """An author-signed package countersigned by another repository (a package downloaded from nuget.org, say)
    keeps its author signature; the other repository's countersignature is removed and the feed's added, as
    nuget.org strips repository signatures that are not its own (NUGET-SIGNING.md §5.2)."""
    author = pki.sign(make_package("Rule.Mirrored", "1.0.0"))
    other = pki.repository_sign(author, "repository", OTHER_REPOSITORY_URL)
    assert PrimarySignature.load(signature_entry(other)).repository_countersignature() is not None
    r = feed.push(other)
    assert r.status_code == 201, r.text
    assert OTHER_REPOSITORY_URL in r.headers["X-NuGet-Warning"], r.headers
    served = PrimarySignature.load(signature_entry(download(feed, "Rule.Mirrored", "1.0.0")))
    assert served.type is SignatureType.AUTHOR
    assert served.signature_value == PrimarySignature.load(signature_entry(author)).signature_value
    assert len(served.countersignatures) == 1
    repo = served.repository_countersignature()
    assert repo is not None and repo.package_owners == ("alice",)
    assert repo.v3_service_index_url == feed_index_url(feed)


@pytest.mark.oracle
def test_nugets_verifier_accepts_the_replaced_countersignature(feed: Feed, pki: SigningPki) -> None:
    from support import oracle  # noqa: PLC0415 - tests/support/oracle.py

    author = pki.sign(make_package("Rule.MirroredOracle", "1.0.0"))
    r = feed.push(pki.repository_sign(author, "repository", OTHER_REPOSITORY_URL))
    assert r.status_code == 201, r.text
    served = download(feed, "Rule.MirroredOracle", "1.0.0")
    root = pki.dev.root_pem_path
    report = oracle.verify(served, trust_bundle=root, timestamp_bundle=root)
    assert report.fatal is None and report.integrity == "ok", (report.fatal, report.integrity_error)
    for policy in ("requireMode", "verifyCommand"):
        verdict = report.policy(policy)
        assert verdict.is_valid and not verdict.error_codes, (policy, verdict.codes, verdict.messages)
    assert report.countersignature is not None
    assert report.countersignature.v3_service_index_url == feed_index_url(feed)


def test_author_countersignature(feed: Feed, pki: SigningPki) -> None:
    """nuget.org's ``AuthorCounterSignaturesNotSupported``: a countersignature whose commitment type is
    proof-of-origin (author). Made from a repository countersignature by swapping the commitment-type OID (same
    length); the author signature itself is untouched (unsigned attributes are outside it)."""
    author = pki.sign(make_package("Rule.AuthorCountersigned", "1.0.0"))
    countersigned = pki.repository_sign(author, "repository", OTHER_REPOSITORY_URL)
    der = signature_entry(countersigned)
    receipt, origin = (core.ObjectIdentifier(oid).dump() for oid in (oids.PROOF_OF_RECEIPT, oids.PROOF_OF_ORIGIN))
    assert der.count(receipt) == 1
    forged = append_signature(
        PackageArchive.from_bytes(countersigned).without_signature(),
        der.replace(receipt, origin),
        when=datetime.now(UTC),
    )
    assert PrimarySignature.load(signature_entry(forged)).countersignatures == ()
    text = _refused(feed, forged, "alice", "Rule.AuthorCountersigned")
    assert text.startswith("NU3000: ") and "author countersignatures" in text, text


def test_unknown_revocation_is_a_warning(pki: SigningPki, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second dev PKI whose OCSP/CRL responders are not running: the revocation status of the author and TSA
    certificates cannot be found, which nuget.org (and the feed) reports as a warning, not a refusal."""
    from nuseal.devpki import DevPki  # noqa: PLC0415

    offline = SigningPki(DevPki.create(tmp_path_factory.mktemp("offline-pki")), pki.server)  # never served
    data_dir = tmp_path_factory.mktemp("offline-feed")
    bundle = data_dir / "roots.pem"
    bundle.write_bytes(pki.dev.root_pem_path.read_bytes() + offline.dev.root_pem_path.read_bytes())
    args = pki_feed_args(pki)
    args[args.index("--trust-bundle") + 1] = str(bundle)
    f = start_signing_feed(data_dir, *args, env=pki_feed_env(pki), users=("olga",))
    try:
        codes = enable_2fa_cli(f.data_dir, None, "olga")
        cer = data_dir / "author.cer"
        cer.write_bytes(offline.dev.cert("author").public_bytes(Encoding.DER))
        rc, out = admin_result(f.data_dir, None, "register-certificate", "olga", str(cer), "--totp", codes.fresh())
        assert rc == 0, out
        r = f.push(offline.forced(make_package("Rule.Offline", "1.0.0"), "author"), key="olga")
        assert r.status_code == 201, r.text
        warning = r.headers["X-NuGet-Warning"]
        assert "NU3018: The author primary signature found a chain building issue" in warning, warning
        assert "revocation server could not be reached" in warning, warning
        assert "warning: NU3018: " in r.text and "warning: NU3028: " in r.text, r.text  # the TSA's status too
        served = PrimarySignature.load(signature_entry(download(f, "Rule.Offline", "1.0.0")))
        assert served.signer_certificate == offline.dev.cert("author")
        assert served.repository_countersignature() is not None
    finally:
        f.stop()


#: The made-up-TSA cases of CASES, and what NuGet's client verifier (``verifyCommand``: allowIgnoreTimestamp false,
#: as nuget.org's author preset) refuses them with; None: NuGet's client accepts it.
MADE_TSA_CASES = {"tsa-rsa-1024": "NU3023", "tsa-expired": None, "tsa-expired-before-stamping": "NU3036"}


@pytest.mark.oracle
@pytest.mark.parametrize("rule", list(MADE_TSA_CASES))
def test_nugets_verifier_agrees_on_the_made_tsas(pki: SigningPki, rule: str) -> None:
    """NuGet's verifier (the oracle, offline revocation, trusting the dev root) and nuseal's engine under the same
    client policy give the same verdict and errors (codes and messages) for each made-up TSA package, and the code
    the feed refuses it with (CASES) is NuGet's. The one NuGet's client accepts (``tsa-expired``: token inside the TSA's
    validity; .NET builds the timestamp chain with IgnoreNotTimeValid) is refused by the feed through nuget.org's
    own at-ingestion rule (NUGET-SIGNING.md §5.3, ``OnlineCertificateVerifier`` at the current time)."""
    from support import oracle  # noqa: PLC0415 - tests/support/oracle.py

    expected = MADE_TSA_CASES[rule]
    feed_code = next(c[3] for c in CASES if c[0] == rule)
    data = _made_tsa_case(pki, make_package(f"Oracle.{rule.title().replace('-', '')}", "1.0.0"), rule)
    root = pki.dev.root_pem_path
    report = oracle.verify(data, trust_bundle=root, timestamp_bundle=root)
    assert report.fatal is None and report.integrity == "ok", (report.fatal, report.integrity_error)
    verdict = report.policy("verifyCommand")
    roots = TrustStore.from_pem_file(root)
    ours = Verifier(
        VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE),
        code_signing_roots=roots,
        timestamping_roots=roots,
    ).verify_bytes(data, now=datetime.now(UTC))
    our_codes = {i.code.value for i in ours.errors if i.code is not None}
    assert verdict.error_codes == our_codes, (verdict.messages, [str(i) for i in ours.errors])
    nuget_errors = {(i.code, i.message) for i in verdict.issues if i.level == "error"}
    assert nuget_errors == {(i.code.value, i.message) for i in ours.errors if i.code is not None}  # same wording
    assert verdict.is_valid is ours.valid is (expected is None), (verdict.messages, [str(i) for i in ours.errors])
    if expected is None:
        assert feed_code == "NU3028"  # nuget.org's rule, not the client's
    else:
        assert verdict.error_codes == {expected} and feed_code == expected, verdict.messages
