"""Runs NuGet's verifier (``oracle``) on the 12 vectors, their unsigned copies, and every tamper case of 3
vectors, and writes the results: the generated part of ``docs/oracle-findings.md`` (between the
``BEGIN GENERATED`` / ``END GENERATED`` markers; the text around them is kept) and, for tests,
``tests/support/oracle_findings.json``.

Run from ``tests/``: ``../.venv/bin/python -m support.oracle_findings`` (about 2-3 minutes cold, seconds
when the oracle cache is warm).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from . import oracle, tamper

VECTORS = oracle.SHARED / "vectors" / "nuget.org"
TAMPER_VECTORS = {  # short label -> file
    "SM": "system.memory.4.5.3.nupkg",  # author + nuget.org repository countersignature
    "RS": "RestSharp.106.11.4.nupkg",  # repository primary
    "NJ": "Newtonsoft.Json.12.0.3.nupkg",  # author + UiPath repository countersignature, ESS v1 timestamps
}
DOC = oracle.REPO_ROOT / "docs" / "oracle-findings.md"
JSON_OUT = Path(__file__).with_name("oracle_findings.json")
BEGIN, END = "<!-- BEGIN GENERATED -->", "<!-- END GENERATED -->"
SHORT = {"verifyCommand": "verify", "verifyCommandAllowUntrusted": "verify+untrusted", "acceptMode": "accept",
         "requireMode": "require"}
FATAL_TEXT_LIMIT = 160


def summary(report: oracle.VerifyReport) -> dict[str, Any]:
    """The deterministic part of a report (no timings, no temporary paths)."""
    return {
        "isSigned": report.is_signed,
        "contentHash": report.content_hash,
        "contentHashError": report.content_hash_error,
        "integrity": report.integrity,
        "signatureLoadError": report.signature_load_error,
        "fatal": report.fatal,
        "guarded": report.guarded,
        "primaryType": report.primary.type if report.primary else None,
        "countersignatureType": report.countersignature.type if report.countersignature else None,
        "policies": {
            v.policy: {
                "isValid": v.is_valid,
                "codes": [list(c) for c in v.codes],
                "trusts": list(v.trusts),
                "exception": v.exception,
                "issues": [[i.level, i.code, i.message] for i in v.issues],
            }
            for v in report.policies
        },
    }


def cell(s: dict[str, Any], policy: str) -> str:
    if s["fatal"]:
        return "unreadable"
    p = s["policies"].get(policy)
    if p is None:
        return "—"
    if p["exception"]:
        return "exception"
    mark = "✓" if p["isValid"] else "✗"
    codes = " ".join(f"{'E' if lvl == 'error' else 'W' if lvl == 'warning' else lvl}:{c}" for lvl, c in p["codes"])
    return f"{mark} {codes}".strip()


def merged(per_vector: dict[str, str]) -> str:
    values = set(per_vector.values())
    if len(values) == 1:
        return values.pop()
    return "<br>".join(f"{k}: {v}" for k, v in per_vector.items())


def hash_relation(s: dict[str, Any], original: dict[str, Any]) -> str:
    if s["contentHash"] is None:
        return "none"
    return "same" if s["contentHash"] == original["contentHash"] else "differs"


def short(text: str | None) -> str:
    if not text:
        return ""
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= FATAL_TEXT_LIMIT else text[: FATAL_TEXT_LIMIT - 1] + "…"


def notes(s: dict[str, Any]) -> str:
    out = []
    if s["fatal"]:
        out.append(f"fatal: {short(s['fatal'])}")
    exceptions = {p["exception"] for p in s["policies"].values() if p["exception"]}
    out += [f"policy exception: {short(e)}" for e in sorted(exceptions)]
    if s["guarded"]:
        out.append("guarded rerun (stock oracle.cs crashed printing the timestamps)")
    odd = [SHORT[n] for n, p in s["policies"].items()
           if p["isValid"] is False and not any(lvl == "error" for lvl, _ in p["codes"])]
    if odd:
        trusts = {n: s["policies"][n]["trusts"] for n in s["policies"]}
        out.append(f"invalid without an error code in {', '.join(odd)} (trusts {trusts['acceptMode']})")
    return "; ".join(out)


def first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").split())
    head, dot, _ = text.partition(". ")
    return head + "." if dot else text


def generate() -> tuple[str, dict[str, Any]]:
    started = time.monotonic()
    packages: dict[str, bytes] = {}
    for path in sorted(VECTORS.glob("*.nupkg")):
        data = path.read_bytes()
        packages[f"{path.name}|original"] = data
        packages[f"{path.name}|unsigned"] = tamper.signature_removed(data)
    not_applicable: dict[str, list[str]] = {}
    for label, name in TAMPER_VECTORS.items():
        data = (VECTORS / name).read_bytes()
        for case, fn in tamper.CASES.items():
            try:
                packages[f"{name}|{case}"] = fn(data)
            except tamper.NotApplicable:
                not_applicable.setdefault(case, []).append(label)
    reports = oracle.verify_many(packages)
    print(f"{len(packages)} packages verified in {time.monotonic() - started:.1f} s", file=sys.stderr)
    results = {key: summary(r) for key, r in reports.items()}
    version = next(iter(reports.values())).oracle

    lines = [
        BEGIN,
        f"Oracle: `{version}`; trust: `shared/trust/codesignctl.pem` + `timestampctl.pem`; revocation offline.",
        f"{len(packages)} packages: the 12 vectors, their unsigned copies, {len(tamper.CASES)} cases x "
        f"{len(TAMPER_VECTORS)} vectors (less the cases not applicable).",
        "",
        "Cells: ✓ valid / ✗ invalid, then NuGet's distinct codes (E: error, W: warning), as "
        "`PackageSignatureVerifier` returned them. *unreadable*: NuGet threw before any policy ran (no code). "
        "*exception*: `VerifySignaturesAsync` itself threw (no result, no code).",
        "",
        "### The 12 vectors, untampered",
        "",
        "| vector | primary / countersig | contentHash (NuGet) | integrity | verify | verify+untrusted | accept "
        "| require |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(VECTORS.glob("*.nupkg")):
        s = results[f"{path.name}|original"]
        lines.append(
            f"| {path.name} | {s['primaryType']} / {s['countersignatureType'] or '—'} | `{s['contentHash']}` | "
            f"{s['integrity']} | " + " | ".join(cell(s, p) for p in oracle.POLICIES) + " |"
        )
    lines += [
        "",
        "### Unsigned copies (`tamper.signature_removed`, NuGet's own RemoveSignature byte moves)",
        "",
        "| vector | isSigned | contentHash = signed package's | verify | verify+untrusted | accept | require "
        "| messages |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(VECTORS.glob("*.nupkg")):
        s, o = results[f"{path.name}|unsigned"], results[f"{path.name}|original"]
        messages = sorted({m for p in s["policies"].values() for _l, _c, m in p["issues"]})
        lines.append(
            f"| {path.name} | {s['isSigned']} | {'yes' if s['contentHash'] == o['contentHash'] else 'NO'} | "
            + " | ".join(cell(s, p) for p in oracle.POLICIES) + f" | {'; '.join(messages)} |"
        )
    lines += [
        "",
        "### Tamper matrix",
        "",
        "Vectors: " + ", ".join(f"{k} = {v}" for k, v in TAMPER_VECTORS.items()) + ". One value per cell when "
        "all three agree, else one line per vector. *contentHash*: NuGet's content hash of the tampered file "
        "compared with the original's.",
        "",
        "| case | what it does | isSigned | integrity | contentHash | verify | verify+untrusted | accept | require "
        "| notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, fn in tamper.CASES.items():
        per = {label: results.get(f"{name}|{case}") for label, name in TAMPER_VECTORS.items()}
        present = {k: v for k, v in per.items() if v is not None}
        originals = {k: results[f"{TAMPER_VECTORS[k]}|original"] for k in present}
        row = [
            f"`{case}`",
            first_sentence(fn.__doc__),
            merged({k: str(v["isSigned"]) for k, v in present.items()}),
            merged({k: str(v["integrity"]) for k, v in present.items()}),
            merged({k: hash_relation(v, originals[k]) for k, v in present.items()}),
            *(merged({k: cell(v, p) for k, v in present.items()}) for p in oracle.POLICIES),
            merged({k: notes(v) for k, v in present.items()}),
        ]
        if case in not_applicable:
            row[-1] = (row[-1] + "; " if row[-1] else "") + f"not applicable to {', '.join(not_applicable[case])}"
        lines.append("| " + " | ".join(row) + " |")

    seen: dict[tuple[str, str], set[str]] = {}
    for key, s in results.items():
        for p in s["policies"].values():
            for _level, code, message in p["issues"]:
                seen.setdefault((code, message), set()).add(key.split("|")[1])
    lines += [
        "",
        "### Messages NuGet logged, by code",
        "",
        "| code | message | seen in |",
        "|---|---|---|",
    ]
    for (code, message), cases in sorted(seen.items()):
        lines.append(f"| {code} | {short(message)} | {', '.join(sorted(cases))} |")
    lines += ["", END]
    return "\n".join(lines), {"oracle": version, "vectors": TAMPER_VECTORS, "results": results}


def main() -> int:
    if not oracle.oracle_available():
        print(f"oracle unavailable: {oracle.oracle_unavailable_reason()}", file=sys.stderr)
        return 1
    generated, data = generate()
    text = DOC.read_text(encoding="utf-8") if DOC.is_file() else f"# NuGet oracle findings\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + generated + tail, encoding="utf-8")
    JSON_OUT.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {DOC} and {JSON_OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
