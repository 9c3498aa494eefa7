"""Test support: NuGet's own verifier as an oracle (``oracle``) and tampered copies of signed packages
(``tamper``). Plain helpers for the tests; nothing here imports ``nuseal``.
"""
