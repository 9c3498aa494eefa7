"""The test toolkit's own guarantees: the network fence (``support.network``), the frozen clock for the real
vectors (``support.clock``) and the commands' test clock (``NUSEAL_TEST_NOW``, ``nuseal.cli._clock``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import zipfile
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp

from nuseal.cli._clock import command_now, feed_clock
from nuseal.cli.main import main
from nuseal.errors import UsageError
from support import network
from support.clock import TEST_NOW_ENV, VECTOR_NOW

VECTORS = sorted((Path(__file__).resolve().parents[2] / "shared" / "vectors" / "nuget.org").glob("*.nupkg"))
TEST_NET = "192.0.2.1"  # RFC 5737 documentation address: never a real host
SUBPROCESS_TIMEOUT_S = 60


# --------------------------------------------------------------------------- the network fence
def test_the_fence_is_up() -> None:
    assert network.installed()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_a_non_loopback_connect_is_refused_with_a_clear_error(family: socket.AddressFamily) -> None:
    address = (TEST_NET, 80) if family == socket.AF_INET else ("2001:db8::1", 80, 0, 0)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        with pytest.raises(network.NetworkBlocked, match=r"network blocked by the test suite.*connect to"):
            sock.connect(address)
        with pytest.raises(ConnectionRefusedError, match=r"only 127\.0\.0\.0/8"):
            sock.connect_ex(address)
    with pytest.raises(OSError, match="network blocked"):
        socket.create_connection((TEST_NET, 443), timeout=5)


def test_a_non_loopback_name_lookup_is_refused() -> None:
    with pytest.raises(socket.gaierror, match=r"name lookup of 'api\.nuget\.org'"):
        socket.getaddrinfo("api.nuget.org", 443)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(network.NetworkBlocked):
        udp.sendto(b"x", ("8.8.8.8", 53))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::ffff:127.0.0.1"])
def test_loopback_still_connects(host: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as server:
        server.bind(("::" if ":" in host else "127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.connect((host, port))
            accepted, _ = server.accept()
            accepted.close()


@pytest.mark.parametrize("name", ["127.0.0.1", "::1", "[::1]", "localhost", "feed.localhost", "127.8.9.10",
                                  "::ffff:127.0.0.1"])
def test_loopback_names(name: str) -> None:
    assert network.is_loopback(name)


@pytest.mark.parametrize("name", ["192.0.2.1", "0.0.0.0", "api.nuget.org", "localhost.example", "::ffff:8.8.8.8",
                                  "2001:db8::1"])
def test_non_loopback_names(name: str) -> None:
    assert not network.is_loopback(name)


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from loopback"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def test_subprocesses_reach_loopback_but_nothing_else() -> None:
    """A child process's HTTP client (httpx, honouring the proxy variables) is refused at once for any other
    host, and still reaches a loopback server directly."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = (
        "import sys, httpx\n"
        "print(httpx.get(sys.argv[1], timeout=10).text)\n"
        "try:\n"
        "    httpx.get('http://192.0.2.1/', timeout=20)\n"
        "except httpx.HTTPError as e:\n"
        "    print('refused', type(e).__name__)\n"
    )
    try:
        run = subprocess.run([sys.executable, "-c", script, f"http://127.0.0.1:{server.server_port}/"],
                             capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False)
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0] == "hello from loopback"
    assert lines[1] in ("refused ProxyError", "refused ConnectError"), lines


# --------------------------------------------------------------------------- the frozen clock
def _timestamps(signer: cms.SignerInfo) -> list[cms.SignedData]:
    attrs = signer["unsigned_attrs"]
    if isinstance(attrs, core.Void):
        return []
    return [v["content"] for a in attrs if a["type"].native == "signature_time_stamp_token" for v in a["values"]]


def _countersignatures(signer: cms.SignerInfo) -> list[cms.SignerInfo]:
    attrs = signer["unsigned_attrs"]
    if isinstance(attrs, core.Void):
        return []
    return [v for a in attrs if a["type"].native == "counter_signature" for v in a["values"]]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: p.name)
