"""Issue 11 item 4 against a real `nuseal serve` on loopback: the whole push body bounded whatever its framing,
request head size, head and body read timeouts (raw sockets), and the parser limits seen through a push."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nuseal.feed.http.protocol import MAX_HEAD_BYTES
from nuseal.feed.publish.upload import MULTIPART_OVERHEAD

from .conftest import Feed, make_package, start_feed

CAP = 1 << 20
BODY_TIMEOUT = 1.5
HEAD_TIMEOUT = 2.0
BOUNDARY = "nuseal-test-boundary"


@pytest.fixture(scope="module")
def limited_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    f = start_feed(
        tmp_path_factory.mktemp("limits"),
        "--body-timeout",
        str(BODY_TIMEOUT),
        "--header-timeout",
        str(HEAD_TIMEOUT),
        max_package_size=CAP,
    )
    yield f
    f.stop()


def _port(feed: Feed) -> int:
    return int(feed.base_url.rsplit(":", 1)[1])


def _connect(feed: Feed) -> socket.socket:
    return socket.create_connection(("127.0.0.1", _port(feed)), timeout=30)


def _read_all(s: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or ``timeout``), and how long that took."""
    s.settimeout(timeout)
    start = time.monotonic()
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data, time.monotonic() - start


def _log(feed: Feed) -> str:
    return (feed.data_dir / "server.log").read_text(errors="replace")


def _staged(feed: Feed) -> list[Path]:
    return sorted((feed.data_dir / "staging").glob("upload-*"))


def _part(name: str, data: bytes, *, filename: str | None = None, extra_header: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{extra_header}Content-Type: application/octet-stream"
    return head.encode() + b"\r\n\r\n" + data + b"\r\n"


def _chunked_push(feed: Feed, body: bytes) -> httpx.Response:
    """A multipart push sent with ``Transfer-Encoding: chunked`` (no Content-Length), 64 KiB per chunk."""

    def chunks() -> Iterator[bytes]:
        for at in range(0, len(body), 65536):
            yield body[at : at + 65536]

    headers = {"X-NuGet-ApiKey": feed.keys["alice"], "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    with feed.client() as c:
        return c.put("/api/v2/package/", content=chunks(), headers=headers)


# ------------------------------------------------------------------------------------------------ push body
def test_chunked_push_within_the_cap_is_published(limited_feed: Feed) -> None:
    body = _part("note", b"small field") + _part("package", make_package("Chunked.Ok", "1.0.0"), filename="p.nupkg")
    r = _chunked_push(limited_feed, body + f"--{BOUNDARY}--\r\n".encode())
    assert r.status_code == 201, r.text


def test_chunked_body_with_a_huge_other_field_is_refused(limited_feed: Feed) -> None:
    filler = b"f" * (CAP + MULTIPART_OVERHEAD + 1)  # not the package part: it used to be read and dropped, unbounded
    body = _part("filler", filler) + _part("package", make_package("Chunked.Big", "1.0.0"), filename="p.nupkg")
    r = _chunked_push(limited_feed, body + f"--{BOUNDARY}--\r\n".encode())
    assert r.status_code == 413, r.text
    assert "request body is larger" in r.text
    assert r.headers["connection"] == "close"
    assert _staged(limited_feed) == []
    with limited_feed.client() as c:
        assert c.get("/v3/flatcontainer/chunked.big/index.json").status_code == 404


# ------------------------------------------------------------------------------------------------ request head
def test_large_request_header_is_answered_431(limited_feed: Feed) -> None:
    with _connect(limited_feed) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * MAX_HEAD_BYTES) + b"\r\n\r\n")
        data, _ = _read_all(s, 10)
    assert data.startswith(b"HTTP/1.1 431 "), data[:100]


def test_ten_megabyte_header_is_refused_and_the_server_lives_on(limited_feed: Feed) -> None:
    with _connect(limited_feed) as s:
        # the server may close the connection while the header is still arriving
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (10 << 20) + b"\r\n\r\n")
        data, _ = _read_all(s, 10)
    assert data == b"" or data.startswith(b"HTTP/1.1 431 "), data[:100]
    assert httpx.get(f"{limited_feed.base_url}/health", timeout=10).status_code == 200


