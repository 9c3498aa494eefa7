"""Certificate chain building with NuGet's settings and .NET's chain statuses.

NuGet builds every chain with ``X509Chain`` (NC ``Signature.Verify``, ``Timestamp.Verify``,
``CertificateChainUtility.SetCertBuildChainPolicy``; ``../shared/NUGET-SIGNING.md`` §4.2):

* ``ApplicationPolicy`` = the purpose's EKU (code signing or time stamping);
* ``ExtraStore`` = the certificates of the SignedData (or of the timestamp token);
* ``RevocationFlag = ExcludeRoot``; ``RevocationMode`` online or offline;
* ``VerificationFlags = IgnoreNotTimeValid``; ``VerificationTime`` = the timestamp's upper limit (or now).

and then branches on ``X509ChainStatusFlags``. :class:`ChainBuilder` reproduces that on Linux terms (the
.NET SDK's ``CustomRootTrust`` with a PEM bundle, ``OpenSslX509ChainProcessor``): it finds a path from the
leaf to a self-issued certificate, preferring the trust store's roots, and reports every status of every
element instead of stopping at the first problem, so the caller can apply NuGet's rules (which statuses are
errors, which warnings, which are ignored). Status texts follow what NuGet 6.14 on .NET 8 (Linux) prints
(``"RevocationStatusUnknown: unable to get certificate CRL"``).

Not implemented (documented gaps): name constraints, certificate-policy processing (NuGet sets no
certificate policy), AIA ``caIssuers`` fetching of missing intermediates.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal.codes import Issue, Level, NuCode
from nuseal.errors import UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.trust.certificate import (
    CertificateFacts,
    CertificatePurpose,
    dotnet_name,
    facts,
    facts_may_have_issued,
    facts_signed_by,
    fingerprint,
    is_self_issued,
)
from nuseal.trust.revocation import (
    RevocationCache,
    RevocationChecker,
    RevocationFetcher,
    RevocationMode,
    RevocationResult,
    RevocationStatus,
)
from nuseal.trust.store import TrustStore

__all__ = [
    "DEFAULT_OBSERVED_STATUSES",
    "MAX_CHAIN_LENGTH",
    "MAX_EXTRA_CERTIFICATES",
    "MAX_PATH_CANDIDATES",
    "ChainBuilder",
    "ChainElement",
    "ChainResult",
    "ChainStatus",
    "untrusted_root_warning",
]

#: Longest chain built, leaf and root included.
MAX_CHAIN_LENGTH = 16
#: Extra (SignedData) certificates considered; any beyond are ignored.
MAX_EXTRA_CERTIFICATES = 256
#: Partial paths explored while looking for the best chain (cross-certificates can branch).
MAX_PATH_CANDIDATES = 64


class ChainStatus(enum.Flag):
    """.NET's ``X509ChainStatusFlags`` (same names, same values), the subset chain building can produce."""

    NO_ERROR = 0
    NOT_TIME_VALID = 0x1
    NOT_TIME_NESTED = 0x2
    REVOKED = 0x4
    NOT_SIGNATURE_VALID = 0x8
    NOT_VALID_FOR_USAGE = 0x10
    UNTRUSTED_ROOT = 0x20
    REVOCATION_STATUS_UNKNOWN = 0x40
    CYCLIC = 0x80
    INVALID_EXTENSION = 0x100
    INVALID_POLICY_CONSTRAINTS = 0x200
    INVALID_BASIC_CONSTRAINTS = 0x400
    INVALID_NAME_CONSTRAINTS = 0x800
    PARTIAL_CHAIN = 0x10000
    OFFLINE_REVOCATION = 0x1000000
    EXPLICIT_DISTRUST = 0x4000000
    HAS_NOT_SUPPORTED_CRITICAL_EXTENSION = 0x8000000

    @property
    def dotnet_name(self) -> str:
        """The .NET member name (``RevocationStatusUnknown``); a combination is joined with ``", "``."""
        return (
            ", ".join("".join(part.capitalize() for part in (member.name or "").split("_")) for member in self)
            or "NoError"
        )


