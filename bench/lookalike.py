"""Look-alike id detection measured on real ids: recall on malicious ids, false alarms on real popular ids.

* **Recall**: the NuGet ids of the OpenSSF malicious-packages dataset (``bench/data/ossf-malicious-nuget-ids.txt``,
  source and date in its header): the fraction flagged by ``nuseal.scan.lookalike`` (any of NS5001-NS5005)
  against the shipped popular-id list, split by rule. The dataset also has malicious packages with
  invented names (``3rugfbe8rivferiuv``) and typosquats of ids that are not in the popular list; no id
  check can flag those, and they are counted as misses.
* **False alarms**: 5-fold cross-validation over the shipped popular list (2,524 real nuget.org ids): each
  fold holds out a fifth of the ids, indexes the other four fifths, and checks the held-out ids, which are
  real packages that are *not* in the reference list. Every finding on them is a false alarm; reported at
  warning and above (what fails a scan by default) and at any level (notes included).
* **Speed**: microseconds per checked id, and the time to build the index.

Tuning rule (no overfitting): thresholds and the sibling rules were set on the false-alarm folds only; the
malicious-id list was not used to choose any of them (none of its ASCII ids has a target in the popular
list, so no threshold changes its recall).

Usage: .venv/bin/python bench/lookalike.py [--folds 5] [--seed 14] [--json out.json] [--show]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

from nuseal.scan.lookalike import PopularIds, builtin_popular_ids

DATA = Path(__file__).resolve().parent / "data" / "ossf-malicious-nuget-ids.txt"


def _ids(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--show", action="store_true", help="print every id flagged or missed")
    args = parser.parse_args(argv)

    popular = list(builtin_popular_ids())
    t0 = time.perf_counter()
    index = PopularIds(popular)
    build_s = time.perf_counter() - t0

    malicious = _ids(DATA)
    by_rule: collections.Counter[str] = collections.Counter()
    flagged = 0
    for pid in malicious:
        hits = index.check(pid)
        if hits:
            flagged += 1
            by_rule.update({h.rule_id for h in hits})
        if args.show:
            print(f"  {'FLAG' if hits else 'miss'} {pid!r} {[(h.rule_id, h.target) for h in hits]}")
    recall = flagged / len(malicious)
    non_ascii = sum(not pid.isascii() for pid in malicious)

    order = popular[:]
    random.Random(args.seed).shuffle(order)
    strong = weak = 0
    fa_rules: collections.Counter[str] = collections.Counter()
    for fold in range(args.folds):
        held = order[fold :: args.folds]
        ref = [pid for i, pid in enumerate(order) if i % args.folds != fold]
        fold_index = PopularIds(ref)
        for pid in held:
            hits = fold_index.check(pid)
            if not hits:
                continue
            fa_rules.update(h.rule_id + ("(note)" if h.weak else "") for h in hits)
            if all(h.weak for h in hits):
                weak += 1
            else:
                strong += 1
            if args.show:
                print(f"  false alarm {pid!r} {[(h.rule_id, h.target, h.weak) for h in hits]}")

    probes = [*popular[:500], *(p + "x" for p in popular[:500]), *malicious]
    t0 = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        for pid in probes:
            index.check(pid)
    per_id_us = (time.perf_counter() - t0) / (rounds * len(probes)) * 1e6

    result = {
        "malicious_ids": len(malicious),
        "malicious_non_ascii": non_ascii,
        "recall": round(recall, 4),
        "recall_by_rule": dict(sorted(by_rule.items())),
        "popular_ids": len(popular),
        "folds": args.folds,
        "false_alarm_rate_warning_or_above": round(strong / len(popular), 4),
        "false_alarm_rate_any_level": round((strong + weak) / len(popular), 4),
        "false_alarms_by_rule": dict(sorted(fa_rules.items())),
        "index_build_ms": round(build_s * 1000, 1),
        "check_us_per_id": round(per_id_us, 1),
    }
    print(
        f"recall on {len(malicious)} OpenSSF malicious NuGet ids: {recall:.1%} "
        f"({flagged} flagged; {non_ascii} have non-ASCII characters); by rule {dict(by_rule)}"
    )
    print(
        f"false alarms on {len(popular)} real popular ids held out ({args.folds}-fold): "
        f"{strong / len(popular):.2%} at warning or above, {(strong + weak) / len(popular):.2%} at any level; "
        f"by rule {dict(fa_rules)}"
    )
    print(f"index build {build_s * 1000:.0f} ms for {len(popular)} ids; check {per_id_us:.1f} us per id")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
