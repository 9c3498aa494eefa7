"""Fuzz target: the RFC 3161 timestamp loader (``nuseal.timestamp.Timestamp.parse``) and its checks.

After a successful parse: the token's own checks (``check``, which documents no exception for a parsed
token), the token signature check, and ``with_certificates`` (the signing step that completes a token's
certificate set). Allowed: :class:`nuseal.errors.NusealError` (``parse`` documents ``TimestampError``).
"""

from __future__ import annotations

from contextlib import suppress

from fuzz._harness import Target, fuzz_main

NAME = "timestamp"
MAX_LEN = 16 * 1024


def build() -> Target:
    from datetime import UTC, datetime

    from nuseal.errors import NusealError
    from nuseal.timestamp import Timestamp
    from nuseal.timestamp.client import with_certificates

    now = datetime(2026, 1, 1, tzinfo=UTC)

    def one_input(data: bytes) -> None:
        try:
            stamp = Timestamp.parse(data)
        except NusealError:
            return
        stamp.check(b"\x01" * 32, now=now)
        stamp.verify_token_signature()
        _ = stamp.signer_digest_algorithm_oid
        with suppress(NusealError):
            with_certificates(data, stamp.certificates[:1])

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
