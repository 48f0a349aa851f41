"""Named, expiring leases: leader election that works on SQLite and PostgreSQL alike.

Every change is one conditional statement whose WHERE clause states who may make it,
so two processes can never both hold a lease: PostgreSQL re-checks the condition on
the row after a concurrent writer commits, SQLite has one writer at a time, and the
first holder is created by INSERT … ON CONFLICT DO NOTHING (only one insert wins).
Times come from the caller's clock; machines sharing a lease need synchronised clocks
(NTP), which a lease of tens of seconds tolerates easily.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from newsletter.store.bulk import insert_or_ignore
from newsletter.store.models import Lease


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    owner: str
    expires_at: datetime


def acquire(session: Session, name: str, owner: str, now: datetime, seconds: float) -> bool:
    """Take or extend the lease; True when `owner` holds it until now + seconds.

    Succeeds when nobody holds it, when the holder's lease has expired (it died or
    hung), or when `owner` already holds it (then this is a renewal).
    """
    expires_at = now + timedelta(seconds=seconds)
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.owner == owner, Lease.expires_at <= now))
        .values(owner=owner, expires_at=expires_at)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT through SQLAlchemy.
    created = session.execute(
        insert_or_ignore(session, Lease)
        .values(name=name, owner=owner, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Lease.name)
    )
    return created.first() is not None


def renew(session: Session, name: str, owner: str, now: datetime, seconds: float) -> bool:
    """Extend a lease `owner` still holds; False when someone else has taken it over."""
    result = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.owner == owner)
        .values(expires_at=now + timedelta(seconds=seconds))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, name: str, owner: str) -> bool:
    """Give the lease up at once (a clean shutdown), so a standby need not wait it out."""
    result = session.execute(delete(Lease).where(Lease.name == name, Lease.owner == owner))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def holder(session: Session, name: str, now: datetime) -> LeaseInfo | None:
    """Who holds the lease now; None when it is free or expired."""
    row = session.scalar(select(Lease).where(Lease.name == name, Lease.expires_at > now))
    return None if row is None else LeaseInfo(row.name, row.owner, row.expires_at)
