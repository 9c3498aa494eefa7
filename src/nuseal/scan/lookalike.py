"""Look-alike package ids: homoglyphs (UTS #39 confusable skeletons) and ASCII typosquats of popular ids.

A package id is compared with a reference list of popular ids (shipped as package data,
``nuseal/scan/data/popular-nuget-ids.txt``: nuget.org ids of 2026-12-01; extended by ``--popular-ids FILE``
and by a feed's own ids). NuGet ids are case-insensitive (NuGet.Client ``PackageIdValidator``; the
gallery compares ids ignoring case), so every comparison here is on case-folded text, and an id that
*is* in the list (any case) is never reported: a popular package is not a look-alike of itself.

Rules (``rules/identity.toml``):

* **NS5001** the id has non-ASCII characters. NuGet accepts Unicode letters in ids, and every known
  homoglyph campaign on nuget.org used them (Cyrillic U+0430 a, U+0435 e, U+043E o,
  U+0440 p, U+0441 c, U+0456 i; Armenian U+0578 n, U+0585 o); real ids are ASCII.
* **NS5002** the id's confusable skeleton equals a popular id's (it renders like that id). Skeletons
  are ICU's ``SpoofChecker.getSkeleton`` (UTS #39 section 4 over Unicode's ``confusables.txt``; PyICU from
  the ``pyicu-wheels`` distribution, ICU 77 / Unicode 16), compared case-folded, for the id as written
  and case-folded (``I`` and ``l`` share a skeleton; ``Serilog`` / ``SeriIog``).
* **NS5003** one edit from a popular id (optimal string alignment distance 1: insert, delete,
  substitute, or swap two adjacent characters), or the same id with letters doubled (``Newtonsofft.Json``).
  An edit that changes a whole word other popular ids use (``xunit`` / ``nunit``, ``MySql`` / ``MsSql``),
  or a word of at most 3 characters (culture codes), is a family sibling, not a typo.
* **NS5004** the same id with separators changed (``.`` ``-`` ``_`` swapped, dropped or added).
* **NS5005** a popular id with a common suffix added or swapped (``.Net``, ``.Core``, ``.Api``, ``.Lib``...:
  ``AvalonEdit.Net``). Real families do this too (``Mapster`` / ``Mapster.Core``), so when the id's
  namespace already has other members in the list (``Mapster.*``) the finding is weak: one level lower.

NS5003-NS5005 on a non-ASCII id are judged on its skeleton (what it renders as), and never weak: no real
family member uses look-alike letters.

Tuning (``bench/lookalike.py``): the sibling rules and thresholds were chosen on false alarms among
real popular ids held out of the list (5-fold), never on the malicious ids used for recall.
Speed: :class:`PopularIds` indexes the list once (exact ids, skeletons, separator-free keys,
run-collapsed keys, suffix stems and the one-deletion neighbourhood of each key, as in the
symmetric-delete method; the same shapes of the skeletons on the first non-ASCII id)
so :meth:`PopularIds.check` costs a few dictionary look-ups per deletion of the id (microseconds), not
a pass over the list. Edits that touch a digit are not typosquats here (``NUnit3TestAdapter`` /
``NUnitTestAdapter``, ``Foo.V2`` / ``Foo.V3`` are real families); ids whose key is shorter than
:data:`MIN_EDIT_LENGTH` are not compared by edits (``xunit`` / ``nunit``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import icu

from nuseal.errors import ConfigError
from nuseal.scan.model import Finding, Location, Severity

if TYPE_CHECKING:
    from nuseal.scan.engine import Analyser, ScanContext
    from nuseal.scan.package import ScanPackage
    from nuseal.scan.rules import RuleSet

__all__ = [
    "MIN_EDIT_LENGTH",
    "SUFFIXES",
    "Lookalike",
    "PopularIds",
    "analysers",
    "builtin_popular_ids",
    "popular_index",
    "read_id_file",
    "skeleton",
]

#: Keys (separator-free, case-folded) shorter than this are not compared by one edit.
MIN_EDIT_LENGTH = 6
#: Suffix words whose addition or swap makes a look-alike (compared separator-free, case-folded).
SUFFIXES: tuple[str, ...] = (
    "net",
    "dotnet",
    "netcore",
    "core",
    "api",
    "lib",
    "library",
    "sdk",
    "client",
    "standard",
    "wrapper",
    "helper",
    "helpers",
    "utils",
    "official",
)
_SEPARATORS = re.compile(r"[._\-]+")
_RUNS = re.compile(r"(.)\1+")
#: Longest id NuGet accepts (NuGet.Client PackageIdValidator.MaxPackageIdLength).
MAX_ID_LENGTH = 100


@dataclass(frozen=True, slots=True)
class Lookalike:
    """One reason an id looks like a popular id: ``rule_id`` (NS5001-NS5004), the popular id it imitates
    (``None`` for NS5001), and a human-readable ``detail``."""

    rule_id: str
    target: str | None
    detail: str
    #: ``True`` when the id is a plausible member of an existing family (reported one level lower).
    weak: bool = False


@functools.cache
def _checker() -> object:
    return icu.SpoofChecker()


def skeleton(text: str) -> str:
    """The UTS #39 confusable skeleton of ``text``, case-folded (ICU ``SpoofChecker.getSkeleton``).

    Two strings with the same skeleton render alike in most fonts (``Newtonsoft`` with a Cyrillic
    U+0435 for its ``e``, and ``Newtonsoft``; ``SeriIog`` and ``Serilog``).
    """
    return str(_checker().getSkeleton(0, text)).casefold()  # type: ignore[attr-defined]


def _skeletons(text: str) -> set[str]:
    return {skeleton(text), skeleton(text.casefold())}


def _squash(text: str) -> str:
    return _SEPARATORS.sub("", text.casefold())


def _norm(text: str) -> str:
    """Case-folded, every run of separators made one ``.``: the form one-edit comparisons use, so that
    separator changes are left to NS5004 and the changed word can be found."""
    return _SEPARATORS.sub(".", text.casefold())


def _collapse(text: str) -> str:
    return _RUNS.sub(r"\1", text)


def _deletions(key: str) -> Iterator[str]:
    for i in range(len(key)):
        yield key[:i] + key[i + 1 :]


def _one_edit(a: str, b: str) -> bool:
    """Optimal string alignment distance of ``a`` and ``b`` is exactly 1, and neither a digit nor a
    separator is the changed character (separator changes are NS5004's)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):  # one insertion into a
        changed = b[i]
        ok = a[i:] == b[i + 1 :]
        return ok and not changed.isdigit() and changed != "."
    # same length: one substitution or one adjacent transposition
    if a[i + 1 :] == b[i + 1 :]:
        return not (a[i].isdigit() or b[i].isdigit() or "." in (a[i], b[i]))
    if i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]:
        return not (a[i].isdigit() or a[i + 1].isdigit())
    return False


