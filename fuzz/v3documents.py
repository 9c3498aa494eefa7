"""Fuzz target: the readers of an upstream's or a source's V3 documents (``nuseal.client.v3documents``: service
index, version list, RepositorySignatures, registration index and page), which restore and the feed's mirror feed
with bytes from the network. Allowed: :class:`nuseal.errors.NusealError` (``V3DocumentError``).
"""

from __future__ import annotations

from fuzz._harness import Target, fuzz_main

NAME = "v3documents"
MAX_LEN = 16 * 1024


def build() -> Target:
    from nuseal.client import v3documents as v3
    from nuseal.errors import NusealError

    readers = (
        v3.parse_service_index,
        v3.parse_version_list,
        v3.parse_repository_signatures,
        v3.parse_registration_index,
        v3.parse_registration_page,
    )

    def one_input(data: bytes) -> None:
        for read in readers:
            try:
                read(data)
            except NusealError:
                continue

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
