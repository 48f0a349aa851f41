"""A reader's next email, rendered for the dashboard and kept a few minutes.

The preview page shows the subject and text, and frames the HTML from a second URL:
the cache spares planning the reader twice for one look.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from newsletter.delivery import dispatch
from newsletter.runtime import Runtime

TTL_SECONDS = 300.0
MAX_ENTRIES = 20


@dataclass(frozen=True)
class RenderedPreview:
    edition_key: str
    recipient: str
    status: str  # the delivery's state: queued, sent, …
    subject: str
    html: str
    text: str
    titles: tuple[tuple[str, str], ...]  # (title, reason) of each paper, in order


class PreviewCache:
    def __init__(self) -> None:
        self._entries: dict[int, tuple[float, RenderedPreview]] = {}
        self._lock = threading.Lock()

    def get(self, context: Runtime, subscriber_id: int, email: str) -> RenderedPreview:
        """The cached preview when fresh, else a new one (NothingToSend when none)."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(subscriber_id)
            if entry is not None and now - entry[0] < TTL_SECONDS:
                return entry[1]
        rendered = render_preview(context, email)
        with self._lock:
            self._entries[subscriber_id] = (now, rendered)
            if len(self._entries) > MAX_ENTRIES:
                del self._entries[min(self._entries, key=lambda k: self._entries[k][0])]
        return rendered

    def forget(self, subscriber_id: int) -> None:
        with self._lock:
            self._entries.pop(subscriber_id, None)


def render_preview(context: Runtime, email: str) -> RenderedPreview:
    found = dispatch.preview(context, email)
    parsed = message_from_bytes(found.message.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return RenderedPreview(
        edition_key=found.edition_key,
        recipient=found.message.recipient,
        status=found.status,
        subject=str(parsed["Subject"]),
        html=_part(parsed, "html"),
        text=_part(parsed, "plain"),
        titles=tuple((item.paper.title, item.reason) for item in found.items),
    )


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return "" if body is None else str(body.get_content())  # type: ignore[attr-defined]