_DOTNET_NAMES: dict[ChainStatus, str] = {member: member.dotnet_name for member in ChainStatus}
_BY_DOTNET_NAME: dict[str, ChainStatus] = {name: member for member, name in _DOTNET_NAMES.items()}

#: The statuses NuGet reports as a chain-building failure (NU3012 / NU3035 / NU3028, fatal unless
#: ``allowIllegal``): NC ``CertificateChainUtility.DefaultObservedStatusFlags``, i.e. every status except
#: NotTimeValid, NotTimeNested, Revoked, RevocationStatusUnknown, OfflineRevocation and UntrustedRoot, which
#: NuGet handles one by one.
DEFAULT_OBSERVED_STATUSES = ~(
    ChainStatus.NOT_TIME_VALID
    | ChainStatus.NOT_TIME_NESTED
    | ChainStatus.REVOKED
    | ChainStatus.REVOCATION_STATUS_UNKNOWN
    | ChainStatus.OFFLINE_REVOCATION
    | ChainStatus.UNTRUSTED_ROOT
)

# OpenSSL's X509_supported_extension list (v3_purp.c): critical extensions it understands.
_SUPPORTED_CRITICAL_EXTENSIONS = frozenset(
    {
        "2.16.840.1.113730.1.1",  # netscape cert type
        "2.5.29.15",  # keyUsage
        "2.5.29.17",  # subjectAltName
        "2.5.29.19",  # basicConstraints
        "2.5.29.30",  # nameConstraints
        "2.5.29.31",  # cRLDistributionPoints
        "2.5.29.32",  # certificatePolicies
        "2.5.29.33",  # policyMappings
        "2.5.29.36",  # policyConstraints
        "2.5.29.37",  # extKeyUsage
        "2.5.29.54",  # inhibitAnyPolicy
        "1.3.6.1.5.5.7.1.7",  # sbgp-ipAddrBlock
        "1.3.6.1.5.5.7.1.8",  # sbgp-autonomousSysNum
        "1.3.6.1.5.5.7.1.14",  # proxyCertInfo
    }
)

# The StatusInformation texts .NET 8 gives on Linux (OpenSSL's error strings; NotValidForUsage from .NET's
# own SR.Chain_NoPolicyMatch), as NuGet 6.14 prints them: "<Status>: <text>".
_EXPIRED = "certificate has expired"
_NOT_YET_VALID = "certificate is not yet valid"
_BAD_SIGNATURE = "certificate signature failure"
_INVALID_CA = "invalid CA certificate"
_NO_CERT_SIGN = "key usage does not include certificate signing"
_PATH_LENGTH = "path length constraint exceeded"
_CRITICAL = "unhandled critical extension"
_INVALID_EXTENSION = "invalid or inconsistent certificate extension"
_NO_POLICY_MATCH = "The certificate has invalid policy."
_SELF_SIGNED_IN_CHAIN = "self-signed certificate in certificate chain"
_SELF_SIGNED_LEAF = "self-signed certificate"
_NO_ISSUER = "unable to get local issuer certificate"
_REVOKED = "certificate revoked"
_NO_CRL = "unable to get certificate CRL"

_ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string


@dataclass(frozen=True)
class ChainElement:
    """One certificate of the chain with its own statuses (.NET ``X509ChainElement``).

    ``messages`` are ``"<Status>: <text>"`` lines; ``revocation`` is the revocation answer when revocation
    was considered for this element (never for the root).
    """

    certificate: x509.Certificate
    statuses: ChainStatus = ChainStatus.NO_ERROR
    messages: tuple[str, ...] = ()
    revocation: RevocationResult | None = None


