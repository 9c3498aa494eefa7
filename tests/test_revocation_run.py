"""Online revocation that never stalls a run (issue 17): the per-run host view, the per-package deadline, hosts
asked in parallel, the on-disk revocation cache and ``--revocation-mode cached``.

Everything runs on loopback against a PKI of these tests' own (support.trust.Pki) whose AIA OCSP / CDP URLs
point at 127.0.0.1 ports: a port that refuses, a tarpit (accepts, never answers), a slow responder, a responder
answering "revoked", and real responders counting their requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal.cli.main import main
from nuseal.codes import Level, NuCode
from nuseal.signing import SigningTrust, sign_package
from nuseal.signing.signer import FileSigner
from nuseal.trust import RevocationFetcher, RevocationMode, TrustStore
from nuseal.trust.online import HttpRevocationFetcher
from nuseal.trust.revocation import HostHealth, host_of
from nuseal.trust.revocation_cache import RevocationStore, revocation_run
from nuseal.verify import RevocationStatus, VerificationPolicy, VerificationResult, Verifier
from support.trust import NOW, Issued, LoopbackServer, Pki, closed_port_url, crl, ocsp_response

REVOKED_AT = NOW - dt.timedelta(days=10)


class Tarpit:
    """A TCP port on 127.0.0.1 that accepts connections and never answers; counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.connections = 0
        self.held: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.held.append(conn)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    pit = Tarpit()
    yield pit
    pit.close()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    yield srv
    srv.close()


def _nupkg(package_id: str) -> bytes:
    nuspec = (
        '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/'
        f'nuspec.xsd"><metadata><id>{package_id}</id><version>1.0.0</version><authors>t</authors>'
        "<description>t</description></metadata></package>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{package_id}.nuspec", nuspec)
        archive.writestr("lib/net8.0/a.txt", package_id)
    return buffer.getvalue()


class Signed:
    """Packages author-signed (no timestamp) by leaves under root -> intermediate, with the given AIA OCSP URLs."""

    def __init__(
        self,
        tmp: Path,
        count: int,
        *,
        leaf_ocsp: str | None,
        intermediate_ocsp: str | None = None,
        leaf_crl: str | None = None,
    ) -> None:
        pki = Pki()
        self.root = pki.issue("Run Root", ca=True)
        self.intermediate = pki.issue("Run CA", issuer=self.root, ca=True, ocsp_url=intermediate_ocsp or leaf_ocsp)
        root_pem = tmp / "root.pem"
        root_pem.write_bytes(self.root.cert.public_bytes(Encoding.PEM))
        self.store = TrustStore.from_pem_file(root_pem)
        trust = SigningTrust.from_pem_files(root_pem, revocation_mode=RevocationMode.OFFLINE)
        self.leaves: list[Issued] = []
        self.packages: list[bytes] = []
        for i in range(count):
            leaf = pki.issue(
                "Run Signer",
                issuer=self.intermediate,
                eku=[ExtendedKeyUsageOID.CODE_SIGNING],
                ocsp_url=leaf_ocsp,
                crl_url=leaf_crl,
            )
            self.leaves.append(leaf)
            signer = FileSigner(leaf.cert, leaf.key, [self.intermediate.cert, self.root.cert])
            self.packages.append(
                sign_package(_nupkg(f"Run.Package{i}"), signer, timestamper_url=None, now=NOW, trust=trust).data
            )

    def verifier(
        self, mode: RevocationMode = RevocationMode.ONLINE, fetcher: RevocationFetcher | None = None
    ) -> Verifier:
        """Outside a revocation run, only a ``fetcher`` given here is used (issue 12.4: none, nothing fetched)."""
        return Verifier(
            VerificationPolicy.verify(revocation_mode=mode),
            code_signing_roots=self.store,
            timestamping_roots=self.store,
            fetcher=fetcher,
        )

    def verify_all(
        self, mode: RevocationMode = RevocationMode.ONLINE, fetcher: RevocationFetcher | None = None
    ) -> list[VerificationResult]:
        verifier = self.verifier(mode, fetcher)
        return [verifier.verify_bytes(p, now=NOW, source=f"p{i}") for i, p in enumerate(self.packages)]


