"""The RFC 3161 client against real loopback servers that answer well, badly or slowly.

Every bad answer is refused. Codes: NU3026 (nonce), NU3019 (imprint), NU3021 (TSA signature), as NuGet's
``Rfc3161TimestampProvider`` names them. NuGet 6.14 on .NET 8 never gets that far: .NET's own
``Rfc3161TimestampRequest.ProcessResponse`` throws an uncoded ``CryptographicException`` first (checked below
with the oracle), so NuGet refuses the same answers without a code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms, tsp

from nuseal.codes import NuCode
from nuseal.errors import TimestampError
from nuseal.hashalg import HashAlgorithm
from nuseal.signing import sign_package
from nuseal.timestamp.client import MAX_RESPONSE_BYTES, TimestampClient, with_certificates

from .conftest import (
    TIMESTAMP_TOKEN_OID,
    MisbehavingTsa,
    Pki,
    Respond,
    openssl_ts_verify,
    oracle,
    signed_data,
    unsigned_attribute,
    unsigned_package,
)

VALUE = bytes(range(256))  # stands for a signature value


def _request(request: bytes, **changes: object) -> bytes:
    req = tsp.TimeStampReq.load(request)
    for name, value in changes.items():
        if name == "hashed_message":
            req["message_imprint"]["hashed_message"] = value
        else:
            req[name] = value
    return bytes(req.dump(force=True))


def _other_nonce(request: bytes, respond: Respond) -> tuple[int, bytes, float]:
    return 200, respond(_request(request, nonce=tsp.TimeStampReq.load(request)["nonce"].native + 1)), 0


def _no_nonce(request: bytes, respond: Respond) -> tuple[int, bytes, float]:
    return 200, respond(_request(request, nonce=None)), 0


def _other_imprint(request: bytes, respond: Respond) -> tuple[int, bytes, float]:
    return 200, respond(_request(request, hashed_message=bytes(32))), 0


def _broken_signature(request: bytes, respond: Respond) -> tuple[int, bytes, float]:
    reply = bytearray(respond(request))
    reply[-1] ^= 0x01  # the last byte of the response is the last byte of the TSA's RSA signature
    return 200, bytes(reply), 0


BAD_ANSWERS: list[tuple[str, Callable[[bytes, Respond], tuple[int, bytes, float]], NuCode, str]] = [
    ("other nonce", _other_nonce, NuCode.NU3026, "did not match the request nonce"),
    ("no nonce", _no_nonce, NuCode.NU3026, "did not match the request nonce"),
    ("other imprint", _other_imprint, NuCode.NU3019, "The hash value is not correct"),
    ("broken signature", _broken_signature, NuCode.NU3021, "was not understood"),
]


@pytest.mark.parametrize(("name", "mutate", "code", "dotnet"), BAD_ANSWERS, ids=[b[0] for b in BAD_ANSWERS])
def test_bad_answers_are_refused_with_nugets_codes(misbehaving_tsa: Callable[..., MisbehavingTsa], name: str,
                                                   mutate: Callable[[bytes, Respond], tuple[int, bytes, float]],
                                                   code: NuCode, dotnet: str) -> None:
    server = misbehaving_tsa(mutate)
    with pytest.raises(TimestampError) as refused:
        TimestampClient(server.url).timestamp(VALUE, now=datetime.now(UTC))
    assert refused.value.code is code, refused.value


@pytest.mark.oracle
@pytest.mark.parametrize(("name", "mutate", "code", "dotnet"), BAD_ANSWERS, ids=[b[0] for b in BAD_ANSWERS])
def test_nuget_refuses_the_same_answers(pki: Pki, misbehaving_tsa: Callable[..., MisbehavingTsa], tmp_path: Path,
                                        name: str, mutate: Callable[[bytes, Respond], tuple[int, bytes, float]],
                                        code: NuCode, dotnet: str) -> None:
    server = misbehaving_tsa(mutate)
    signed = oracle.sign(
        unsigned_package(), pfx=pki.dev.pfx_path("author"), password=pki.dev.pfx_password, tsa_url=server.url,
        extra_certs=[pki.dev.cert_path("intermediate"), pki.dev.root_pem_path], trust_bundle=pki.dev.root_pem_path,
    )
    report = json.loads(signed.raw)
    assert report["ok"] is False
    assert report["exception"].startswith("System.Security.Cryptography.CryptographicException")
    assert dotnet in report["exception"]


def test_http_failures_and_refusals_have_no_code(misbehaving_tsa: Callable[..., MisbehavingTsa]) -> None:
    cases: dict[str, Callable[[bytes, Respond], tuple[int, bytes, float]]] = {
        "HTTP 500": lambda req, respond: (500, b"oops", 0),
        "rejection": lambda req, respond: (200, tsp.TimeStampResp({"status": {"status": "rejection"}}).dump(), 0),
        "garbage": lambda req, respond: (200, b"\x30\x03\x02\x01\x00garbage", 0),
    }
    for name, mutate in cases.items():
        server = misbehaving_tsa(mutate)
        with pytest.raises(TimestampError) as refused:
            TimestampClient(server.url).timestamp(VALUE, now=datetime.now(UTC))
        assert refused.value.code is None, name
    with pytest.raises(TimestampError) as refused:
        TimestampClient("http://127.0.0.1:9/tsa").timestamp(VALUE, now=datetime.now(UTC))  # discard port: refused
    assert refused.value.code is None and "could not be reached" in refused.value.message


def test_a_slow_server_hits_the_hard_deadline(misbehaving_tsa: Callable[..., MisbehavingTsa]) -> None:
    # one byte every 0.2 s: every read succeeds, so only a deadline over the whole exchange stops it
    server = misbehaving_tsa(lambda req, respond: (200, respond(req), 0.2))
    started = time.monotonic()
    with pytest.raises(TimestampError) as refused:
        TimestampClient(server.url, timeout=1.0).timestamp(VALUE, now=datetime.now(UTC))
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2.0, elapsed
    assert "did not answer within 1 s" in refused.value.message


def test_an_oversized_answer_is_refused(misbehaving_tsa: Callable[..., MisbehavingTsa]) -> None:
    server = misbehaving_tsa(lambda req, respond: (200, b"\x30" * (MAX_RESPONSE_BYTES + 1), 0))
    with pytest.raises(TimestampError) as refused:
        TimestampClient(server.url).timestamp(VALUE, now=datetime.now(UTC))
    assert f"larger than {MAX_RESPONSE_BYTES} bytes" in refused.value.message


@pytest.mark.parametrize("algorithm", list(HashAlgorithm), ids=lambda a: a.nuget_name)
def test_every_imprint_algorithm_nuget_allows(pki: Pki, algorithm: HashAlgorithm, tmp_path: Path) -> None:
    token = TimestampClient(pki.dev.tsa_url, hash_algorithm=algorithm).timestamp(VALUE, now=datetime.now(UTC))
    info = tsp.TSTInfo.load(cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed.dump())
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].dotted == algorithm.oid
    assert info["message_imprint"]["hashed_message"].native == algorithm.digest(VALUE)
    assert info["nonce"].native is not None
    openssl_ts_verify(token, VALUE, pki.dev.root_pem_path, tmp_path)


def test_missing_tsa_chain_certificates_are_added(pki: Pki, misbehaving_tsa: Callable[..., MisbehavingTsa],
                                                  tmp_path: Path) -> None:
    # Many TSAs leave the root out; NuGet adds the chain it built (EnsureCertificatesInCertificatesCollection).
    chain = pki.dev.chain("tsa")
    server = misbehaving_tsa(lambda req, respond: (200, respond(req), 0), chain=chain[:2])
    bare = TimestampClient(server.url).timestamp(VALUE, now=datetime.now(UTC))
    assert len(cms.ContentInfo.load(bare)["content"]["certificates"]) == 2
    assert with_certificates(bare, chain[:2]) == bare  # nothing missing: the very same bytes
    data = sign_package(unsigned_package(), pki.signer(), timestamper_url=server.url, now=datetime.now(UTC),
                        trust=pki.strict_trust()).data
    info = signed_data(data)["signer_infos"][0]
    (token,) = unsigned_attribute(info, TIMESTAMP_TOKEN_OID)
    subjects = {c.chosen.subject.native["common_name"] for c in token["content"]["certificates"]}
    assert subjects == {"nuseal dev tsa", "nuseal dev intermediate", "nuseal dev root"}
    assert pki.verify(data).valid
    openssl_ts_verify(token.dump(), info["signature"].native, pki.dev.root_pem_path, tmp_path)
