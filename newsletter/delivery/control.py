"""An admin pausing or resuming an edition by hand (the dashboard's buttons).

Senders look at the edition's status before each batch (see drain), so a pause takes
hold within one batch; resuming lets the scheduler's workers (or send-now) go on.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput, NotFound
from newsletter.runtime import Runtime
from newsletter.store import db, editions
from newsletter.store.editions import EditionInfo
from newsletter.store.statuses import EditionStatus


def pause(context: Runtime, key: str, reason: str) -> EditionInfo:
    """Pause a sending edition; an edition paused or done already is refused."""
    with db.transaction(context.sessions, immediate=True) as session:
        edition = _edition(session, key)
        if edition.status != EditionStatus.SENDING:
            raise InvalidInput(f"edition {key} is {edition.status}, not sending: nothing to pause")
        editions.pause_edition(session, edition.id, reason)
        paused = editions.get_edition_by_id(session, edition.id)
    assert paused is not None
    return paused


def resume(context: Runtime, key: str) -> EditionInfo:
    """Resume a paused edition (only a paused one: a done edition has nothing to send)."""
    with db.transaction(context.sessions, immediate=True) as session:
        edition = _edition(session, key)
        if edition.status != EditionStatus.PAUSED:
            raise InvalidInput(f"edition {key} is {edition.status}, not paused: nothing to resume")
        editions.resume_edition(session, edition.id)
        resumed = editions.get_edition_by_id(session, edition.id)
    assert resumed is not None
    return resumed


def _edition(session: Session, key: str) -> EditionInfo:
    edition = editions.get_edition(session, key)
    if edition is None:
        raise NotFound(f"no edition {key}")
    return edition