def _codes(result: VerificationResult) -> list[tuple[NuCode | str, Level | RevocationStatus]]:
    """The coded issues (the always-present "Signature Hash Algorithm" information line has none), then each
    signature's typed revocation status when it is not good (offline, NuGet reports that in uncoded lines)."""
    coded: list[tuple[NuCode | str, Level | RevocationStatus]] = [
        (i.code, i.level) for i in result.issues if i.code is not None
    ]
    unknown = [("revocation", s.revocation) for s in result.signatures if s.revocation is not RevocationStatus.GOOD]
    return coded + unknown


GOOD = [(NuCode.NU3027, Level.WARNING)]  # the test packages carry no timestamp; nothing about revocation


def _responder(signed: Signed, revoked: set[int] = frozenset()) -> object:  # type: ignore[assignment]
    by_serial = {leaf.cert.serial_number: leaf for leaf in signed.leaves}

    def handler(body: bytes) -> tuple[int, bytes]:
        request = ocsp.load_der_ocsp_request(body)
        if request.serial_number == signed.intermediate.cert.serial_number:
            return 200, ocsp_response(signed.intermediate.cert, signed.root)
        leaf = by_serial[request.serial_number]
        is_revoked = request.serial_number in revoked
        return 200, ocsp_response(
            leaf.cert,
            signed.intermediate,
            status=ocsp.OCSPCertStatus.REVOKED if is_revoked else ocsp.OCSPCertStatus.GOOD,
            revocation_time=REVOKED_AT if is_revoked else None,
        )

    return handler


# ------------------------------------------------------------------------------------- unreachable hosts
def test_100_packages_under_a_tarpit_cost_one_timeout(tmp_path: Path, tarpit: Tarpit) -> None:
    signed = Signed(tmp_path, 100, leaf_ocsp=tarpit.url("/ocsp"))
    started = time.monotonic()
    offline = signed.verify_all(RevocationMode.OFFLINE)
    offline_seconds = time.monotonic() - started

    timeout = 1.0
    started = time.monotonic()
    with revocation_run(online=True, package_timeout=timeout, store=RevocationStore(tmp_path / "cache")):
        online = signed.verify_all()
    online_seconds = time.monotonic() - started

    # One connection: the first request waits out the deadline and marks the host; nothing else goes there.
    assert tarpit.connections == 1
    assert online_seconds < timeout + offline_seconds + 5.0, (online_seconds, offline_seconds)  # not 100 timeouts
    for on, off in zip(online, offline, strict=True):
        assert on.valid == off.valid is True
        # NuGet online, server unreachable: NU3018 warnings (OfflineRevocation + RevocationStatusUnknown) ...
        assert [c for c in _codes(on) if c[0] is NuCode.NU3018] == [(NuCode.NU3018, Level.WARNING)] * 2
        assert on.primary is not None and on.primary.revocation is RevocationStatus.UNKNOWN
        # ... where offline mode reports information lines (NU3027: the packages carry no timestamp).
        assert [c for c in _codes(off) if isinstance(c[0], NuCode)] == GOOD
        assert off.primary is not None and off.primary.revocation is RevocationStatus.UNKNOWN
        assert [c for c in _codes(on) if c[0] is NuCode.NU3027] == [(NuCode.NU3027, Level.WARNING)]


def test_refused_port_marks_the_host_at_once(tmp_path: Path) -> None:
    url = closed_port_url("/ocsp")
    signed = Signed(tmp_path, 20, leaf_ocsp=url)
    with revocation_run(online=True, package_timeout=5.0, store=RevocationStore(tmp_path / "cache")) as run:
        assert run.hosts.unreachable(host_of(url)) is None
        results = signed.verify_all()
        assert "could not be reached" in (run.hosts.unreachable(host_of(url)) or "")
        assert run.hosts.unreachable(host_of(closed_port_url("/x"))) is None  # another port: not marked
    assert all(r.valid and NuCode.NU3018 in {i.code for i in r.warnings} for r in results)


def test_hosts_are_asked_in_parallel_within_one_deadline(tmp_path: Path) -> None:
    """Leaf and intermediate point at two different tarpits: both are asked at once (in sequence, the deadline
    spent on the first would leave the second not asked)."""
    first, second = Tarpit(), Tarpit()
    try:
        signed = Signed(tmp_path, 1, leaf_ocsp=first.url("/ocsp"), intermediate_ocsp=second.url("/ocsp"))
        with revocation_run(online=True, package_timeout=1.0, store=RevocationStore(tmp_path / "cache")):
            [result] = signed.verify_all()
        assert (first.connections, second.connections) == (1, 1)
        assert result.valid
    finally:
        first.close()
        second.close()