def _strip_suffix(key: str) -> str | None:
    for suffix in SUFFIXES:
        if key.endswith(suffix) and len(key) - len(suffix) >= 3:
            return key[: -len(suffix)]
    return None


class _Shapes:
    """The ASCII-shape index of a list of texts (ids, or their skeletons): doubled letters, one edit,
    separators, suffixes. ``target`` maps each indexed text back to the popular id it stands for."""

    def __init__(self) -> None:
        self._squash: dict[str, str] = {}
        self._norm: dict[str, str] = {}
        self._words: set[str] = set()
        self._roots: set[str] = set()
        self._collapsed: dict[str, str] = {}
        self._stem: dict[str, str] = {}
        self._deletes: dict[str, list[str]] = {}

    def add(self, text: str, target: str) -> None:
        key = _squash(text)
        self._squash.setdefault(key, target)
        norm = _norm(text)
        self._norm.setdefault(norm, target)
        self._collapsed.setdefault(_collapse(norm), target)
        words = norm.split(".")
        self._words.update(words)
        for i in range(1, len(words)):
            self._roots.add(".".join(words[:i]))
        stem = _strip_suffix(key)
        self._stem.setdefault(stem or key, target)
        if len(key) >= MIN_EDIT_LENGTH:
            self._deletes.setdefault(norm, []).append(norm)
            for d in _deletions(norm):
                self._deletes.setdefault(d, []).append(norm)

    def _sibling(self, norm: str, near: str) -> bool:
        """Whether the one-edit difference of ``norm`` from the reference id ``near`` is a whole word
        of a family rather than a typo: the changed word of the id is a word of the reference list
        (``xunit`` / ``nunit``, ``Mvc.Core`` / ``Mvc.Cors``, ``MySql`` / ``MsSql``), or a short code of at
        most 3 characters (``Humanizer.Core.ro`` / ``.ko``). A typo makes a non-word (``Jsno``)."""
        words, targets = norm.split("."), near.split(".")
        if len(words) != len(targets):
            return False
        changed = [(w, t) for w, t in zip(words, targets, strict=True) if w != t]
        if len(changed) != 1:
            return False
        word, target = changed[0]
        return word in self._words or len(word) <= 3 or len(target) <= 3

    def _near(self, norm: str) -> str | None:
        candidates = set(self._deletes.get(norm, ()))
        for d in _deletions(norm):
            candidates.update(self._deletes.get(d, ()))
        for cand in sorted(candidates):
            if _one_edit(norm, cand):
                return cand
        return None

    def match(self, text: str, how: str = "") -> Lookalike | None:
        """The first shape rule ``text`` matches (NS5003 doubled letters / one edit, NS5004 separators,
        NS5005 suffix), or ``None``. ``how`` prefixes the detail (``"renders like "`` for skeletons)."""
        key, norm = _squash(text), _norm(text)
        target = self._collapsed.get(_collapse(norm))
        if target is not None and _collapse(norm) != norm and _norm(target) != norm and norm not in self._norm:
            return Lookalike("NS5003", target, f"{how}{target} with letters doubled")
        if len(key) >= MIN_EDIT_LENGTH:
            near = self._near(norm)
            if near is not None and not self._sibling(norm, near):
                target = self._norm[near]
                return Lookalike("NS5003", target, f"{how}one edit from {target}")
        target = self._squash.get(key)
        if target is not None:
            return Lookalike("NS5004", target, f"{how}{target} with its separators changed")
        stem = _strip_suffix(key)
        target = self._stem.get(stem) if stem is not None else None
        if target is not None:
            parent = norm.rpartition(".")[0]
            family = bool(parent) and parent in self._roots
            sibling = f" (other {parent}.* packages exist: maybe a sibling)" if family else ""
            return Lookalike("NS5005", target, f"{how}{target} with a suffix added or changed{sibling}", family)
        return None