@dataclass(frozen=True)
class ChainResult:
    """The chain NuGet's ``X509Chain`` would build and everything the verifier branches on.

    * ``chain`` / ``elements``: leaf first; the last one is the root (or the highest certificate found when
      the chain is partial).
    * ``statuses``: the union of the elements' statuses (.NET ``ChainStatus``); ``ignored``: statuses the
      verification flags ignore (``NOT_TIME_VALID`` under ``IgnoreNotTimeValid``).
    * ``revocation_time``: when the first revoked certificate (from the leaf up) was revoked.
    * ``root_in_store``: the last certificate is one of the trust store's roots; when it is not but the chain
      is complete, NuGet adds NU3042 naming ``trust_store_path``.
    """

    chain: tuple[x509.Certificate, ...]
    elements: tuple[ChainElement, ...]
    statuses: ChainStatus
    ignored: ChainStatus
    revocation_time: datetime | None
    root_in_store: bool
    purpose: CertificatePurpose
    verification_time: datetime
    revocation_mode: RevocationMode
    trust_store_source: str
    trust_store_path: str | None = None
    _by_status: Mapping[ChainStatus, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        collected: dict[ChainStatus, set[str]] = {}
        for element in self.elements:
            for message in element.messages:
                # A message belongs to the one status it is prefixed with ("<Status>: "), if the element has it.
                member = _BY_DOTNET_NAME.get(message.split(": ", 1)[0]) if ": " in message else None
                if member is not None and member in element.statuses:
                    collected.setdefault(member, set()).add(message)
        object.__setattr__(self, "_by_status", {k: tuple(sorted(v)) for k, v in collected.items()})

    @property
    def leaf(self) -> x509.Certificate:
        """The certificate the chain was built for."""
        return self.chain[0]

    @property
    def root(self) -> x509.Certificate:
        """The last certificate of the chain."""
        return self.chain[-1]

    @property
    def errors(self) -> ChainStatus:
        """``statuses`` minus ``ignored``."""
        return self.statuses & ~self.ignored

    @property
    def succeeded(self) -> bool:
        """What ``X509Chain.Build`` returns: no status left once the ignored ones are removed."""
        return not self.errors

    @property
    def messages(self) -> Mapping[ChainStatus, tuple[str, ...]]:
        """Per single status, its distinct ``"<Status>: <text>"`` messages in ordinal order."""
        return self._by_status

    def has(self, status: ChainStatus) -> bool:
        """Whether any of ``status``'s flags is present."""
        return bool(self.statuses.value & status.value)  # ints: Flag's & builds a member through EnumType.__call__

    def messages_for(self, statuses: ChainStatus) -> tuple[str, ...]:
        """Messages of every status in ``statuses``, distinct and ordinal-sorted.

        NuGet's ``CertificateChainUtility.TryGetStatusMessage`` / ``GetMessagesFromChainStatuses``.
        """
        found = {m for member in statuses for m in self._by_status.get(member, ())}
        return tuple(sorted(found))

    @property
    def revoked_element(self) -> ChainElement | None:
        """The first revoked element from the leaf up, if any."""
        return next((e for e in self.elements if e.statuses & ChainStatus.REVOKED), None)


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):  # absent, or undecodable (reported as InvalidExtension)
        return None


def _extensions_readable(cert: x509.Certificate) -> bool:
    try:
        _ = cert.extensions
    except ValueError:
        return False
    return True


def _critical_oids(cert: x509.Certificate) -> list[str]:
    try:
        return [ext.oid.dotted_string for ext in cert.extensions if ext.critical]
    except ValueError:
        return []


