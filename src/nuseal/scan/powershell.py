"""PowerShell that NuGet runs: ``tools/init.ps1``, ``tools/install.ps1``, ``tools/uninstall.ps1`` (rules NS1xxx).

Which scripts: NuGet in Visual Studio runs ``init.ps1`` when a solution that uses the package opens and
``install.ps1`` / ``uninstall.ps1`` when the package is added to or removed from a packages.config project,
from ``tools/`` or the ``tools/<tfm>/`` folder nearest the project's framework (NuGet.Client
``NuGet.PackageManagement.VisualStudio`` ``PowerShellScripts``: ``init.ps1``, ``install.ps1``,
``uninstall.ps1``; VS looks the names up case-insensitively, so ``Tools/install.ps1`` counts). All of them are
analysed, plus scripts they dot-source or import by a literal name found in the package's ``tools/`` folder
(jQuery's ``install.ps1`` dot-sources ``common.ps1``).

How: the script is parsed with the tree-sitter PowerShell grammar (``tree-sitter-powershell``,
docs/adr/0004-powershell-tokenizer.md) into tokens: command names, parameters, member names, type literals,
string literals and bare arguments; comments (``#``, ``<# #>``, the Authenticode ``# SIG # Begin signature
block``) are not tokens, so nothing in them is a finding. Rules' ``"<kind>:<regex>"`` patterns
(:mod:`nuseal.scan.rules`) match tokens of their kind; ``code:`` patterns match the script with comments blanked.
Then: a download together with execution in one script is NS1110 (error); a base64 ``-EncodedCommand`` is NS1120
and the decoded script is analysed too (findings say ``decoded``), as are base64 string literals when the
script calls ``FromBase64String``.

:func:`analyse_script` is the reusable core (the MSBuild analyser runs it over ``Exec`` commands).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from nuseal.scan._walk import FileWalk
from nuseal.scan.model import Finding, Location
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import RuleSet

if TYPE_CHECKING:
    from tree_sitter import Parser, Query

    from nuseal.scan.engine import Analyser, ScanContext

__all__ = [
    "MAX_SCRIPT_SIZE",
    "Hit",
    "ScriptAnalysis",
    "analyse",
    "analyse_script",
    "analysers",
    "decode_text",
    "nuget_run_scripts",
]

#: Largest script analysed (bytes); larger ones are NS9004.
MAX_SCRIPT_SIZE = 4 << 20
#: Most findings of one rule in one file.
MAX_PER_RULE = 10
#: Depth of decoded-command analysis (an encoded command that holds an encoded command...).
MAX_DECODE_DEPTH = 3
_RUN_SCRIPTS = re.compile(r"^tools/(?:[^/]+/)?(init|install|uninstall)\.ps1$", re.IGNORECASE)
_ENC_PARAM = re.compile(r"^-(e|ec|en|enc|enco|encod|encode|encoded|encodedc\w*)$", re.IGNORECASE)
_NOT_NEWLINE = re.compile(rb"[^\r\n]")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]{16,}={0,2}$")
_ENC_IN_TEXT = re.compile(
    r"(?:^|\s)-(?:e|ec|en|enc|enco|encod|encode|encoded|encodedc\w*)\s+[\"']?([A-Za-z0-9+/]{16,}={0,2})", re.IGNORECASE
)
_DOWNLOAD = "NS1101"
_EXECUTE = ("NS1102", "NS1103", "NS1104")
_STRING_NODES = {
    "expandable_string_literal",
    "verbatim_string_characters",
    "expandable_here_string_literal",
    "verbatim_here_string_characters",
}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` is command / parameter / member / type / string / variable; 1-based line."""

    kind: str
    text: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule matched in a script: 1-based ``line``, the matched snippet, and whether it was in decoded text."""

    rule_id: str
    line: int
    column: int
    evidence: str
    decoded: bool = False


@dataclass
class ScriptAnalysis:
    """What :func:`analyse_script` found: rule hits in source order, and the decoded commands."""

    hits: list[Hit] = field(default_factory=list)
    decoded: list[str] = field(default_factory=list)
    calls_variable: bool = False
    referenced_scripts: list[str] = field(default_factory=list)

    def rules(self) -> set[str]:
        return {h.rule_id for h in self.hits}


@cache
def _parser() -> Parser:
    import tree_sitter_powershell  # noqa: PLC0415 - loaded on first use: the C grammar costs import time
    from tree_sitter import Language, Parser  # noqa: PLC0415

    return Parser(Language(tree_sitter_powershell.language()))


def decode_text(data: bytes) -> str:
    """Script bytes to text as PowerShell reads a file: BOM-detected UTF-8/UTF-16, else UTF-8, else Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le", errors="replace")
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _strip_quotes(text: str) -> str:
    if text.startswith(("@'", '@"')) and len(text) >= 4:
        return text[2:-2].strip("\r\n")
    if len(text) >= 2 and text[0] in "'\"\u2018\u2019\u201c\u201d" and text[-1] in "'\"\u2018\u2019\u201c\u201d":
        return text[1:-1]
    return text