def test_slow_responder_within_the_deadline_answers(tmp_path: Path, server: LoopbackServer) -> None:
    signed = Signed(tmp_path, 3, leaf_ocsp=server.url("/ocsp"))
    answer = _responder(signed)

    def slow(body: bytes) -> tuple[int, bytes]:
        time.sleep(0.3)
        return answer(body)  # type: ignore[operator, no-any-return]

    server.routes["/ocsp"] = slow
    with revocation_run(online=True, package_timeout=5.0, store=RevocationStore(tmp_path / "cache")):
        results = signed.verify_all()
    assert all(r.valid and _codes(r) == GOOD for r in results)


def test_slow_responder_past_the_deadline_is_unknown_and_not_asked_again(
    tmp_path: Path, server: LoopbackServer
) -> None:
    signed = Signed(tmp_path, 5, leaf_ocsp=server.url("/ocsp"))
    server.hang("/ocsp")
    with revocation_run(online=True, package_timeout=0.5, store=RevocationStore(tmp_path / "cache")):
        results = signed.verify_all()
    assert server.hits["/ocsp"] == 1
    assert all(r.valid and NuCode.NU3018 in {i.code for i in r.warnings} for r in results)


def test_revoked_answer_still_fails_with_nugets_code(tmp_path: Path, server: LoopbackServer) -> None:
    signed = Signed(tmp_path, 2, leaf_ocsp=server.url("/ocsp"))
    server.routes["/ocsp"] = _responder(signed, revoked={signed.leaves[0].cert.serial_number})  # type: ignore[assignment]
    with revocation_run(online=True, store=RevocationStore(tmp_path / "cache")):
        revoked, good = signed.verify_all()
    with revocation_run(online=True, store=RevocationStore(tmp_path / "cache")):  # from the cache: the same verdict
        revoked_again, good_again = signed.verify_all()
    assert not revoked.valid
    assert (NuCode.NU3012, Level.ERROR) in _codes(revoked)
    assert good.valid and _codes(good) == GOOD
    assert _codes(revoked_again) == _codes(revoked) and [str(i) for i in revoked_again.issues] == [
        str(i) for i in revoked.issues
    ]
    assert good_again.valid and _codes(good_again) == GOOD


def test_library_use_without_a_fetcher_asks_no_responder(tmp_path: Path, server: LoopbackServer) -> None:
    """nuseal.verify called from Python with the default (online) policy, no fetcher and no run: no network I/O;
    revocation is reported as NuGet reports offline mode (information lines). Issue 12: no hidden I/O."""
    signed = Signed(tmp_path, 2, leaf_ocsp=server.url("/ocsp"))
    server.routes["/ocsp"] = _responder(signed, revoked={signed.leaves[0].cert.serial_number})  # type: ignore[assignment]
    results = signed.verify_all()  # VerificationPolicy.verify(): online mode, as NuGet's default
    assert server.hits == {}
    # not asked, so the revoked leaf is not seen; NuGet's offline information lines, no NU3018 warning
    assert all(r.valid and [c for c in _codes(r) if isinstance(c[0], NuCode)] == GOOD for r in results)
    assert all(r.primary is not None and r.primary.revocation is RevocationStatus.UNKNOWN for r in results)


# ------------------------------------------------------------------------------------- the cache across runs
def test_second_run_asks_nothing_and_gives_the_same_results(tmp_path: Path, server: LoopbackServer) -> None:
    signed = Signed(tmp_path, 10, leaf_ocsp=server.url("/ocsp"))
    server.routes["/ocsp"] = _responder(signed)  # type: ignore[assignment]
    signed.verify_all()  # no run and no fetcher given: library use fetches nothing (issue 12.4)
    assert "/ocsp" not in server.hits
    uncached = signed.verify_all(fetcher=HttpRevocationFetcher())  # no run: no disk cache, as before issue 17
    asked = server.hits["/ocsp"]
    assert asked == 11  # ten leaves and the intermediate (the verifier's in-memory cache keeps the latter)

    store = RevocationStore(tmp_path / "cache")
    with revocation_run(online=True, store=store):
        first = signed.verify_all()
    assert server.hits["/ocsp"] == 2 * asked
    assert store.entries() == 11
    with revocation_run(online=True, store=store):
        second = signed.verify_all()
    assert server.hits["/ocsp"] == 2 * asked  # nothing asked
    for a, b, c in zip(uncached, first, second, strict=True):
        assert (a.valid, [str(i) for i in a.issues]) == (b.valid, [str(i) for i in b.issues])
        assert (a.valid, [str(i) for i in a.issues]) == (c.valid, [str(i) for i in c.issues])