class PopularIds:
    """An index of reference ids for :meth:`check` (see the module docstring for what each rule means).

    Build once (a few hundred ms for the built-in 2,524 ids) and share: :meth:`check` only reads it
    (the skeleton-shape index is built on the first non-ASCII id).
    """

    def __init__(self, ids: Iterable[str]) -> None:
        self._exact: dict[str, str] = {}
        self._skeleton: dict[str, str] = {}
        self._shapes = _Shapes()
        self._skeleton_shapes: _Shapes | None = None
        for raw in ids:
            self.add(raw)

    def __len__(self) -> int:
        return len(self._exact)

    def __contains__(self, package_id: object) -> bool:
        return isinstance(package_id, str) and package_id.casefold() in self._exact

    def add(self, package_id: str) -> None:
        """Add one reference id (blank and ``#`` lines of id files are skipped by :func:`read_id_file`)."""
        pid = package_id.strip()
        folded = pid.casefold()
        if not pid or folded in self._exact:
            return
        self._exact[folded] = pid
        for skel in _skeletons(pid):
            self._skeleton.setdefault(skel, pid)
        self._shapes.add(pid, pid)
        self._skeleton_shapes = None

    def _skeleton_index(self) -> _Shapes:
        # Built on the first non-ASCII id only: an ASCII id's shapes are checked on the id itself, and
        # most scans see no non-ASCII id at all.
        if self._skeleton_shapes is None:
            shapes = _Shapes()
            for skel, pid in self._skeleton.items():
                shapes.add(skel, pid)
            self._skeleton_shapes = shapes
        return self._skeleton_shapes

    def check(self, package_id: str) -> list[Lookalike]:
        """Why ``package_id`` looks like a reference id: an empty list when it does not, or when it is one.

        NS5001 whenever the id has non-ASCII characters, then the strongest of NS5002 (same skeleton),
        NS5003, NS5004, NS5005 -- for a non-ASCII id, on its skeleton (``Newtonsoft.Json.Net`` with a
        Cyrillic ``o`` is a suffix squat that renders like the real id).
        """
        pid = package_id.strip()[:MAX_ID_LENGTH]
        folded = pid.casefold()
        if not pid or folded in self._exact:
            return []
        found: list[Lookalike] = []
        if not pid.isascii():
            odd = sorted({c for c in pid if not c.isascii()})
            names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in odd[:4])
            found.append(Lookalike("NS5001", None, f"non-ASCII characters: {names}"))
        skels = sorted(_skeletons(pid))
        for skel in skels:
            target = self._skeleton.get(skel)
            if target is not None:
                found.append(Lookalike("NS5002", target, f"renders like {target} (same confusable skeleton)"))
                return found
        hit = None
        if not pid.isascii():
            # A homoglyph id is judged on what it renders as; no real family member uses look-alike
            # letters, so a suffix on one is never the weak (sibling) case.
            index = self._skeleton_index()
            for skel in skels:
                hit = index.match(skel, "renders like ")
                if hit is not None:
                    hit = Lookalike(hit.rule_id, hit.target, hit.detail.split(" (other ")[0])
                    break
        if hit is None:
            hit = self._shapes.match(pid)
        if hit is not None:
            found.append(hit)
        return found