_QUERY_SOURCE = """
(comment) @comment
(command_name) @command
(command_parameter) @parameter
(generic_token) @string
(member_name) @member
(type_spec) @type
(variable) @variable
(expandable_string_literal) @quoted
(verbatim_string_characters) @quoted
(expandable_here_string_literal) @quoted
(verbatim_here_string_characters) @quoted
(command_invokation_operator) @invoke
"""


@cache
def _query() -> Query:
    import tree_sitter_powershell  # noqa: PLC0415
    from tree_sitter import Language, Query  # noqa: PLC0415

    return Query(Language(tree_sitter_powershell.language()), _QUERY_SOURCE)


def _tokens(source: bytes) -> tuple[list[Token], bytearray, bool]:
    """Tokens in source order, the source with comments blanked, and whether ``& $var`` / ``. $var`` occurs.

    One tree-sitter query (run in C) picks the nodes; nested ones (a sub-expression inside an expandable string)
    are captured too."""
    from tree_sitter import QueryCursor  # noqa: PLC0415

    tree = _parser().parse(source)
    blanked = bytearray(source)
    tokens: list[Token] = []
    calls_variable = False
    captures = QueryCursor(_query()).captures(tree.root_node)
    for node in captures.get("comment", ()):
        blanked[node.start_byte : node.end_byte] = _NOT_NEWLINE.sub(b" ", source[node.start_byte : node.end_byte])
    for capture, nodes in captures.items():
        if capture == "comment":
            continue
        for node in nodes:
            kind = capture
            row, col = node.start_point
            if kind == "invoke":
                sibling = node.next_sibling
                if sibling is not None and b"$" in (sibling.text or b"")[:2]:
                    calls_variable = True
                continue
            text = (node.text or b"").decode("utf-8", errors="replace")
            if kind == "member":
                text = text.split("(")[0].strip()
            elif kind == "quoted":
                kind, text = "string", _strip_quotes(text)
            tokens.append(Token(kind, text, row + 1, col + 1))
    tokens.sort(key=lambda t: (t.line, t.column))
    # New-Object's type argument is a type name too.
    typed: list[Token] = []
    for i, tok in enumerate(tokens):
        typed.append(tok)
        if tok.kind == "command" and tok.text.lower() == "new-object":
            for nxt in tokens[i + 1 : i + 4]:
                if nxt.kind == "string":
                    typed.append(Token("type", nxt.text, nxt.line, nxt.column))
                    break
                if nxt.kind == "command":
                    break
    return typed, blanked, calls_variable