class _Search:
    """Depth-first search for the best path from a leaf to a self-issued certificate.

    Works on memoised :class:`CertificateFacts`: issuers are looked up by the issuer name's DER bytes in the
    store's and the signature's subject indexes and filtered by key identifier; no name is encoded again.
    ``examined`` collects every certificate whose validity at ``at`` the search may read (the leaf and every
    issuer candidate): the result depends on ``at`` only through their validity states.
    """

    def __init__(self, store: TrustStore, extra: Sequence[CertificateFacts], at: datetime) -> None:
        self.store = store
        self.at = at
        self.extra_by_subject: dict[bytes, list[CertificateFacts]] = {}
        seen: set[bytes] = set()
        for known in extra:
            if known.der in seen:
                continue
            seen.add(known.der)
            self.extra_by_subject.setdefault(known.subject, []).append(known)
        self.budget = MAX_PATH_CANDIDATES
        self.best: tuple[tuple[int, ...], list[CertificateFacts]] | None = None
        self.examined: dict[bytes, CertificateFacts] = {}

    def issuers(self, cert: CertificateFacts) -> list[CertificateFacts]:
        own = cert.der
        seen: set[bytes] = set()
        found: list[CertificateFacts] = []
        for candidate in (*self.store.issuer_candidates(cert), *self.extra_by_subject.get(cert.issuer, ())):
            encoded = candidate.der
            if encoded == own or encoded in seen or not facts_may_have_issued(candidate, cert):
                continue
            seen.add(encoded)
            found.append(candidate)
            self.examined.setdefault(encoded, candidate)
        # Store roots and verifying signatures first, then certificates valid at the verification time.
        at, store = self.at, self.store
        return sorted(
            found,
            key=lambda c: (not facts_signed_by(cert, c), not store.contains_der(c.der), c.validity_state(at) != 0),
        )

    def score(self, path: list[CertificateFacts]) -> tuple[int, ...]:
        top = path[-1]
        complete = top.self_issued
        trusted = complete and self.store.contains_der(top.der)
        bad_signatures = sum(not facts_signed_by(path[i], path[i + 1]) for i in range(len(path) - 1))
        bad_times = sum(c.validity_state(self.at) != 0 for c in path)
        return (int(trusted), int(complete), -bad_signatures, -bad_times, -len(path))

    def walk(self, path: list[CertificateFacts]) -> bool:
        """Explore from ``path``; True once a perfect chain (trusted, all signatures and times good) is found."""
        self.budget -= 1
        current = path[-1]
        in_path = {c.der for c in path}
        candidates: list[CertificateFacts] = []
        if not current.self_issued and len(path) < MAX_CHAIN_LENGTH:
            candidates = [c for c in self.issuers(current) if c.der not in in_path]
        if not candidates:
            score = self.score(path)
            if self.best is None or score > self.best[0]:
                self.best = (score, list(path))
            return score[:4] == (1, 1, 0, 0)
        for candidate in candidates:
            if self.budget <= 0:
                break
            if self.walk([*path, candidate]):
                return True
        return False


@dataclass(frozen=True)
class _BuiltPath:
    """The part of a chain result that depends on the leaf, the extra certificates, the store, the purpose and,
    through the validity states of ``examined`` alone, on the verification time (not on revocation)."""

    chain: tuple[CertificateFacts, ...]
    statuses: tuple[ChainStatus, ...]
    messages: tuple[tuple[str, ...], ...]
    complete: bool
    root_in_store: bool
    examined: tuple[CertificateFacts, ...]
    states: tuple[int, ...]

    def holds_at(self, at: datetime) -> bool:
        """Whether a search at ``at`` would take every decision this one took (same validity states)."""
        return all(known.validity_state(at) == state for known, state in zip(self.examined, self.states, strict=True))


#: Chains remembered per builder (distinct leaf / extra-certificate / purpose combinations)...
CHAIN_CACHE_SIZE = 1024
#: ...and, for each, the verification-time buckets remembered (one per combination of validity states).
CHAIN_CACHE_BUCKETS = 8