def read_id_file(path: Path) -> list[str]:
    """The ids of a popular-ids file: one id a line, ``#`` comments and blank lines skipped, UTF-8.

    Raises:
        ConfigError: the file cannot be read or is not UTF-8 text (names the file).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read popular-ids file {path}: {exc}") from exc
    return _parse_ids(text)


def _parse_ids(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        value = line.split("#", 1)[0].strip()
        if value:
            out.append(value)
    return out


@functools.cache
def builtin_popular_ids() -> tuple[str, ...]:
    """The shipped reference list (``nuseal/scan/data/popular-nuget-ids.txt``; source and date in its header)."""
    data = resources.files("nuseal.scan").joinpath("data/popular-nuget-ids.txt").read_text(encoding="utf-8")
    return tuple(_parse_ids(data))


@functools.cache
def _builtin_index() -> PopularIds:
    return PopularIds(builtin_popular_ids())


def popular_index(extra: Sequence[str] = ()) -> PopularIds:
    """The built-in list plus ``extra`` ids (user files, a feed's own ids), indexed."""
    if not extra:
        return _builtin_index()
    return PopularIds((*builtin_popular_ids(), *extra))


def analysers(context: ScanContext) -> Sequence[Analyser]:
    """The engine's entry point (see :mod:`nuseal.scan.engine`): one analyser checking the package id
    against the built-in list, ``context.popular_ids`` and the files of ``context.popular_id_files``."""
    extra = list(context.popular_ids)
    for name in context.popular_id_files:
        extra.extend(read_id_file(Path(name)))
    index = popular_index(tuple(extra))

    def analyse(pkg: ScanPackage, rules: RuleSet) -> Iterator[Finding]:
        package_id = pkg.ref.id
        if not package_id:
            return
        for hit in index.check(package_id):
            if not rules.enabled(hit.rule_id):
                continue
            rule = rules.get(hit.rule_id)
            yield rules.finding(
                hit.rule_id,
                f"{rule.title}: the id {package_id!r}: {hit.detail}",
                pkg.ref,
                location=Location(path=_nuspec_path(pkg)),
                evidence=f"{package_id} ~ {hit.target}" if hit.target else package_id,
                severity=_lower(rule.severity) if hit.weak else None,
            )

    return (analyse,)


def _lower(severity: Severity) -> Severity:
    return Severity(max(Severity.NOTE, severity - 1))


def _nuspec_path(pkg: ScanPackage) -> str | None:
    for path in pkg.paths:
        if "/" not in path and path.lower().endswith(".nuspec"):
            return path
    return None