def test_vector_now_lies_inside_every_timestamp_window(vector: Path) -> None:
    """``VECTOR_NOW`` is after every timestamp of every signature and inside the validity of every certificate
    the timestamps carry (the TSA chain is judged at the verification time)."""
    with zipfile.ZipFile(vector) as z:
        signed = cms.ContentInfo.load(z.read(".signature.p7s"))["content"]
    primary = signed["signer_infos"][0]
    tokens = [t for s in [primary, *_countersignatures(primary)] for t in _timestamps(s)]
    assert tokens, "every vector is timestamped"
    for token in tokens:
        info = tsp.TSTInfo.load(token["encap_content_info"]["content"].contents)
        gen_time: datetime = info["gen_time"].native
        assert gen_time < VECTOR_NOW
        for choice in token["certificates"]:
            validity = choice.chosen["tbs_certificate"]["validity"]
            assert validity["not_before"].native <= VECTOR_NOW <= validity["not_after"].native, (
                choice.chosen.subject.human_friendly)


# --------------------------------------------------------------------------- the commands' clock (NUSEAL_TEST_NOW)
def test_vector_clock_sets_the_commands_clock(vector_clock: datetime) -> None:
    assert vector_clock == VECTOR_NOW
    assert command_now() == VECTOR_NOW


def test_without_the_variable_the_commands_use_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEST_NOW_ENV, raising=False)
    before = datetime.now(UTC)
    assert before <= command_now() <= datetime.now(UTC)


@pytest.mark.parametrize(("value", "message"),
                         [("soon", "not an ISO 8601 time"), ("2026-06-01T12:00:00", "no UTC offset")])
def test_a_bad_test_clock_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv(TEST_NOW_ENV, value)
    with pytest.raises(UsageError, match=message):
        command_now()


def test_the_feed_clock_starts_at_the_test_clock_and_advances(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve``'s clock: ``NUSEAL_TEST_NOW`` at its start, then real time (a frozen feed clock would stop
    sessions, cooldowns and TTLs); the wall clock without the variable."""
    monkeypatch.setenv(TEST_NOW_ENV, VECTOR_NOW.isoformat())
    clock = feed_clock()
    first = clock()
    time.sleep(0.05)
    second = clock()
    assert VECTOR_NOW <= first < second < VECTOR_NOW + timedelta(seconds=5)
    monkeypatch.delenv(TEST_NOW_ENV)
    before = datetime.now(UTC)
    assert before <= feed_clock()() <= datetime.now(UTC)
    monkeypatch.setenv(TEST_NOW_ENV, "2026-06-01T12:00:00")
    with pytest.raises(UsageError, match="no UTC offset"):
        feed_clock()


def test_nuseal_verify_judges_at_the_test_clock(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The same vector passes at ``VECTOR_NOW`` and fails with NU3017 at a moment before its signing certificate
    was issued: ``nuseal verify`` reads its clock from ``NUSEAL_TEST_NOW``."""
    shared = Path(__file__).resolve().parents[2] / "shared"
    args = ["verify", str(shared / "vectors" / "nuget.org" / "system.memory.4.5.3.nupkg"), "--revocation-mode",
            "offline", "--code-signing-roots", str(shared / "trust" / "codesignctl.pem"), "--timestamping-roots",
            str(shared / "trust" / "timestampctl.pem")]
    monkeypatch.setenv(TEST_NOW_ENV, VECTOR_NOW.isoformat())
    assert main(args) == 0, capsys.readouterr().out
    capsys.readouterr()
    monkeypatch.setenv(TEST_NOW_ENV, "2018-01-01T00:00:00+00:00")  # before the Microsoft signing certificate
    assert main(args) == 1
    assert "error NU3017: The author primary signature's certificate is not yet valid." in capsys.readouterr().out
