"""The feed's audit log: one row per security-relevant change, with its evidence as JSON.

Actions written: ``2fa.enabled``, ``2fa.disabled``, ``2fa.locked`` (too many wrong TOTP codes),
``certificate.registered``, ``certificate.removed``, ``package.signature-accepted``, ``package.repository-signed``,
``certificate.status-changed``, ``package.revoked`` (with the revocation time, the responder that said so and the
timestamp it beat). Ingestion and quarantine (issue 16, :mod:`nuseal.feed.mirror`): ``quarantine.held``,
``ingest.refused`` (with the stages' reasons), ``quarantine.released``, ``quarantine.rejected``, ``signer.accepted``,
``cooldown.overridden``, ``prefix.reserved``, ``prefix.unreserved``, ``admin.granted``, ``admin.revoked``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.feed.store.models import AuditEntry

__all__ = ["FEED_ACTOR", "MAX_AUDIT_ROWS", "AuditRecord", "read_audit", "record"]

#: The actor of the feed's own tasks (revalidation, repository signing).
FEED_ACTOR = "feed"
#: Most rows :func:`read_audit` returns.
MAX_AUDIT_ROWS = 10_000
_TARGET_COLUMN = 512


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def record(session: Session, *, at: datetime, actor: str, action: str, target: str, **evidence: Any) -> None:
    """Add one audit row in the caller's transaction (so it commits with the change it describes)."""
    session.add(
        AuditEntry(
            at=at,
            actor=actor[:64],
            action=action[:64],
            target=target[:_TARGET_COLUMN],
            details=json.dumps(_jsonable(evidence), sort_keys=True),
        )
    )


def read_audit(
    session: Session,
    *,
    target: str | None = None,
    actions: Sequence[str] = (),
    limit: int = MAX_AUDIT_ROWS,
    newest: bool = False,
) -> list[AuditRecord]:
    """Audit rows, oldest first: only those about ``target`` and with one of ``actions`` when given; at most
    ``limit`` (capped at :data:`MAX_AUDIT_ROWS`), the oldest ones, or the newest ones with ``newest``."""
    query = select(AuditEntry)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    if actions:
        query = query.where(AuditEntry.action.in_(list(actions)))
    query = query.order_by(AuditEntry.pk.desc() if newest else AuditEntry.pk)
    rows = list(session.scalars(query.limit(max(0, min(limit, MAX_AUDIT_ROWS)))).all())
    if newest:
        rows.reverse()
    return [
        AuditRecord(
            r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC), r.actor, r.action, r.target, json.loads(r.details)
        )
        for r in rows
    ]
