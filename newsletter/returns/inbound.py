"""One message received by `newsletter inbound`: what it is, and what it does.

The recipient address says what to expect: `bounces+<token>@` a bounce (or a
feedback loop's complaint) about the delivery signed into the token,
`unsubscribe+<token>@` a reader leaving, the plain bounce address a bounce or an
abuse report recognised by the original message it quotes. Anything else, and
anything that cannot be read or names no reader of ours, is stored for the admin
(inbound_messages), never dropped. Database errors are left to the caller: the SMTP
server answers 451 and the sending MTA tries again later.
"""

from __future__ import annotations

import email
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from newsletter.mail.verp import UNSUBSCRIBE_LOCAL, ReturnAddresses, split_address
from newsletter.returns import record
from newsletter.returns.arf import complaint_events, is_arf
from newsletter.returns.dsn import bounce_events
from newsletter.returns.events import ReturnEvent
from newsletter.returns.original import header_text, report_key, signed_id
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store import returns as store
from newsletter.store import subscribers as subscriber_store
from newsletter.store.models import utcnow
from newsletter.store.statuses import MailEventKind, MailEventSource

_LABELS = {
    MailEventKind.HARD_BOUNCE: "hard bounce",
    MailEventKind.SOFT_BOUNCE: "soft bounce",
    MailEventKind.COMPLAINT: "complaint",
    MailEventKind.UNSUBSCRIBE: "unsubscribe",
}


@dataclass(frozen=True)
class Handled:
    """What became of one message, in one line for the log."""

    what: str  # "hard bounce", "soft bounce", "complaint", "unsubscribe", "stored", "seen"
    readers: tuple[str, ...] = ()
    note: str = ""

    def line(self) -> str:
        who = ", ".join(self.readers) or "no reader"
        note = self.note if len(self.note) <= 160 else self.note[:157] + "..."
        if self.what == "stored":
            return f"stored for the admin: {note}"
        return f"{self.what}: {who} ({note})" if note else f"{self.what}: {who}"


@dataclass(frozen=True)
class _Route:
    kind: str  # "bounce", "unsubscribe", "plain", "other"
    token: str | None = None


class Inbound:
    """Reads and applies received messages for one store (one per server)."""

    def __init__(self, context: Runtime) -> None:
        self.context = context
        self.returns = ReturnAddresses.of(context.settings.bounce_address)
        self.secret_key = context.secret_key
        self.max_bytes = context.settings.bounces.max_message_bytes

    def accepts(self, recipient: str) -> bool:
        """Mail for any address of the bounce domain is taken (and, if unknown,
        stored); other domains are no business of ours."""
        return self.returns.is_ours(recipient)

    def route(self, recipients: Sequence[str]) -> _Route:
        """The most telling of the recipients: a signed address, then the plain one."""
        routes = []
        for recipient in recipients:
            tagged = split_address(recipient)
            if tagged is None or tagged.domain != self.returns.domain:
                continue
            if tagged.local == self.returns.bounce_local:
                routes.append(_Route("bounce", tagged.tag) if tagged.tag else _Route("plain"))
            elif tagged.local == UNSUBSCRIBE_LOCAL and tagged.tag:
                routes.append(_Route("unsubscribe", tagged.tag))
        order = ("bounce", "unsubscribe", "plain")
        return min(routes, key=lambda r: order.index(r.kind), default=_Route("other"))

    def receive(
        self, mail_from: str, recipients: Sequence[str], raw: bytes, now: datetime | None = None
    ) -> Handled:
        now = now or utcnow()
        fallback = "sha256:" + hashlib.sha256(raw).hexdigest()[:32]
        report: Message | None = None
        try:
            report = email.message_from_bytes(raw)
            events, reason = self._read(report, self.route(recipients), fallback)
        except Exception as exc:  # unreadable input is stored, never a crash
            events, reason = [], f"could not be read ({type(exc).__name__})"
        if not events:
            return self._store(mail_from, recipients, report, raw, reason, now)
        applied = record.apply(self.context, events, now)
        if all(a.target is None for a in applied):
            return self._store(mail_from, recipients, report, raw, "names no reader of ours", now)
        return self._summary(applied)

    def _read(self, report: Message, route: _Route, fallback: str) -> tuple[list[ReturnEvent], str]:
        """The events a message makes, or none and the reason it is stored."""
        defects = " (malformed MIME)" if report.defects else ""
        if route.kind == "other":
            return [], "not addressed to the bounce or unsubscribe address"
        if route.kind == "unsubscribe":
            subscriber_id = signed_id(self.secret_key, "unsubscribe-mail", route.token or "")
            if subscriber_id is None:
                return [], "unsubscribe address with a bad signature: nobody was unsubscribed"
            event = ReturnEvent(
                kind=MailEventKind.UNSUBSCRIBE,
                source=MailEventSource.INBOUND,
                subscriber_id=subscriber_id,
                detail="mail to the List-Unsubscribe address",
                key=report_key(report, f"unsubscribe {subscriber_id}", fallback),
            )
            return [event], ""
        delivery_id = None
        if route.kind == "bounce":
            delivery_id = signed_id(self.secret_key, "bounce", route.token or "")
            if delivery_id is None:
                return [], "bounce address with a bad signature"
        events, reason = self._report_events(report, delivery_id, fallback, defects)
        if route.kind == "plain" and events:
            # Anyone can mail the plain address, and Message-IDs and addresses can be
            # guessed: only a token we signed, quoted in the original, names a reader.
            signed = [e for e in events if (e.delivery_id or e.subscriber_id) is not None]
            if not signed:
                return [], "names its reader without a signed token: not applied"
            events = signed
        return events, reason

    def _report_events(
        self, report: Message, delivery_id: int | None, fallback: str, defects: str
    ) -> tuple[list[ReturnEvent], str]:
        arf = is_arf(report)
        read = complaint_events if arf else bounce_events
        events = read(
            report,
            delivery_id=delivery_id,
            returns=self.returns,
            secret_key=self.secret_key,
            fallback_key=fallback,
        )
        missing = "abuse report naming no complaint" if arf else "names no failed delivery"
        return events, "" if events else f"{missing}{defects}"

    def _store(
        self,
        mail_from: str,
        recipients: Sequence[str],
        report: Message | None,
        raw: bytes,
        reason: str,
        now: datetime,
    ) -> Handled:
        subject = ""
        if report is not None:
            try:
                subject = header_text(report, "Subject")
            except Exception:  # an undecodable subject is no reason to lose the message
                subject = ""
        with db.transaction(self.context.sessions) as session:
            number = store.add_inbound(
                session,
                mail_from=mail_from,
                rcpt_to=list(recipients),
                subject=subject,
                reason=reason,
                raw=raw,
                at=now,
            )
        return Handled("stored", (), f"#{number}, to {', '.join(recipients)}: {reason}")

    def _summary(self, applied: Sequence[record.Applied]) -> Handled:
        found = [a for a in applied if a.target is not None]
        fresh = [a for a in found if a.recorded]
        ids = sorted({a.target.subscriber_id for a in found if a.target is not None})
        with db.transaction(self.context.sessions) as session:
            readers = tuple(
                s.email
                for s in (subscriber_store.get_subscriber_by_id(session, i) for i in ids)
                if s is not None
            )
        if not fresh:
            return Handled("seen", readers, "already recorded")
        first = fresh[0]
        notes = [first.event.detail]
        if any(a.bounced for a in fresh):
            notes.append("now bounced")
        if any(a.unsubscribed for a in fresh):
            notes.append("unsubscribed")
        return Handled(_LABELS[MailEventKind(first.event.kind)], readers, "; ".join(notes))
