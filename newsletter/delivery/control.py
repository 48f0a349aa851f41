"""An admin pausing or resuming an edition by hand (the dashboard's buttons).

Senders look at the edition's status before each batch (see drain), so a pause takes
hold within one batch; resuming lets the scheduler's workers (or send-now) go on.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput, NotFound
from newsletter.runtime import Runtime
from newsletter.store import db, editions
from newsletter.store.editions import EditionInfo
from newsletter.store.statuses import EditionStatus


def pause(context: Runtime, key: str, reason: str) -> EditionInfo:
    """Pause a sending edition; an edition paused or done already is refused."""

    def act(session: Session, edition_id: int) -> None:
        editions.pause_edition(session, edition_id, reason)

    return _change(context, key, EditionStatus.SENDING, "pause", act)


def resume(context: Runtime, key: str) -> EditionInfo:
    """Resume a paused edition (only a paused one: a done edition has nothing to send)."""
    return _change(context, key, EditionStatus.PAUSED, "resume", editions.resume_edition)


def _change(
    context: Runtime,
    key: str,
    expected: EditionStatus,
    verb: str,
    act: Callable[[Session, int], object],
) -> EditionInfo:
    """`act` on the edition, which must be `expected`; the edition as it is after."""
    with db.transaction(context.sessions, immediate=True) as session:
        edition = _edition(session, key)
        if edition.status != expected:
            raise InvalidInput(
                f"edition {key} is {edition.status}, not {expected}: nothing to {verb}"
            )
        act(session, edition.id)
        changed = editions.get_edition_by_id(session, edition.id)
    assert changed is not None
    return changed


def _edition(session: Session, key: str) -> EditionInfo:
    edition = editions.get_edition(session, key)
    if edition is None:
        raise NotFound(f"no edition {key}")
    return edition
