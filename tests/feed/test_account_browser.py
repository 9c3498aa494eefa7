"""The account pages in a real browser (issue 5): Debian's headless Chromium, driven by Playwright with
``executable_path`` set to it, against a signing `nuseal serve` on loopback.

alice signs in with her API key, turns 2FA on from the page (the otpauth:// URI, the typed secret and the QR code,
which zxing-cpp decodes from the screenshot to that same URI,
all shown once; a wrong first code leaves it off), signs out and back in (now a code is asked for), uploads her
code-signing certificate as DER ``.cer`` and a second one as PEM, each behind a fresh code (a replayed code is
refused), is refused an RSA-1024 certificate with its reason and NU code, removes the second one with a fresh
code, pushes a package author-signed with the first and sees its signing on the package page.

TOTP codes are computed here with pyotp from the secret read off the page. Screenshots of each step go to
``$NUSEAL_TEST_ARTIFACTS`` (CI) or ``<repo>/test-artifacts/account-browser/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp
from cryptography.hazmat.primitives.serialization import Encoding
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from .browser_support import CHROMIUM, CHROMIUM_ARGS
from .conftest import Feed, _require, make_package
from .signing_support import (
    Codes,
    SigningPki,
    code,
    pki_feed_args,
    pki_feed_env,
    secret_from_uri,
    served_pki,
    start_signing_feed,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def artifacts() -> Path:
    root = Path(os.environ.get("NUSEAL_TEST_ARTIFACTS") or REPO / "test-artifacts")
    out = root / "account-browser"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningPki]:
    yield from served_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory, pki: SigningPki) -> Iterator[Feed]:
    f = start_signing_feed(tmp_path_factory.mktemp("feed"), *pki_feed_args(pki), env=pki_feed_env(pki))
    yield f
    f.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        _require("Debian's chromium is not installed")
    with sync_playwright() as p:
        # a persistent context gives Chromium a fresh profile of its own (nothing from the machine's user)
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def test_two_factor_and_certificate_registration_in_chromium(
    feed: Feed, pki: SigningPki, page: Page, artifacts: Path, tmp_path: Path
) -> None:
    base = feed.base_url
    shots: list[Path] = []

    def shot(name: str) -> None:
        path = artifacts / f"{len(shots) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)

    # ---------------------------------------------------------------- sign in with the API key
    page.goto(f"{base}/account")
    expect(page).to_have_url(f"{base}/account/login")
    page.fill("#api_key", "not-a-key")
    page.click("#sign-in")
    expect(page.get_by_role("alert")).to_contain_text("API key")
    page.fill("#api_key", feed.keys["alice"])
    page.click("#sign-in")
    expect(page).to_have_url(f"{base}/account")
    expect(page.locator("h1")).to_have_text("Account: alice")
    expect(page.locator("#twofactor-status")).to_contain_text("Off.")
    expect(page.locator("#register-form")).to_have_count(0)  # no registration before 2FA
    expect(page.locator("#no-certificates")).to_be_visible()
    # the session cookie is HttpOnly and SameSite=Strict (not readable by page scripts)
    cookie = next(c for c in page.context.cookies() if c["name"] == "nuseal_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("nuseal_session") == -1

    # ---------------------------------------------------------------- turn 2FA on: wrong first code, then right
    page.click("#enable-2fa")
    expect(page.locator("h1")).to_have_text("Set up two-factor authentication")
    qr = page.locator("#qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None and box["width"] >= 100 and abs(box["width"] - box["height"]) < 2, box  # square, scannable
    uri = page.locator("#otpauth-uri").inner_text().strip()
    # the QR code as Chromium drew it, decoded by zxing-cpp, is the URI shown beside it
    drawn = Image.open(io.BytesIO(qr.screenshot()))
    decoded = [b.text for b in zxingcpp.read_barcodes(drawn) if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert decoded == [uri], (decoded, uri)
    secret = secret_from_uri(uri)
    assert page.locator("#otp-secret").inner_text().strip() == secret
    assert re.fullmatch(r"[A-Z2-7]{32,}", secret), secret  # base32, >= 160 bits
    assert "alice" in uri
    shot("2fa-setup")
    right = code(secret)
    page.fill("#confirm-totp", "000000" if right != "000000" else "111111")
    page.click("#confirm-2fa")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#twofactor-status")).to_contain_text("Off.")

    page.click("#enable-2fa")  # a new secret: the first one was shown once and is gone
    uri = page.locator("#otpauth-uri").inner_text().strip()
    assert secret_from_uri(uri) != secret
    secret = secret_from_uri(uri)
    page.fill("#confirm-totp", code(secret))
    page.click("#confirm-2fa")
    expect(page.locator("#message")).to_have_text("Two-factor authentication is on.")
    expect(page.locator("#twofactor-status")).to_contain_text("On.")
    expect(page.locator("#register-form")).to_be_visible()
    codes = Codes(secret)  # the confirming step is used

    # ---------------------------------------------------------------- sign out; signing in now needs a code
    page.click("#sign-out")
    expect(page).to_have_url(f"{base}/account/login")
    page.goto(f"{base}/account")
    expect(page).to_have_url(f"{base}/account/login")  # the session is gone on the server too
    page.fill("#api_key", feed.keys["alice"])
    page.click("#sign-in")
    expect(page.get_by_role("alert")).to_contain_text("code")
    expect(page).not_to_have_url(f"{base}/account")
    login_code = codes.fresh()
    page.fill("#api_key", feed.keys["alice"])
    page.fill("#totp", login_code)
    page.click("#sign-in")
    expect(page).to_have_url(f"{base}/account")
    expect(page.locator("#twofactor-status")).to_contain_text("On.")

    # ---------------------------------------------------------------- register the DER .cer; a replayed code fails
    author_der = pki.dev.cert("author").public_bytes(Encoding.DER)
    author_fp = _fingerprint(author_der)
    cer = tmp_path / "author.cer"
    cer.write_bytes(author_der)
    page.set_input_files("#certificate-file", str(cer))
    page.fill("#register-totp", login_code)  # already used to sign in
    page.click("#register")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#no-certificates")).to_be_visible()

    page.set_input_files("#certificate-file", str(cer))
    page.fill("#register-totp", codes.fresh())
    page.click("#register")
    expect(page.locator("#message")).to_have_text(f"Registered certificate {author_fp}.")
    row = page.locator("#certificates tr", has_text=author_fp)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(pki.dev.cert("author").subject.rfc4514_string().split(",")[0].split("=")[1])

    # ---------------------------------------------------------------- a second one as PEM
    second_fp = _fingerprint(pki.dev.cert("revoked-signer").public_bytes(Encoding.DER))
    page.set_input_files("#certificate-file", str(pki.dev.cert_path("revoked-signer")))
    page.fill("#register-totp", codes.fresh())
    page.click("#register")
    expect(page.locator("#message")).to_have_text(f"Registered certificate {second_fp}.")
    expect(page.locator("#certificates tr:has(code)")).to_have_count(2)

    # ---------------------------------------------------------------- a certificate that can never pass: refused
    weak = tmp_path / "weak.cer"
    weak.write_bytes(pki.dev.cert("rsa1024-signer").public_bytes(Encoding.DER))
    page.set_input_files("#certificate-file", str(weak))
    page.fill("#register-totp", codes.fresh())
    page.click("#register")
    error = page.locator("#error")
    expect(error).to_contain_text("NU3014")
    expect(error).to_contain_text("1024")
    expect(page.locator("#certificates tr:has(code)")).to_have_count(2)
    shot("registration-refused")

    # ---------------------------------------------------------------- remove the second one with a fresh code
    second_row = page.locator("#certificates tr", has_text=second_fp)
    second_row.locator("input[name=totp]").fill(codes.fresh())
    second_row.get_by_role("button", name="Remove").click()
    expect(page.locator("#message")).to_have_text(f"Removed certificate {second_fp}.")
    expect(page.locator("#certificates tr:has(code)")).to_have_count(1)
    expect(page.locator("#certificates tr", has_text=author_fp)).to_have_count(1)
    shot("account")

    # what the browser did is what the API sees
    with feed.client() as c:
        listed = c.get("/api/account", headers={"X-NuGet-ApiKey": feed.keys["alice"]}).json()
    assert listed["twoFactorEnabled"] is True
    assert [x["fingerprint"] for x in listed["certificates"]] == [author_fp]

    # ---------------------------------------------------------------- the registered certificate at work
    unsigned = make_package("Browser.Signed", "1.0.0")
    refused = feed.push(unsigned)
    assert refused.status_code == 400 and "NU3004" in refused.text and author_fp in refused.text, refused.text
    accepted = feed.push(pki.sign(unsigned))
    assert accepted.status_code == 201, accepted.text
    page.goto(f"{base}/packages/Browser.Signed/1.0.0")
    status = page.locator("#signing-status")
    expect(status).to_contain_text("Signed")
    expect(page.locator("#signatures tr.signature")).to_have_count(2)  # author + repository countersignature
    expect(page.locator("#signatures tr.signature[data-kind=author]", has_text=author_fp)).to_have_count(1)
    repository_fp = _fingerprint(pki.dev.cert("repository").public_bytes(Encoding.DER))
    expect(page.locator("#signatures tr.signature[data-kind=repository]", has_text=repository_fp)).to_have_count(1)
    shot("package-signing")

    for path in shots:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, path
    print(f"screenshots: {', '.join(str(p) for p in shots)}")