def test_stalled_request_head_is_closed(limited_feed: Feed) -> None:
    with _connect(limited_feed) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        data, took = _read_all(s, HEAD_TIMEOUT + 10)
    assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert took < HEAD_TIMEOUT + 5


# ------------------------------------------------------------------------------------------------ stalled body
def test_stalled_body_ends_the_request_with_one_line_and_no_traceback(limited_feed: Feed) -> None:
    before = _log(limited_feed)
    head = (
        "PUT /api/v2/package HTTP/1.1\r\nHost: x\r\n"
        f"X-NuGet-ApiKey: {limited_feed.keys['alice']}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 500000\r\n\r\n"
    )
    with _connect(limited_feed) as s:
        s.sendall(head.encode() + b"PK\x03\x04" + b"x" * 1000)  # then nothing more
        data, took = _read_all(s, BODY_TIMEOUT + 15)
    # answered and the connection freed (the read ended with the server closing it, not with our timeout)
    assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert took < BODY_TIMEOUT + 10
    deadline = time.monotonic() + 10
    while "nothing stored" not in _log(limited_feed)[len(before) :] and time.monotonic() < deadline:
        time.sleep(0.1)
    new = _log(limited_feed)[len(before) :]
    assert "Traceback" not in new, new
    assert [line for line in new.splitlines() if "no request body bytes" in line] == [
        next(line for line in new.splitlines() if "no request body bytes" in line)
    ]
    assert "PUT /api/v2/package" in new
    assert _staged(limited_feed) == []
    assert httpx.get(f"{limited_feed.base_url}/health", timeout=10).status_code == 200


def test_a_slow_but_steady_body_is_not_cut(limited_feed: Feed) -> None:
    data = make_package("Slow.Steady", "1.0.0")
    head = (
        "PUT /api/v2/package HTTP/1.1\r\nHost: x\r\n"
        f"X-NuGet-ApiKey: {limited_feed.keys['alice']}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    pieces = [data[i : i + len(data) // 4 + 1] for i in range(0, len(data), len(data) // 4 + 1)]
    with _connect(limited_feed) as s:
        s.sendall(head.encode())
        for piece in pieces:  # longer in all than the body timeout, never a gap as long
            time.sleep(BODY_TIMEOUT / 2)
            s.sendall(piece)
        answer, _ = _read_all(s, 20)
    assert len(pieces) * BODY_TIMEOUT / 2 > BODY_TIMEOUT
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]


# ------------------------------------------------------------------------------------------------ parser limits at push
def test_push_refuses_a_description_over_nugetorg_limit(limited_feed: Feed) -> None:
    r = limited_feed.push(make_package("Long.Description", "1.0.0", description="d" * 4001))
    assert r.status_code == 400, r.text
    assert "<description> is 4001 characters; the limit is 4000" in r.text
    assert "<description>" in r.headers["x-nuget-warning"]


def test_push_refuses_a_version_with_a_newline(limited_feed: Feed) -> None:
    r = limited_feed.push(make_package("Newline.Version", "1.0.0-a&#10;.b"))
    assert r.status_code == 400, r.text
    with limited_feed.client() as c:
        assert c.get("/v3/flatcontainer/newline.version/index.json").status_code == 404


@pytest.mark.parametrize(
    ("first", "second"), [("content/a.txt", "content/A.TXT"), ("content/x\\y.txt", "content/x/y.txt")]
)
def test_push_refuses_names_that_collide_when_extracted(limited_feed: Feed, first: str, second: str) -> None:
    pid = f"Collide.N{len(first)}{ord(second[-1])}"
    r = limited_feed.push(make_package(pid, "1.0.0", files={first: b"one", second: b"two"}))
    assert r.status_code == 400, r.text
    assert "extract to the same file" in r.text
