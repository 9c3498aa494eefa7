"""Fuzz target: the signature (CMS) loader, ``PrimarySignature.load`` on ``.signature.p7s`` bytes.

After a successful load it touches what the verifier reads: the signature value check, the repository
countersignature lookup, every timestamp's own checks, and the signed properties document.
Allowed: :class:`nuseal.errors.NusealError` (``load`` documents ``SignatureFormatError``).
"""

from __future__ import annotations

from fuzz._harness import Target, fuzz_main

NAME = "signature"
MAX_LEN = 32 * 1024


def build() -> Target:
    from datetime import UTC, datetime

    from nuseal.errors import NusealError
    from nuseal.signature import PrimarySignature
    from nuseal.timestamp import timestamps_of

    now = datetime(2026, 1, 1, tzinfo=UTC)

    def one_input(data: bytes) -> None:
        try:
            primary = PrimarySignature.load(data)
        except NusealError:
            return
        _ = primary.friendly_name, primary.signer_id_type, primary.content
        primary.verify_signature_value()
        for stamp in timestamps_of(primary):
            stamp.check(primary.signature_value, now=now)
        try:
            counter = primary.repository_countersignature()
        except NusealError:
            return
        if counter is not None:
            counter.verify_signature_value()
            for stamp in timestamps_of(counter):
                stamp.check(counter.signature_value, now=now)

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