class ChainBuilder:
    """Builds and judges chains against one trust store, with one revocation mode.

    ``fetcher`` is used in online mode only, and only when given: a builder made without one does no network
    I/O and works offline (its ``revocation_mode`` is then :attr:`RevocationMode.OFFLINE` whatever was asked,
    so that results report revocation as not asked for); the caller that wants online checks passes one (e.g.
    :class:`nuseal.trust.online.HttpRevocationFetcher`). ``cache`` defaults to a fresh :class:`RevocationCache`
    owned by this builder (pass one to share it).

    Built paths are remembered (at most :data:`CHAIN_CACHE_SIZE` leaf / extra-certificate / purpose
    combinations, :data:`CHAIN_CACHE_BUCKETS` time buckets each): a later build of the same leaf with the same
    extra certificates reuses the path and its non-revocation statuses when every certificate the first search
    examined is in the same validity state (not yet valid / valid / expired) at the new verification time, which
    is exactly when the search would decide the same. Revocation is checked afresh on every build (its answer
    depends on ``now``, the revocation mode and the shared :class:`RevocationCache`).
    """

    def __init__(
        self,
        trust_store: TrustStore,
        *,
        revocation_mode: RevocationMode = RevocationMode.ONLINE,
        fetcher: RevocationFetcher | None = None,
        cache: RevocationCache | None = None,
    ) -> None:
        self.trust_store = trust_store
        self.revocation_mode = revocation_mode if fetcher is not None else RevocationMode.OFFLINE
        self.revocation = RevocationChecker(fetcher, cache=RevocationCache() if cache is None else cache)
        self._chains: dict[tuple[bytes, tuple[bytes, ...], CertificatePurpose], list[_BuiltPath]] = {}
        self._cache_store = trust_store
        self._cache_lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def cache_info(self) -> tuple[int, int]:
        """``(hits, misses)`` of the built-path cache since this builder was made (a miss is a path search)."""
        return self._hits, self._misses

    def build(
        self,
        leaf: x509.Certificate,
        *,
        extra_certificates: Iterable[x509.Certificate] = (),
        purpose: CertificatePurpose,
        at: datetime,
        now: datetime,
        ignore_not_time_valid: bool = True,
    ) -> ChainResult:
        """Build ``leaf``'s chain as NuGet's ``X509Chain`` would and report every status.

        Args:
            leaf: the signer (or timestamp signer) certificate.
            extra_certificates: the SignedData / timestamp-token certificate bag (NuGet's ``ExtraStore``);
                duplicates and unrelated certificates are fine; at most :data:`MAX_EXTRA_CERTIFICATES` used.
            purpose: the EKU required of the chain (``ApplicationPolicy``).
            at: the verification time (timestamp ``UpperLimit``, or now); timezone-aware.
            ignore_not_time_valid: NuGet's ``IgnoreNotTimeValid``: ``NOT_TIME_VALID`` is still reported but
                listed in ``ignored``.
            now: the current time, for judging revocation data; timezone-aware.

        Never raises for a bad chain; raises :class:`~nuseal.errors.UsageError` for a naive ``at``/``now``.
        """
        if at.tzinfo is None:
            raise UsageError("chain building needs a timezone-aware verification time")
        current = now
        if current.tzinfo is None:
            raise UsageError("chain building needs a timezone-aware 'now'")
        extras = tuple(facts(c) for c in list(extra_certificates)[:MAX_EXTRA_CERTIFICATES])
        built = self._path(facts(leaf), extras, purpose, at)
        chain = [leaf, *(known.certificate for known in built.chain[1:])]
        complete = built.complete
        root_in_store = built.root_in_store
        statuses = list(built.statuses)
        messages = [list(m) for m in built.messages]
        revocations: list[RevocationResult | None] = [None] * len(chain)

        def add(index: int, status: ChainStatus, text: str) -> None:
            line = f"{_DOTNET_NAMES[status]}: {text}"
            if line not in messages[index]:
                messages[index].append(line)
            statuses[index] |= status

        # Revocation: every element but a root (X509RevocationFlag.ExcludeRoot).
        revocation_time: datetime | None = None
        prepared = self.revocation.prepare(chain, now=current, mode=self.revocation_mode)  # hosts in parallel
        for index in range(len(chain) - 1 if complete else len(chain)):
            if index + 1 < len(chain):
                result = prepared.get(index) or self.revocation.check(
                    chain, index, now=current, mode=self.revocation_mode
                )
            else:  # the top of a partial chain has no issuer to ask about
                result = RevocationResult(
                    RevocationStatus.UNKNOWN,
                    "the issuer is unknown",
                    current,
                    offline=self.revocation_mode is RevocationMode.OFFLINE,
                )
            revocations[index] = result
            if result.status is RevocationStatus.REVOKED:
                add(index, ChainStatus.REVOKED, _REVOKED)
                if revocation_time is None:
                    revocation_time = result.revocation_time
            elif result.status is RevocationStatus.UNKNOWN:
                add(index, ChainStatus.REVOCATION_STATUS_UNKNOWN, _NO_CRL)
                if result.offline:
                    add(index, ChainStatus.OFFLINE_REVOCATION, _NO_CRL)

        elements = tuple(
            ChainElement(cert, statuses[i], tuple(messages[i]), revocations[i]) for i, cert in enumerate(chain)
        )
        union = ChainStatus.NO_ERROR
        for status in statuses:
            union |= status
        return ChainResult(
            chain=tuple(chain),
            elements=elements,
            statuses=union,
            ignored=ChainStatus.NOT_TIME_VALID if ignore_not_time_valid else ChainStatus.NO_ERROR,
            revocation_time=revocation_time,
            root_in_store=root_in_store,
            purpose=purpose,
            verification_time=at,
            revocation_mode=self.revocation_mode,
            trust_store_source=self.trust_store.source,
            trust_store_path=str(self.trust_store.path) if self.trust_store.path else None,
        )


    def _path(
        self, leaf: CertificateFacts, extras: tuple[CertificateFacts, ...], purpose: CertificatePurpose, at: datetime
    ) -> _BuiltPath:
        """The chain and its statuses before revocation, from the cache when an earlier build took the same
        decisions: same leaf, extra certificates (in order), store and purpose, and the same validity state at
        ``at`` of every certificate that build examined (the time bucket). Revocation is never cached here."""
        if self._cache_store is not self.trust_store:  # the store was swapped: nothing remembered applies
            self._chains = {}
            self._cache_store = self.trust_store
        key = (leaf.der, tuple(known.der for known in extras), purpose)
        buckets = self._chains.get(key)
        if buckets is not None:
            for built in tuple(buckets):
                if built.holds_at(at):
                    self._hits += 1
                    return built
        self._misses += 1
        built = self._search(leaf, extras, purpose, at)
        with self._cache_lock:  # a verifier may be shared by threads (the feed)
            buckets = self._chains.get(key)
            if buckets is None:
                if len(self._chains) >= CHAIN_CACHE_SIZE:
                    self._chains.pop(next(iter(self._chains)), None)
                buckets = self._chains[key] = []
            if len(buckets) >= CHAIN_CACHE_BUCKETS:
                buckets.pop(0)
            buckets.append(built)
        return built

    def _search(
        self, leaf: CertificateFacts, extras: tuple[CertificateFacts, ...], purpose: CertificatePurpose, at: datetime
    ) -> _BuiltPath:
        search = _Search(self.trust_store, extras, at)
        search.examined[leaf.der] = leaf
        search.walk([leaf])
        assert search.best is not None  # walk always records at least the leaf-only path
        path = search.best[1]
        chain = [known.certificate for known in path]

        complete = path[-1].self_issued
        root_in_store = complete and self.trust_store.contains_der(path[-1].der)
        statuses: list[ChainStatus] = [ChainStatus.NO_ERROR] * len(path)
        messages: list[list[str]] = [[] for _ in path]

        def add(index: int, status: ChainStatus, text: str) -> None:
            line = f"{_DOTNET_NAMES[status]}: {text}"
            if line not in messages[index]:
                messages[index].append(line)
            statuses[index] |= status

        for index, known in enumerate(path):
            cert = known.certificate
            state = known.validity_state(at)
            if state < 0:
                add(index, ChainStatus.NOT_TIME_VALID, _NOT_YET_VALID)
            elif state > 0:
                add(index, ChainStatus.NOT_TIME_VALID, _EXPIRED)
            if index + 1 < len(path) and not facts_signed_by(known, path[index + 1]):
                add(index, ChainStatus.NOT_SIGNATURE_VALID, _BAD_SIGNATURE)
            if index > 0:
                for text in _ca_problems(chain, index):
                    add(index, ChainStatus.INVALID_BASIC_CONSTRAINTS, text)
            if not _extensions_readable(cert):
                add(index, ChainStatus.INVALID_EXTENSION, _INVALID_EXTENSION)
            if any(oid not in _SUPPORTED_CRITICAL_EXTENSIONS for oid in _critical_oids(cert)):
                add(index, ChainStatus.HAS_NOT_SUPPORTED_CRITICAL_EXTENSION, _CRITICAL)

        if not _valid_for_usage(chain, purpose):
            add(0, ChainStatus.NOT_VALID_FOR_USAGE, _NO_POLICY_MATCH)

        top = len(path) - 1
        if not complete:
            add(top, ChainStatus.PARTIAL_CHAIN, _NO_ISSUER)
        elif not root_in_store:
            add(top, ChainStatus.UNTRUSTED_ROOT, _SELF_SIGNED_LEAF if top == 0 else _SELF_SIGNED_IN_CHAIN)
        examined = tuple(search.examined.values())
        return _BuiltPath(
            chain=tuple(path),
            statuses=tuple(statuses),
            messages=tuple(tuple(m) for m in messages),
            complete=complete,
            root_in_store=root_in_store,
            examined=examined,
            states=tuple(known.validity_state(at) for known in examined),
        )