def _line_of(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def _line_text(text: str, line: int) -> str:
    lines = text.split("\n")
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _decode_base64_script(candidate: str) -> str | None:
    """A base64 string as PowerShell's -EncodedCommand takes it (UTF-16LE), else UTF-8 text; ``None`` if
    it is not base64 of mostly printable text."""
    cleaned = candidate.strip().strip("'\"")
    if not _BASE64.match(cleaned):
        return None
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    for encoding in ("utf-16-le", "utf-8"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        printable = sum(1 for ch in text if ch.isprintable() or ch in "\r\n\t")
        if text and printable / len(text) > 0.95:
            return text
    return None


_OPENERS = {"start-process", "start", "saps", "invoke-item", "ii"}
_WEB_PAGE = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)


def _url_openers(tokens: list[Token]) -> set[Token]:
    """``Start-Process`` / ``start`` / ``Invoke-Item`` tokens whose only argument is a web address (opening a page)."""
    found: set[Token] = set()
    for i, tok in enumerate(tokens):
        if tok.kind != "command" or tok.text.lower() not in _OPENERS:
            continue
        args = [t for t in tokens[i + 1 :] if t.line == tok.line and t.kind in ("string", "parameter", "command")]
        strings = [t for t in args if t.kind == "string"]
        if strings and all(t.kind != "command" for t in args) and _WEB_PAGE.match(strings[0].text.strip()):
            found.add(tok)
    return found


def analyse_script(text: str, rules: RuleSet, *, depth: int = 0) -> ScriptAnalysis:
    """Analyse PowerShell ``text`` with the ``powershell`` rules' patterns (see the module docstring).

    Never raises for bad input: tree-sitter recovers from syntax errors and the tokens it still finds are
    analysed. Returns hits with 1-based lines; combination rules (NS1110) and encoded commands (NS1120) included.
    """
    source = text.encode("utf-8", errors="replace")
    tokens, blanked, calls_variable = _tokens(source)
    code = blanked.decode("utf-8", errors="replace")
    result = ScriptAnalysis(calls_variable=calls_variable)
    counts: dict[str, int] = {}

    def add(hit: Hit) -> None:
        if counts.get(hit.rule_id, 0) >= MAX_PER_RULE:
            return
        counts[hit.rule_id] = counts.get(hit.rule_id, 0) + 1
        result.hits.append(hit)

    by_kind: dict[str, list[Token]] = {}
    for tok in tokens:
        by_kind.setdefault(tok.kind, []).append(tok)
    opens_url = _url_openers(tokens)
    for pattern in rules.patterns("powershell"):
        # Once a rule has its MAX_PER_RULE findings, stop looking: each hit's evidence costs a pass over the script.
        if counts.get(pattern.rule_id, 0) >= MAX_PER_RULE:
            continue
        if pattern.kind == "code":
            for m in pattern.regex.finditer(code):
                line, col = _line_of(code, m.start())
                add(Hit(pattern.rule_id, line, col, _line_text(code, line)))
                if counts[pattern.rule_id] >= MAX_PER_RULE:
                    break
            continue
        for tok in by_kind.get(pattern.kind, ()):
            if pattern.rule_id == "NS1103" and tok in opens_url:
                continue  # Start-Process 'https://…' opens a web page in the browser
            if pattern.regex.search(tok.text):
                add(Hit(pattern.rule_id, tok.line, tok.column, _line_text(code, tok.line) or tok.text))
                if counts[pattern.rule_id] >= MAX_PER_RULE:
                    break
    # -EncodedCommand <base64>, and base64 literals when the script decodes base64.
    decodes_base64 = any(h.rule_id == "NS1121" for h in result.hits)
    for i, tok in enumerate(tokens):
        candidate: str | None = None
        encoded_param = bool(tok.kind == "parameter" and _ENC_PARAM.match(tok.text))
        if encoded_param:
            nxt = next((t for t in tokens[i + 1 : i + 3] if t.kind == "string"), None)
            candidate = nxt.text if nxt else None
        elif tok.kind == "string" and (inline := _ENC_IN_TEXT.search(tok.text)):
            candidate = inline.group(1)
            encoded_param = True
        elif decodes_base64 and tok.kind == "string" and len(tok.text) >= 16:
            candidate = tok.text
        if candidate is None:
            continue
        decoded = _decode_base64_script(candidate)
        if decoded is None:
            continue
        result.decoded.append(decoded)
        if encoded_param:
            add(Hit("NS1120", tok.line, tok.column, f"-EncodedCommand {candidate[:40]}… decodes to: {decoded[:120]}"))
        if depth < MAX_DECODE_DEPTH:
            inner = analyse_script(decoded, rules, depth=depth + 1)
            for h in inner.hits:
                add(Hit(h.rule_id, tok.line, tok.column, f"decoded: {h.evidence}", decoded=True))
            result.calls_variable = result.calls_variable or inner.calls_variable
    found = result.rules()
    if _DOWNLOAD in found and (found.intersection(_EXECUTE) or result.calls_variable) and "NS1110" not in found:
        first_exec = next((h for h in result.hits if h.rule_id in _EXECUTE), None)
        download = next(h for h in result.hits if h.rule_id == _DOWNLOAD)
        anchor = first_exec or download
        add(Hit("NS1110", anchor.line, anchor.column, anchor.evidence, decoded=anchor.decoded))
    result.hits.sort(key=lambda h: (h.line, h.column, h.rule_id))
    for tok in tokens:
        if tok.kind == "string" and tok.text.lower().endswith((".ps1", ".psm1")):
            result.referenced_scripts.append(tok.text.replace("\\", "/").rsplit("/", 1)[-1])
    return result


def nuget_run_scripts(pkg: ScanPackage) -> list[str]:
    """The entry paths of the scripts NuGet runs (``tools/[<tfm>/](init|install|uninstall).ps1``, any case)."""
    return [p for p in pkg.paths if _RUN_SCRIPTS.match(p)]


def _findings_for(
    pkg: ScanPackage, rules: RuleSet, path: str, analysis: ScriptAnalysis, sha: str | None, via: str | None
) -> Iterable[Finding]:
    for hit in analysis.hits:
        rule = rules.get(hit.rule_id)
        where = f"{path}" + (f" (dot-sourced by {via})" if via else "")
        prefix = "decoded command: " if hit.decoded else ""
        yield rules.finding(
            hit.rule_id,
            f"{prefix}{rule.title} in {where}",
            pkg.ref,
            location=Location(path=path, line=hit.line, column=hit.column),
            evidence=hit.evidence,
            file_sha256=sha,
        )


def analyse(pkg: ScanPackage, rules: RuleSet) -> Iterable[Finding]:
    """The ``powershell`` analyser: NS1001 for each NuGet-run script, then its content (and the scripts it
    dot-sources by literal name from ``tools/``)."""
    scripts = nuget_run_scripts(pkg)
    if not scripts:
        return
    tools_by_name: dict[str, str] = {}
    for p in pkg.paths:
        low = p.lower()
        if low.startswith("tools/") and low.endswith((".ps1", ".psm1")):
            tools_by_name.setdefault(low.rsplit("/", 1)[-1], p)
    walk = FileWalk(pkg, scripts, limit=MAX_SCRIPT_SIZE)
    for file in walk:
        path = file.path
        if file.via is None:
            name = path.rsplit("/", 1)[-1].lower()
            when = {
                "init.ps1": "when a solution using the package opens in Visual Studio",
                "install.ps1": "when the package is installed into a packages.config project",
                "uninstall.ps1": "when the package is removed from a packages.config project",
            }[name]
            yield walk.finding(rules, "NS1001", f"{path}: NuGet runs this PowerShell script {when}", file)
        analysis = analyse_script(decode_text(file.data), rules)
        yield from _findings_for(pkg, rules, path, analysis, file.sha256, file.via)
        referenced = (tools_by_name.get(name.lower()) for name in analysis.referenced_scripts)
        walk.follow((target for target in referenced if target is not None), path)


def analysers(context: ScanContext) -> Sequence[Analyser]:
    """Engine hook (:mod:`nuseal.scan.engine`)."""
    return (analyse,)
