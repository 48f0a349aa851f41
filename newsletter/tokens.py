"""Signed, purpose-bound tokens for the links in emails (confirm, unsubscribe, preferences).

Each purpose signs with its own salt, so a token made for one purpose never verifies
for another: an unsubscribe link cannot confirm an address, and vice versa.

Tokens are itsdangerous `URLSafeTimedSerializer` tokens (`payload.timestamp.signature`,
the shape the web routes check before reading one), made and read by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal, get_args

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from newsletter.errors import ExpiredToken, InvalidToken

# "digest": the email's "view in browser" link to that reader's own digests (read only).
# "feedback": a digest's "More / Fewer like this" links, bound to a reader and its papers.
Purpose = Literal["confirm", "unsubscribe", "preferences", "digest", "feedback"]
PURPOSES: tuple[str, ...] = get_args(Purpose)


@lru_cache(maxsize=32)
def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    # One per (key, purpose): two tokens go into every digest, built once is enough.
    if purpose not in PURPOSES:
        raise InvalidToken(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret_key, salt=f"newsletter.{purpose}")


def make_token(secret_key: str, purpose: str, subscriber_id: int) -> str:
    token: str = _serializer(secret_key, purpose).dumps(int(subscriber_id))
    return token


def read_token(secret_key: str, purpose: str, token: str, max_age: int | None = None) -> int:
    """The subscriber id signed into `token` for `purpose`, or InvalidToken/ExpiredToken."""
    try:
        value = _serializer(secret_key, purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ExpiredToken(f"this {purpose} link has expired") from None
    except BadSignature:
        raise InvalidToken(f"this {purpose} link is not valid") from None
    if type(value) is not int:
        raise InvalidToken(f"this {purpose} link is not valid")
    return value


def make_cards_token(secret_key: str, subscriber_id: int, paper_ids: Sequence[int]) -> str:
    """The "More / Fewer like this" links of one digest: one token for the reader and the
    papers it carried (a link names one of them), so a digest signs once, not per card."""
    payload = [int(subscriber_id), [int(p) for p in paper_ids]]
    token: str = _serializer(secret_key, "feedback").dumps(payload)
    return token


def read_cards_token(secret_key: str, token: str) -> tuple[int, frozenset[int]]:
    """(subscriber id, the papers it may mark) of a feedback token, or InvalidToken."""
    try:
        value = _serializer(secret_key, "feedback").loads(token)
    except BadSignature:
        raise InvalidToken("this feedback link is not valid") from None
    match value:
        case [int() as reader, list() as papers] if all(type(p) is int for p in papers):
            return reader, frozenset(papers)
    raise InvalidToken("this feedback link is not valid")
