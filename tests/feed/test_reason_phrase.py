"""The reason of a refusal in the HTTP status line (issue 18 item 1, docs/adr/0006-reason-phrase.md).

nuget.org answers a refused push with its reason as the HTTP reason phrase, and NuGet clients print that phrase in
their error line (``Response status code does not indicate success: 409 (...)``). A real ``nuseal serve`` on
loopback, read with raw sockets so the status line is seen byte for byte: every 4xx answer to a client operation
carries its reason, made safe (one line, printable ASCII, bounded), next to ``X-NuGet-Warning`` and the body;
a nuspec crafted with CR/LF or non-ASCII letters cannot break or extend the head; the private header that carries
the phrase from the application never leaves the server and cannot be set by a request.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from nuseal.feed.errors import MAX_REASON_PHRASE, REASON_PHRASE_HEADER, reason_phrase

from .conftest import Feed, NuGetExe, make_package, multipart, nuspec_xml


@dataclass
class RawResponse:
    status_line: bytes
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def status(self) -> int:
        return int(self.status_line.split(b" ", 2)[1])

    @property
    def phrase(self) -> str:
        return self.status_line.split(b" ", 2)[2].decode("ascii")


def raw_exchange(feed: Feed, request: httpx.Request) -> RawResponse:
    """Send ``request`` as HTTP/1.1 bytes on a fresh socket; read the answer up to its end (``Connection: close``)."""
    url = urlsplit(feed.base_url)
    target = request.url.raw_path.decode("ascii")
    body = request.read()
    head = [f"{request.method} {target} HTTP/1.1", f"Host: {url.netloc}", "Connection: close"]
    head += [f"{n}: {v}" for n, v in request.headers.items() if n.lower() not in ("host", "connection")]
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    head_bytes, _, rest = answer.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.split(b"\r\n")
    headers = [tuple(x.strip() for x in line.decode("latin-1").split(":", 1)) for line in lines]
    assert all(len(h) == 2 for h in headers), lines
    return RawResponse(status_line, headers, rest)  # type: ignore[arg-type]


def push_request(feed: Feed, data: bytes, key: str = "alice") -> httpx.Request:
    return httpx.Request(
        "PUT", f"{feed.base_url}/api/v2/package/", files=multipart(data), headers={"X-NuGet-ApiKey": feed.keys[key]}
    )


def assert_safe(response: RawResponse) -> None:
    """One status line of printable ASCII within the bound, and no private header in the answer."""
    assert all(0x20 <= b < 0x7F for b in response.status_line), response.status_line
    assert len(response.phrase) <= MAX_REASON_PHRASE
    assert not response.header(REASON_PHRASE_HEADER)


def test_refusals_carry_their_reason_in_the_status_line(shared_feed: Feed) -> None:
    feed = shared_feed
    pkg = make_package("Reason.Demo", "1.0.0")
    accepted = raw_exchange(feed, push_request(feed, pkg))
    assert accepted.status_line == b"HTTP/1.1 201 Created"  # successes keep the standard phrase
    assert_safe(accepted)

    duplicate = raw_exchange(feed, push_request(feed, pkg))
    assert duplicate.status == 409
    assert_safe(duplicate)
    assert "'Reason.Demo'" in duplicate.phrase and "already exists" in duplicate.phrase
    # the warning header and the body are kept, with the same reason
    assert duplicate.header("X-NuGet-Warning") == [duplicate.phrase]
    assert duplicate.body.decode().strip() == duplicate.phrase

    bad_key = push_request(feed, make_package("Reason.Other", "1.0.0"))
    bad_key.headers["X-NuGet-ApiKey"] = "not-a-key"
    refused = raw_exchange(feed, bad_key)
    assert refused.status == 403 and "API key" in refused.phrase, refused.status_line
    assert_safe(refused)

    # unlist and relist: another user's package, an unknown version
    for method, key, version, status in (
        ("DELETE", "bob", "1.0.0", 403),
        ("POST", "bob", "1.0.0", 403),
        ("DELETE", "alice", "9.9.9", 404),
    ):
        request = httpx.Request(
            method, f"{feed.base_url}/api/v2/package/Reason.Demo/{version}", headers={"X-NuGet-ApiKey": feed.keys[key]}
        )
        answer = raw_exchange(feed, request)
        assert answer.status == status, answer.status_line
        assert_safe(answer)
        assert answer.phrase == answer.header("X-NuGet-Warning")[0] == answer.body.decode().strip()
        if status == 404:
            assert "'9.9.9'" in answer.phrase

    # a read refused for a reason (a bad search parameter) says why too
    search = raw_exchange(feed, httpx.Request("GET", f"{feed.base_url}/v3/search?skip=-1"))
    assert search.status == 400 and "skip" in search.phrase, search.status_line
    assert_safe(search)


def test_crafted_ids_cannot_break_the_status_line(shared_feed: Feed) -> None:
    feed = shared_feed
    # CR/LF survive XML parsing as character references: the id holds a line break and a would-be header
    crlf = make_package("Crlf", "1.0.0", nuspec=nuspec_xml("Evil&#13;&#10;X-Injected: yes", "1.0.0"))
    answer = raw_exchange(feed, push_request(feed, crlf))
    assert answer.status == 400, answer.status_line
    assert_safe(answer)
    assert not answer.header("X-Injected")
    assert "Evil\\r\\nX-Injected: yes" in answer.phrase  # shown escaped, on the one line

    # a look-alike id (Cyrillic small o, U+043E, which NuGet's id rule accepts): its duplicate names it with an escape
    lookalike = make_package("Lookalike", "1.0.0", nuspec=nuspec_xml("Newtons\u043eft.Reason", "1.0.0"))
    first = raw_exchange(feed, push_request(feed, lookalike))
    assert first.status == 201, first.status_line + first.body
    duplicate = raw_exchange(feed, push_request(feed, lookalike))
    assert duplicate.status == 409
    assert_safe(duplicate)
    assert "'Newtons\\u043eft.Reason'" in duplicate.phrase

    # a very long reason is cut to the bound
    long_id = "Long." + "x" * 150
    long_package = make_package("Long", "1.0.0", nuspec=nuspec_xml(long_id, "1.0.0"))
    too_long = raw_exchange(feed, push_request(feed, long_package))
    assert too_long.status == 400
    assert_safe(too_long)


def test_a_request_cannot_set_the_phrase(shared_feed: Feed) -> None:
    request = httpx.Request(
        "DELETE",
        f"{shared_feed.base_url}/api/v2/package/No.Such/1.0.0",
        headers={"X-NuGet-ApiKey": shared_feed.keys["alice"], REASON_PHRASE_HEADER: "Injected"},
    )
    answer = raw_exchange(shared_feed, request)
    assert answer.status == 404
    assert "Injected" not in answer.status_line.decode()
    assert "'no.such'" in answer.phrase.lower()
    assert_safe(answer)
    # a static read's 404 keeps the standard phrase
    missing = raw_exchange(
        shared_feed, httpx.Request("GET", f"{shared_feed.base_url}/v3/flatcontainer/no.such/index.json")
    )
    assert missing.status_line == b"HTTP/1.1 404 Not Found"


@pytest.mark.nugetexe
@pytest.mark.slow
def test_nuget_exe_prints_the_reason_in_its_error_line(shared_feed: Feed, nuget: NuGetExe, tmp_path: Path) -> None:
    """NuGet.exe 5.8 on Mono: ``Response status code does not indicate success: 409 (<our reason>).``
    (the dotnet CLI is checked in test_dotnet_cli.py)."""
    package = tmp_path / "Reason.Exe.1.0.0.nupkg"
    package.write_bytes(make_package("Reason.Exe", "1.0.0"))
    key = shared_feed.keys["alice"]
    nuget.run("push", str(package), "-Source", shared_feed.source, "-ApiKey", key)
    again = nuget.run("push", str(package), "-Source", shared_feed.source, "-ApiKey", key, check=False)
    assert again.returncode != 0
    reason = "a package with id 'Reason.Exe' and version '1.0.0' already exists and cannot be modified"
    assert f"Response status code does not indicate success: 409 ({reason})." in again.stdout + again.stderr


@pytest.mark.parametrize(
    ("message", "phrase"),
    [
        ("a package with id 'A' already exists", "a package with id 'A' already exists"),
        ("two\r\nlines\tand  tabs", "two lines and tabs"),
        ("bell\x07 nul\x00 del\x7f", "bell\\x07 nul\\x00 del\\x7f"),
        ("Newtons\u043eft caf\u00e9 \U0001f600", "Newtons\\u043eft caf\\xe9 \\U0001f600"),
        ("", ""),
    ],
)
def test_reason_phrase_text(message: str, phrase: str) -> None:
    assert reason_phrase(message) == phrase


def test_reason_phrase_bound_never_cuts_an_escape() -> None:
    text = reason_phrase("\u043e" * 200)
    assert len(text) <= MAX_REASON_PHRASE and text.endswith("...")
    assert text[:-3] == "\\u043e" * ((MAX_REASON_PHRASE - 3) // 6)
    assert reason_phrase("x" * 1000, limit=10) == "xxxxxxx..."
