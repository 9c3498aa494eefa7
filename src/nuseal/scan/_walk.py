"""The walk over the files one file of a package pulls in: MSBuild ``Import`` (:mod:`nuseal.scan.msbuild`) and
dot-sourced PowerShell scripts (:mod:`nuseal.scan.powershell`).

Breadth-first from the files NuGet itself uses (the entry files), each file read once within its size bound; a
file that cannot be read is an NS9004 problem (:meth:`~nuseal.scan.package.ScanPackage.read_problem`) and the
walk goes on. The analyser says what each file pulls in with :meth:`FileWalk.follow`::

    walk = FileWalk(pkg, entry_paths, limit=MAX_SIZE)
    for file in walk:
        if file.via is None:
            yield walk.finding(rules, "NS...", "NuGet uses ...", file)  # about the whole file
        ...  # file.path, file.data, file.sha256
        walk.follow(pulled_in, file.path)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from nuseal.scan.model import Finding, Location
from nuseal.scan.package import EntryReadError, ScanPackage
from nuseal.scan.rules import RuleSet

__all__ = ["FileWalk", "WalkedFile"]


@dataclass(frozen=True, slots=True)
class WalkedFile:
    """One file reached by the walk: its entry ``path``, the file that pulled it in (``via``; ``None`` for an
    entry file), its bytes (at most the walk's ``limit``) and their hex SHA-256 (for ``Finding.file_sha256``)."""

    path: str
    via: str | None
    data: bytes
    sha256: str | None


class FileWalk:
    """A breadth-first walk from ``entries`` over the package's files (see the module docstring).

    ``limit`` bounds each file's size (bytes, :meth:`ScanPackage.read`); ``max_files`` (``None``: no bound) bounds
    how many paths are taken from the queue, unreadable ones included. Each path is visited once, in the order it
    was first queued; iterate once.
    """

    def __init__(self, pkg: ScanPackage, entries: Iterable[str], *, limit: int, max_files: int | None = None) -> None:
        self._pkg = pkg
        self._limit = limit
        self._max_files = max_files
        self._queue: deque[tuple[str, str | None]] = deque((path, None) for path in entries)
        self._done: set[str] = set()

    def follow(self, paths: Iterable[str], via: str) -> None:
        """Queue ``paths`` (entry paths of the package), pulled in by the file ``via``; visited ones are skipped."""
        self._queue.extend((path, via) for path in paths if path not in self._done)

    def finding(
        self, rules: RuleSet, rule_id: str, message: str, file: WalkedFile, *, evidence: str | None = None
    ) -> Finding:
        """A finding of ``rule_id`` about the whole of ``file`` (located at its path, no line), its evidence
        ``evidence`` or else the path."""
        return rules.finding(
            rule_id,
            message,
            self._pkg.ref,
            location=Location(path=file.path),
            evidence=file.path if evidence is None else evidence,
            file_sha256=file.sha256,
        )

    def __iter__(self) -> Iterator[WalkedFile]:
        while self._queue and (self._max_files is None or len(self._done) < self._max_files):
            path, via = self._queue.popleft()
            if path in self._done:
                continue
            self._done.add(path)
            try:
                data = self._pkg.read(path, limit=self._limit)
            except EntryReadError as exc:
                self._pkg.read_problem(exc)
                continue
            yield WalkedFile(path, via, data, self._pkg.sha256(path))
