"""Compose finished messages: a subscriber's digest and the one-off notices.

Builds the views (with signed links), renders, encodes, DKIM-signs when configured.
No database: the caller passes what the store holds. One Composer per process
reuses compiled templates, the encoded sender headers and the DKIM key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

from newsletter.config import Settings
from newsletter.mail.message import (
    Envelope,
    OutgoingMessage,
    QuotedPrintable,
    build_message,
    crlf_utf8,
    domain_of,
    make_message_id,
    qp,
    random_message_id,
)
from newsletter.mail.verp import ReturnAddresses
from newsletter.render import NoticeView, RenderedEmail, Renderer
from newsletter.render.content import DigestItem, DigestView, Recipient, SiteView
from newsletter.render.stencil import Stencils
from newsletter.tokens import make_address_token, make_cards_token, make_token

if TYPE_CHECKING:
    from newsletter.mail.dkim import DkimSigner

NoticeKind = Literal["confirm", "welcome", "goodbye"]
# What a digest shows alike to every reader who chose alike: edition, week, papers
# with their reasons, topics.
Shape = tuple[str, date, date, tuple[DigestItem, ...], tuple[str, ...]]
# What differs: the address and four signed tokens (see Composer._reader_values).
Values = tuple[str, ...]
Body = tuple[str, str | bytes, str | bytes]  # subject, text, HTML (see build_message)
# Stencils kept per composer, each a digest's text and HTML (about 40 KB, so 40 MB at
# most). Deliveries are claimed in id order, which cycles through the readers' choices:
# fewer stencils than distinct choices would be evicted before their next use.
STENCILS = 1024
# A reader who has gone should not be offered a one-click unsubscribe header again.
_NO_LIST_UNSUBSCRIBE = frozenset({"goodbye"})


class Composer:
    def __init__(
        self,
        settings: Settings,
        secret_key: str,
        renderer: Renderer | None = None,
        stencils: int = STENCILS,
    ) -> None:
        self.settings = settings
        self.secret_key = secret_key
        self.renderer = renderer or Renderer()
        self.renderer.prepare()
        site = settings.site
        self.site = SiteView(
            name=site.name,
            tagline=site.tagline,
            base_url=site.base_url,
            postal_address=site.postal_address,
        )
        sender = settings.sender
        self.returns = ReturnAddresses.of(settings.bounce_address)
        # A bounces.address too long for a tagged local part fails here, once, not
        # for every reader.
        self.returns.bounce_for(make_address_token(secret_key, "bounce", 10**18 - 1))
        self.envelope = Envelope.make(
            sender.from_name,
            sender.from_address,
            site.name,
            sender.reply_to,
            bounce_address=self.returns.bounce,
        )
        self.domain = domain_of(sender.from_address)
        # Readers who chose alike get one digest, filled in for each (render.stencil).
        self.stencils = Stencils(5, stencils, crlf_utf8, qp)
        dkim = settings.dkim
        self.signer: DkimSigner | None = None
        if dkim:  # dkimpy is loaded only by a site that signs
            from newsletter.mail.dkim import DkimSigner

            self.signer = DkimSigner.load(dkim.domain, dkim.selector, dkim.private_key_path)

    def recipient(self, subscriber_id: int, email: str) -> Recipient:
        unsubscribe = make_token(self.secret_key, "unsubscribe", subscriber_id)
        preferences = make_token(self.secret_key, "preferences", subscriber_id)
        return self._recipient((email, unsubscribe, preferences))

    def _link(self, purpose: str, subscriber_id: int) -> str:
        return self._url(purpose, make_token(self.secret_key, purpose, subscriber_id))

    def _url(self, purpose: str, token: str) -> str:
        return f"{self.site.base_url}/{purpose}/{token}"

    def _reader_values(self, subscriber_id: int, email: str, shape: Shape) -> Values:
        """What differs from one reader's digest to another's: the address, the
        unsubscribe, preferences and "view in browser" tokens, and the one token of the
        "More / Fewer like this" links (it signs the reader and the digest's papers)."""
        items = shape[3]
        # A quiet week's digest has no cards, so no feedback links: a stand-in, never
        # printed (a stencil's holes are never filled with nothing; see render.stencil).
        cards = (
            make_cards_token(self.secret_key, subscriber_id, [i.paper.id for i in items])
            if items
            else "none"
        )
        return (
            email,
            make_token(self.secret_key, "unsubscribe", subscriber_id),
            make_token(self.secret_key, "preferences", subscriber_id),
            make_token(self.secret_key, "digest", subscriber_id),
            cards,
        )

    def _recipient(self, values: Values) -> Recipient:
        """The address and its unsubscribe and preferences links, from the first three
        of a reader's values."""
        email, unsubscribe, preferences = values[:3]
        return Recipient(
            email=email,
            unsubscribe_url=self._url("unsubscribe", unsubscribe),
            preferences_url=self._url("preferences", preferences),
        )

    def _view(self, shape: Shape, values: Values) -> DigestView:
        edition_key, week_start, week_end, items, topics = shape
        digest, cards = values[3], values[4]
        feedback = self._url("feedback", cards)
        return DigestView(
            site=self.site,
            recipient=self._recipient(values),
            edition_key=edition_key,
            week_start=week_start,
            week_end=week_end,
            items=tuple(
                replace(
                    item,
                    more_url=f"{feedback}/{item.paper.id}/more",
                    fewer_url=f"{feedback}/{item.paper.id}/fewer",
                )
                for item in items
            ),
            # 'View in browser': this reader's own digest, behind a read-only token.
            archive_url=self._url("digest", f"{edition_key}/{digest}"),
            topics=topics,
        )

    def digest_view(
        self,
        *,
        subscriber_id: int,
        email: str,
        edition_key: str,
        week_start: date,
        week_end: date,
        items: Sequence[DigestItem],
        topics: Sequence[str] = (),
    ) -> DigestView:
        shape = (edition_key, week_start, week_end, tuple(items), tuple(topics))
        return self._view(shape, self._reader_values(subscriber_id, email, shape))

    def digest(
        self,
        *,
        subscriber_id: int,
        email: str,
        edition_key: str,
        week_start: date,
        week_end: date,
        items: Sequence[DigestItem],
        topics: Sequence[str] = (),
        now: datetime | None = None,
        delivery_id: int | None = None,
    ) -> OutgoingMessage:
        """The digest; with `delivery_id` its envelope sender is the VERP address that
        names that delivery (a preview has none: the plain bounce address)."""
        shape = (edition_key, week_start, week_end, tuple(items), tuple(topics))
        values = self._reader_values(subscriber_id, email, shape)
        message_id = make_message_id(edition_key, subscriber_id, self.domain)
        sender = None
        if delivery_id is not None:
            sender = self.returns.bounce_for(
                make_address_token(self.secret_key, "bounce", delivery_id)
            )
        made = self.stencils.render(
            shape, values, lambda v: self.renderer.digest(self._view(shape, v))
        )
        body: Body
        if isinstance(made, RenderedEmail):
            body = (made.subject, made.text, made.html)
        else:  # a stencil's: its text is quoted-printable already
            body = (made[0], QuotedPrintable(made[1]), made[2])
        recipient = self._recipient(values)
        return self._finish(body, subscriber_id, recipient, message_id, True, now, sender)

    def notice_view(
        self,
        kind: NoticeKind,
        *,
        subscriber_id: int,
        email: str,
        topics: Sequence[str] = (),
        interests: Sequence[str] = (),
        delivery: str = "",
    ) -> NoticeView:
        action = ""
        if kind == "confirm":
            action = self._link("confirm", subscriber_id)
        return NoticeView(
            site=self.site,
            recipient=self.recipient(subscriber_id, email),
            action_url=action,
            topics=tuple(topics),
            interests=tuple(interests),
            delivery=delivery,
        )

    def notice(
        self,
        kind: NoticeKind,
        *,
        subscriber_id: int,
        email: str,
        topics: Sequence[str] = (),
        interests: Sequence[str] = (),
        delivery: str = "",
        now: datetime | None = None,
    ) -> OutgoingMessage:
        view = self.notice_view(
            kind,
            subscriber_id=subscriber_id,
            email=email,
            topics=topics,
            interests=interests,
            delivery=delivery,
        )
        rendered = self.renderer.notice(kind, view)
        message_id = random_message_id(kind, self.domain)
        return self._finish(
            (rendered.subject, rendered.text, rendered.html),
            subscriber_id,
            view.recipient,
            message_id,
            kind not in _NO_LIST_UNSUBSCRIBE,
            now,
        )

    def _finish(
        self,
        rendered: Body,
        subscriber_id: int,
        recipient: Recipient,
        message_id: str,
        list_unsubscribe: bool,
        now: datetime | None,
        sender: str | None = None,
    ) -> OutgoingMessage:
        mailto = None
        if list_unsubscribe:
            # A per-reader signed address: mail to it unsubscribes that reader and
            # nobody else, whoever sends it.
            token = make_address_token(self.secret_key, "unsubscribe-mail", subscriber_id)
            mailto = self.returns.unsubscribe_for(token)
        message = build_message(
            self.envelope,
            to=recipient.email,
            subject=rendered[0],
            text=rendered[1],
            html=rendered[2],
            message_id=message_id,
            unsubscribe_url=recipient.unsubscribe_url if list_unsubscribe else None,
            unsubscribe_mailto=mailto,
            sender=sender,
            date=now,
        )
        return self.signer.sign(message) if self.signer else message
