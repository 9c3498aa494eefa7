"""Fuzz target: OSV records (``nuseal.scan.osv``, loaded by ``nuseal scan`` and ``nuseal serve --osv``) and the
feed's ``VulnerabilityInfo/6.7.0`` documents built from them (``nuseal.feed.mirror.vulnerabilities``: OSV ranges to
NuGet version ranges). Allowed: :class:`nuseal.errors.NusealError`; a record the loader keeps must convert, and every
range written must parse back.
"""

from __future__ import annotations

from fuzz._harness import Target, fuzz_main

NAME = "osv"
MAX_LEN = 16 * 1024


def build() -> Target:
    import json
    from datetime import UTC, datetime

    from nuseal.errors import NusealError
    from nuseal.feed.mirror.vulnerabilities import VulnerabilityInfo
    from nuseal.package.version_range import VersionRange
    from nuseal.scan.osv import OsvDatabase

    as_of = datetime(2026, 12, 1, tzinfo=UTC)

    def one_input(data: bytes) -> None:
        try:
            record = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return
        if not isinstance(record, dict):
            return
        try:
            db = OsvDatabase.from_records([record])
            documents = VulnerabilityInfo(db, as_of=as_of).documents("https://feed.example/v3/vulnerabilities/")
        except NusealError:
            return
        for name, body in documents.items():
            doc = json.loads(body)
            if name == "index.json":
                continue
            for entries in doc.values():
                for entry in entries:
                    VersionRange.parse(entry["versions"])

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
