"""What runs inside one fuzz-target process: instrument nuseal, then hand the target to libFuzzer.

Kept free of nuseal imports at module level: atheris instruments only modules imported inside
:func:`atheris.instrument_imports`, so every target imports nuseal inside its ``build()`` function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris

#: Packages whose Python code atheris instruments for coverage feedback (the DER decoders nuseal relies
#: on are asn1crypto's pure-Python code; ``cryptography`` and expat are native and not instrumented).
INSTRUMENTED = ("nuseal", "asn1crypto")

Target = Callable[[bytes], None]


def fuzz_main(build: Callable[[], Target]) -> None:
    """Build the target with nuseal instrumented and run libFuzzer with ``sys.argv`` (its flags and dirs).

    With file arguments instead of directories libFuzzer runs each file once (a crash replay).
    """
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        target = build()
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
