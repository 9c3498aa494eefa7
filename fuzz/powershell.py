"""Fuzz target: the scan engine's PowerShell reader (``nuseal.scan.powershell``: ``decode_text`` then
``analyse_script``, the tree-sitter tokenizer and the rules, base64 ``-EncodedCommand`` decoding included).

``analyse_script`` is documented never to raise for bad input, so any exception is a finding; a hit must
point inside the script (1-based line within the decoded text, or inside a decoded command).
"""

from __future__ import annotations

import importlib.util

from fuzz._harness import Target, fuzz_main

NAME = "powershell"
MAX_LEN = 16 * 1024


def available() -> bool:
    """Whether the scan engine's PowerShell reader exists and imports here."""
    if importlib.util.find_spec("nuseal.scan.powershell") is None:
        return False
    importlib.import_module("nuseal.scan.powershell")
    return True


def build() -> Target:
    from nuseal.scan.powershell import analyse_script, decode_text
    from nuseal.scan.rules import load_rules

    rules = load_rules()

    def one_input(data: bytes) -> None:
        text = decode_text(data)
        analysis = analyse_script(text, rules)
        lines = text.count("\n") + 1
        for hit in analysis.hits:
            assert hit.line >= 1 and hit.column >= 1, hit
            assert hit.decoded or hit.line <= lines or hit.rule_id == "NS1110", (hit, lines)

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
