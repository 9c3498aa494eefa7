"""The feed's audit log: one row per security-relevant change, with its evidence as JSON.

Actions written: ``2fa.enabled``, ``2fa.disabled``, ``2fa.locked`` (too many wrong TOTP codes),
``certificate.registered``, ``certificate.removed``, ``package.signature-accepted``, ``package.repository-signed``,
``certificate.status-changed``, ``package.revoked`` (with the revocation time, the responder that said so and the
timestamp it beat).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.feed.models import AuditEntry

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


def read_audit(session: Session, *, target: str | None = None, limit: int = MAX_AUDIT_ROWS) -> list[AuditRecord]:
    """Audit rows, oldest first; only those about ``target`` when given."""
    query = select(AuditEntry).order_by(AuditEntry.pk)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    rows = session.scalars(query.limit(min(limit, MAX_AUDIT_ROWS))).all()
    return [
        AuditRecord(
            r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC), r.actor, r.action, r.target, json.loads(r.details)
        )
        for r in rows
    ]