def test_crls_are_cached_per_distribution_point(tmp_path: Path, server: LoopbackServer) -> None:
    signed = Signed(tmp_path, 3, leaf_ocsp=None, intermediate_ocsp=server.url("/ocsp"), leaf_crl=server.url("/crl"))
    server.routes["/ocsp"] = _responder(signed)  # type: ignore[assignment]
    revoked = signed.leaves[2].cert.serial_number
    server.routes["/crl"] = lambda body: (200, crl(signed.intermediate, {revoked: REVOKED_AT}))
    store = RevocationStore(tmp_path / "cache")
    with revocation_run(online=True, store=store):
        first = signed.verify_all()
    assert server.hits["/crl"] == 1  # one CRL answers for the three leaves
    with revocation_run(online=True, store=store):
        second = signed.verify_all()
    assert (server.hits["/crl"], server.hits["/ocsp"]) == (1, 1)
    assert [(r.valid, _codes(r)) for r in second] == [(r.valid, _codes(r)) for r in first]
    assert [r.valid for r in second] == [True, True, False]
    assert (NuCode.NU3012, Level.ERROR) in _codes(second[2])


def _flip_signature_byte(path: Path) -> None:
    doc = json.loads(path.read_text())
    data = bytearray(base64.b64decode(doc["data"]))
    data[-5] ^= 0x01  # inside the signature value at the end of the BasicOCSPResponse
    doc["data"] = base64.b64encode(bytes(data)).decode()
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("damage", ["tampered", "corrupt", "other-certificate"])
def test_a_damaged_cache_entry_is_detected_and_refetched(tmp_path: Path, server: LoopbackServer, damage: str) -> None:
    signed = Signed(tmp_path, 2, leaf_ocsp=server.url("/ocsp"))
    server.routes["/ocsp"] = _responder(signed)  # type: ignore[assignment]
    store = RevocationStore(tmp_path / "cache")
    with revocation_run(online=True, store=store):
        signed.verify_all()
    before = server.hits["/ocsp"]
    entry = store._ocsp_path(signed.leaves[0].cert, signed.intermediate.cert)
    assert entry.is_file()
    if damage == "tampered":
        _flip_signature_byte(entry)
    elif damage == "corrupt":
        entry.write_bytes(b"\x00not json")
    else:  # a valid response, but for the other leaf: its CertID does not match
        other = store._ocsp_path(signed.leaves[1].cert, signed.intermediate.cert)
        entry.write_bytes(other.read_bytes())
    with revocation_run(online=True, store=store):
        results = signed.verify_all()
    assert server.hits["/ocsp"] == before + 1  # only the damaged entry is fetched again
    assert all(r.valid and _codes(r) == GOOD for r in results)
    # ... and the entry was replaced by the fresh answer
    assert store.get_ocsp(signed.leaves[0].cert, signed.intermediate.cert) is not None
    with revocation_run(online=True, store=store):
        signed.verify_all()
    assert server.hits["/ocsp"] == before + 1


def test_stale_entry_is_not_used(tmp_path: Path, server: LoopbackServer) -> None:
    signed = Signed(tmp_path, 1, leaf_ocsp=server.url("/ocsp"))
    server.routes["/ocsp"] = _responder(signed)  # type: ignore[assignment]
    store = RevocationStore(tmp_path / "cache")
    with revocation_run(online=True, store=store):
        signed.verify_all()
    before = server.hits["/ocsp"]
    later = NOW + dt.timedelta(days=2)  # past the responses' nextUpdate (NOW + 1 day)
    with revocation_run(online=True, store=store):
        verifier = signed.verifier()
        verifier.verify_bytes(signed.packages[0], now=later)
    assert server.hits["/ocsp"] > before


