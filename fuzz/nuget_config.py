"""Fuzz target: the nuget.config reader (``nuseal.trust.config.parse_nuget_config``) and NuGet's merge of
trusted certificates (``merge_trusted_certificates``). Allowed: :class:`nuseal.errors.NusealError`
(``ConfigError``).
"""

from __future__ import annotations

from fuzz._harness import Target, fuzz_main

NAME = "nuget_config"
MAX_LEN = 16 * 1024


def build() -> Target:
    from nuseal.errors import NusealError
    from nuseal.trust.config import merge_trusted_certificates, parse_nuget_config

    def one_input(data: bytes) -> None:
        try:
            config = parse_nuget_config(data)
        except NusealError:
            return
        entries, _issues = merge_trusted_certificates(config.trusted_signers)
        for signer in config.trusted_signers:
            assert signer.certificates, signer
            for cert in signer.certificates:
                _ = cert.normalized_fingerprint, cert.grants_untrusted_root
        assert len(entries) <= sum(len(s.certificates) for s in config.trusted_signers)

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