def _ca_problems(chain: Sequence[x509.Certificate], index: int) -> list[str]:
    """Why ``chain[index]`` may not act as the CA of the certificates below it (OpenSSL ``check_chain_extensions``)."""
    cert = chain[index]
    problems: list[str] = []
    constraints = _extension(cert, x509.BasicConstraints)
    usage = _extension(cert, x509.KeyUsage)
    if isinstance(constraints, x509.BasicConstraints):
        is_ca = constraints.ca
    else:
        is_ca = (isinstance(usage, x509.KeyUsage) and usage.key_cert_sign) or (
            cert.version is x509.Version.v1 and is_self_issued(cert)
        )
    if not is_ca:
        problems.append(_INVALID_CA)
    if isinstance(usage, x509.KeyUsage) and not usage.key_cert_sign:
        problems.append(_NO_CERT_SIGN)
    if isinstance(constraints, x509.BasicConstraints) and constraints.path_length is not None:
        below = sum(1 for c in chain[1:index] if not is_self_issued(c))
        if below > constraints.path_length:
            problems.append(_PATH_LENGTH)
    return problems


def _valid_for_usage(chain: Sequence[x509.Certificate], purpose: CertificatePurpose) -> bool:
    """The chain's effective EKU set (intersection over every certificate that has an EKU extension; a
    certificate without one, or with anyExtendedKeyUsage, restricts nothing) contains ``purpose``'s EKU."""
    for cert in chain:
        usage = _extension(cert, x509.ExtendedKeyUsage)
        if not isinstance(usage, x509.ExtendedKeyUsage):
            continue
        oids = {u.dotted_string for u in usage}
        if _ANY_EKU in oids:
            continue
        if purpose.eku not in oids:
            return False
    return True


