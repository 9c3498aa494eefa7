"""Microsoft's NuGet.exe 5.8 (Mono) against a signing `nuseal serve` (issue 5): it pushes an author-signed package
and installs the repository-signed result; a push the submission rules refuse fails in NuGet.exe with the feed's
message.

The feed trusts the dev PKI's root, repository-signs with its ``repository`` certificate and timestamps with its
TSA (all on loopback). alice registers the dev ``author`` certificate with `nuseal admin register-certificate`
behind a fresh TOTP code, so every push of her packages must be author-signed with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cli.main import main
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.timestamp import timestamps_of

from .conftest import Feed, NuGetExe, make_package
from .signing_support import (
    SigningPki,
    admin_result,
    assert_not_visible,
    download,
    enable_2fa_cli,
    feed_index_url,
    pki_feed_args,
    pki_feed_env,
    served_pki,
    start_signing_feed,
    trusted_signers_config,
)

pytestmark = [pytest.mark.nugetexe, pytest.mark.slow]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningPki]:
    yield from served_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory, pki: SigningPki) -> Iterator[Feed]:
    f = start_signing_feed(tmp_path_factory.mktemp("feed"), *pki_feed_args(pki), env=pki_feed_env(pki))
    yield f
    f.stop()


@pytest.fixture(scope="module")
def author_fp(feed: Feed, pki: SigningPki, tmp_path_factory: pytest.TempPathFactory) -> str:
    """alice turns 2FA on and registers the dev ``author`` certificate (DER) with a fresh code."""
    codes = enable_2fa_cli(feed.data_dir, None, "alice")
    der = pki.dev.cert("author").public_bytes(Encoding.DER)
    path = tmp_path_factory.mktemp("cer") / "author.cer"
    path.write_bytes(der)
    rc, out = admin_result(feed.data_dir, None, "register-certificate", "alice", str(path), "--totp", codes.fresh())
    fp = hashlib.sha256(der).hexdigest()
    assert rc == 0 and f"registered {fp} for alice" in out, out
    return fp


def _primary(data: bytes) -> PrimarySignature:
    return PrimarySignature.load(PackageArchive.from_bytes(data).read_signature())


def test_nugetexe_pushes_author_signed_and_installs_the_repository_signed_result(
    feed: Feed,
    pki: SigningPki,
    author_fp: str,
    nuget: NuGetExe,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    unsigned = make_package("NuGetExe.Signed", "1.0.0", files={"content/readme.txt": b"signed by alice\n"})
    signed = pki.sign(unsigned)
    pkg = tmp_path / "NuGetExe.Signed.1.0.0.nupkg"
    pkg.write_bytes(signed)

    pushed = nuget.run("push", str(pkg), "-Source", feed.source, "-ApiKey", feed.keys["alice"])
    assert "Your package was pushed" in pushed.stdout, pushed.stdout

    out_dir = tmp_path / "installed"
    nuget.run(
        "install", "NuGetExe.Signed", "-Version", "1.0.0", "-OutputDirectory", str(out_dir), "-Source", feed.source
    )
    folder = out_dir / "NuGetExe.Signed.1.0.0"
    installed = (folder / "NuGetExe.Signed.1.0.0.nupkg").read_bytes()
    assert (folder / "content" / "readme.txt").read_bytes() == b"signed by alice\n"

    # what NuGet.exe installed is what the feed serves: not the pushed bytes, the repository-signed ones
    served = download(feed, "NuGetExe.Signed", "1.0.0")
    assert installed == served
    assert installed != signed
    primary = _primary(installed)
    assert primary.type is SignatureType.AUTHOR
    assert primary.signer_certificate == pki.dev.cert("author")
    assert hashlib.sha256(primary.signer_certificate.public_bytes(Encoding.DER)).hexdigest() == author_fp
    assert primary.signature_value == _primary(signed).signature_value  # alice's signature, as pushed
    repo = primary.repository_countersignature()
    assert repo is not None and repo.signer_certificate == pki.dev.cert("repository")
    assert repo.v3_service_index_url == feed_index_url(feed)
    assert repo.package_owners == ("alice",)
    assert len(timestamps_of(repo)) == 1
    assert PackageArchive.from_bytes(installed).without_signature() == unsigned

    # `nuseal verify` passes the installed package when trusting the feed's repository certificate and alice
    roots = str(pki.dev.root_pem_path)
    config = trusted_signers_config(tmp_path / "nuget.config", feed, pki, "alice")
    args = ["--configfile", str(config), "--code-signing-roots", roots, "--timestamping-roots", roots]
    rc = main(["verify", str(folder / "NuGetExe.Signed.1.0.0.nupkg"), *args])
    out, err = capsys.readouterr()
    assert rc == 0 and "Successfully verified package" in out, out + err
    # ... and not the package as pushed (no repository countersignature: not trusted by that config)
    rc = main(["verify", str(pkg), *args])
    out, err = capsys.readouterr()
    assert rc == 1 and "NU3034" in out + err, out + err


def test_nugetexe_push_of_an_unsigned_package_is_refused_with_the_feeds_message(
    feed: Feed, pki: SigningPki, author_fp: str, nuget: NuGetExe, tmp_path: Path
) -> None:
    pkg = tmp_path / "NuGetExe.Unsigned.1.0.0.nupkg"
    pkg.write_bytes(make_package("NuGetExe.Unsigned", "1.0.0"))
    refused = nuget.run("push", str(pkg), "-Source", feed.source, "-ApiKey", feed.keys["alice"], check=False)
    printed = refused.stdout + refused.stderr
    assert refused.returncode != 0, printed
    assert "400" in printed, printed
    assert "NU3004" in printed and author_fp in printed, printed  # the feed's message, as NuGet.exe prints it
    assert "Your package was pushed" not in printed
    assert_not_visible(feed, "NuGetExe.Unsigned", "1.0.0")

    # signed by a certificate nobody registered: refused too, naming alice's fingerprint
    foreign = tmp_path / "NuGetExe.Foreign.1.0.0.nupkg"
    foreign.write_bytes(pki.sign(make_package("NuGetExe.Foreign", "1.0.0"), "repository"))
    refused = nuget.run("push", str(foreign), "-Source", feed.source, "-ApiKey", feed.keys["alice"], check=False)
    printed = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "NU3034" in printed and author_fp in printed, printed
    assert_not_visible(feed, "NuGetExe.Foreign", "1.0.0")
