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
    qp_lines,
    random_message_id,
)
from newsletter.mail.verp import ReturnAddresses
from newsletter.render import NoticeView, RenderedEmail, Renderer
from newsletter.render.content import DigestItem, DigestView, Recipient, SiteView
from newsletter.render.stencil import EncodedStencil, Markers, Stencil
from newsletter.tokens import make_address_token, make_cards_token, make_token

if TYPE_CHECKING:
    from newsletter.mail.dkim import DkimSigner

NoticeKind = Literal["confirm", "welcome", "goodbye"]
# What a digest shows alike to every reader who chose alike: edition, week, papers
# with their reasons, topics.
Shape = tuple[str, date, date, tuple[DigestItem, ...], tuple[str, ...]]
# What differs: the address and four signed tokens (see Composer._reader_values).
Values = tuple[str, ...]
Encoded = tuple[str, bytes, bytes]  # subject, quoted-printable text, HTML octets
# Stencils kept per composer, each a digest's text and HTML (about 40 KB, so 40 MB at
# most). Deliveries are claimed in id order, which cycles through the readers' choices:
# fewer stencils than distinct choices would be evicted before their next use.
STENCILS = 1024
SEEN = 65_536  # digests remembered as seen once (their hashes only)
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
        self._markers = Markers(5)
        self._stencils: dict[Shape, EncodedStencil] = {}  # in order of use, the latest last
        self._seen: set[int] = set()  # hashes of digests rendered once, in full
        self._stencil_checked = False
        self._stencils_agree = stencils > 0  # 0: render every digest in full
        self._stencil_limit = stencils
        dkim = settings.dkim
        self.signer: DkimSigner | None = None
        if dkim:  # dkimpy is loaded only by a site that signs
            from newsletter.mail.dkim import DkimSigner

            self.signer = DkimSigner.load(dkim.domain, dkim.selector, dkim.private_key_path)

    def recipient(self, subscriber_id: int, email: str) -> Recipient:
        return Recipient(
            email=email,
            unsubscribe_url=self._link("unsubscribe", subscriber_id),
            preferences_url=self._link("preferences", subscriber_id),
        )

    def _link(self, purpose: str, subscriber_id: int) -> str:
        token = make_token(self.secret_key, purpose, subscriber_id)
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

    def _view(self, shape: Shape, values: Values) -> DigestView:
        edition_key, week_start, week_end, items, topics = shape
        email, unsubscribe, preferences, digest, cards = values
        base = self.site.base_url
        feedback = f"{base}/feedback/{cards}"
        return DigestView(
            site=self.site,
            recipient=Recipient(
                email=email,
                unsubscribe_url=f"{base}/unsubscribe/{unsubscribe}",
                preferences_url=f"{base}/preferences/{preferences}",
            ),
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
            archive_url=f"{base}/digest/{edition_key}/{digest}",
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
        recipient = Recipient(
            email=email,
            unsubscribe_url=f"{self.site.base_url}/unsubscribe/{values[1]}",
            preferences_url=f"{self.site.base_url}/preferences/{values[2]}",
        )
        message_id = make_message_id(edition_key, subscriber_id, self.domain)
        sender = None
        if delivery_id is not None:
            sender = self.returns.bounce_for(
                make_address_token(self.secret_key, "bounce", delivery_id)
            )
        made = self._render_digest(shape, values)
        parts: tuple[str, str | bytes, str | bytes]
        if isinstance(made, RenderedEmail):
            parts = (made.subject, made.text, made.html)
        else:
            parts = (made[0], QuotedPrintable(made[1]), made[2])
        return self._finish(parts, subscriber_id, recipient, message_id, True, now, sender)

    def _render_digest(self, shape: Shape, values: Values) -> RenderedEmail | Encoded:
        """From the stencil of readers who chose alike (see render.stencil), made on
        first use; a view that cannot be a key (a list inside) is rendered in full."""
        if not self._stencils_agree:
            return self.renderer.digest(self._view(shape, values))
        try:
            stencil = self._stencils.pop(shape, None)
            key = hash(shape)
        except TypeError:
            return self.renderer.digest(self._view(shape, values))
        if stencil is None and key not in self._seen:
            # A digest nobody else has had so far: a stencil would cost more than it
            # saves until a second reader gets the same, so render this one in full.
            if len(self._seen) >= SEEN:
                self._seen.clear()
            self._seen.add(key)
            return self.renderer.digest(self._view(shape, values))
        if stencil is None:
            if not self._stencil_checked:
                # Once per composer: a template that transforms the address or a link
                # (a filter, a test on its value) would not print what a render prints.
                self._stencil_checked = True
                if not self._stencil_agrees(shape, values):
                    self._stencils_agree = False
                    return self.renderer.digest(self._view(shape, values))
            marked = self.renderer.digest(self._view(shape, self._markers.slots))
            stencil = Stencil.cut(self._markers, marked).encoded(self._markers, crlf_utf8, qp_lines)
            if len(self._stencils) >= self._stencil_limit:
                del self._stencils[next(iter(self._stencils))]  # the least recently used
        self._stencils[shape] = stencil
        return stencil.fill(values)

    def _stencil_agrees(self, shape: Shape, values: Values) -> bool:
        marked = self.renderer.digest(self._view(shape, self._markers.slots))
        filled = Stencil.cut(self._markers, marked).fill(values)
        return filled == self.renderer.digest(self._view(shape, values))

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
        rendered: tuple[str, str | bytes, str | bytes],  # subject, text, HTML
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