def untrusted_root_warning(result: ChainResult) -> Issue | None:
    """NuGet's NU3042 warning for ``result``, or ``None`` when it does not apply.

    NuGet (``CertificateBundleX509ChainFactory.GetAdditionalContext``, 6.6+, Linux/macOS) adds it when the
    chain's last element has UntrustedRoot and that certificate is not in the bundle; it accompanies NU3018 /
    NU3028. The wording with a bundle path was checked against NuGet 6.14 (the oracle); the wording without one
    (an empty or in-memory store) is nuseal's.
    """
    last = result.elements[-1]
    if not last.statuses & ChainStatus.UNTRUSTED_ROOT or result.root_in_store:
        return None
    root = last.certificate
    pem = root.public_bytes(Encoding.PEM).decode("ascii").rstrip("\n")
    where = f" at {result.trust_store_path}" if result.trust_store_path else ""
    message = (
        f"The following X.509 root certificate is untrusted because it is not present in the certificate bundle"
        f"{where}.  For more information, see documentation for NU3042.\r\n"
        f"    Subject:  {dotnet_name(root.subject)}\r\n"
        f"    Fingerprint (SHA-256):  {fingerprint(root, HashAlgorithm.SHA256)}\r\n"
        f"    Certificate (PEM):\r\n{pem}"
    )
    return Issue(NuCode.NU3042, Level.WARNING, message)