# ------------------------------------------------------------------------------------- the CLI
def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def test_prefetch_then_cached_mode(
    tmp_path: Path, server: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUSEAL_CACHE", str(tmp_path / "nuseal-cache"))
    monkeypatch.delenv("NUGET_CERT_REVOCATION_MODE", raising=False)
    signed = Signed(tmp_path, 2, leaf_ocsp=server.url("/ocsp"))
    # The packages are judged at the real clock by the CLI; answers must be fresh then.
    real_now = dt.datetime.now(dt.UTC)
    by_serial = {leaf.cert.serial_number: leaf for leaf in signed.leaves}

    def handler(body: bytes) -> tuple[int, bytes]:
        request = ocsp.load_der_ocsp_request(body)
        fresh = {"this_update": real_now - dt.timedelta(hours=1), "next_update": real_now + dt.timedelta(days=1)}
        if request.serial_number == signed.intermediate.cert.serial_number:
            return 200, ocsp_response(signed.intermediate.cert, signed.root, **fresh)  # type: ignore[arg-type]
        return 200, ocsp_response(by_serial[request.serial_number].cert, signed.intermediate, **fresh)  # type: ignore[arg-type]

    server.routes["/ocsp"] = handler
    folder = tmp_path / "pkgs"
    folder.mkdir()
    for i, data in enumerate(signed.packages):
        (folder / f"p{i}.nupkg").write_bytes(data)
    roots = ["--code-signing-roots", str(tmp_path / "root.pem"), "--timestamping-roots", str(tmp_path / "root.pem")]

    code, offline = _cli(capsys, "verify", str(folder), *roots, "--revocation-mode", "offline")
    assert code == 0
    code, cached_empty = _cli(capsys, "verify", str(folder), *roots, "--revocation-mode", "cached")
    assert code == 0
    strip = [line for line in offline.splitlines() if not line.startswith("\nVerified")]
    assert [line for line in cached_empty.splitlines() if "Verified" not in line] == [
        line for line in strip if "Verified" not in line
    ]  # nothing cached: exactly what offline mode reports
    assert server.hits.get("/ocsp", 0) == 0

    code, out = _cli(capsys, "revocation", "prefetch", str(folder), *roots)
    assert code == 0, out
    assert server.hits["/ocsp"] == 3
    assert "3 answer(s) cached" in out

    code, cached = _cli(capsys, "verify", str(folder), *roots, "--revocation-mode", "cached")
    assert code == 0
    assert "revocation" not in cached.lower()  # every certificate's answer came from the cache
    assert "2 warnings" in cached  # NU3027 (no timestamp) for each package, nothing else
    code, online = _cli(capsys, "verify", str(folder), *roots, "--revocation-mode", "online")
    assert code == 0 and "2 warnings" in online and "revocation" not in online.lower()
    assert server.hits["/ocsp"] == 3  # the online run asked nothing either


def test_forked_workers_share_the_host_view(tmp_path: Path, tarpit: Tarpit) -> None:
    """``nuseal verify --jobs 2`` (forked workers): a host one worker found unreachable is not asked by the other;
    at most one connection per worker reaches the tarpit (both may start before either has failed)."""
    signed = Signed(tmp_path, 32, leaf_ocsp=tarpit.url("/ocsp"))
    folder = tmp_path / "pkgs"
    folder.mkdir()
    for i, data in enumerate(signed.packages):
        (folder / f"p{i:02}.nupkg").write_bytes(data)
    root = str(tmp_path / "root.pem")
    env = {**os.environ, "NUSEAL_CACHE": str(tmp_path / "cache")}
    env.pop("NUGET_CERT_REVOCATION_MODE", None)
    run = subprocess.run(
        [sys.executable, "-m", "nuseal", "verify", str(folder), "--jobs", "2", "--revocation-timeout", "1",
         "--code-signing-roots", root, "--timestamping-roots", root, "-v", "quiet"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Verified 32 packages: 32 passed, 0 failed" in run.stdout
    assert 1 <= tarpit.connections <= 2


def _mark_in_child(hosts: HostHealth) -> None:
    hosts.mark("responder.invalid:80", "name resolution failed")


def test_host_marks_cross_processes_and_expire(tmp_path: Path) -> None:
    hosts = HostHealth(tmp_path / "hosts", retry_after=60)
    (tmp_path / "hosts").mkdir()
    child = multiprocessing.get_context("fork").Process(target=_mark_in_child, args=(hosts,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert hosts.unreachable("responder.invalid:80") == "name resolution failed"  # seen through the folder
    assert hosts.unreachable("responder.invalid:8080") is None
    expired = HostHealth(tmp_path / "hosts", retry_after=0)
    assert expired.unreachable("responder.invalid:80") is None
