"""Signed, purpose-bound tokens for the links in emails (confirm, unsubscribe, preferences).

Each purpose signs with its own salt, so a token made for one purpose never verifies
for another: an unsubscribe link cannot confirm an address, and vice versa.

Tokens are itsdangerous `URLSafeTimedSerializer` tokens (`payload.timestamp.signature`)
and are read with it. Making them is on the path of every message (two per digest), so
`make_token` writes the same bytes itself from the key itsdangerous derives: the HMAC
keyed once per (secret, purpose) and copied, the timestamp encoded once per second.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal, get_args

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

from newsletter.errors import ExpiredToken, InvalidToken

# "digest": the email's "view in browser" link to that reader's own digests (read only).
# "feedback": a digest's "More / Fewer like this" links, bound to a reader and its papers.
Purpose = Literal["confirm", "unsubscribe", "preferences", "digest", "feedback"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
# zlib output is never shorter than 8 bytes, so itsdangerous leaves JSON of up to 9
# characters uncompressed: every id below a billion is plain base64 of its digits.
_PLAIN_PAYLOAD = 9


@lru_cache(maxsize=32)
def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    # Building a serializer derives keys; caching keeps per-message token cost low.
    if purpose not in PURPOSES:
        raise InvalidToken(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret_key, salt=f"newsletter.{purpose}")


@lru_cache(maxsize=32)
def _mac(secret_key: str, purpose: str) -> hmac.HMAC:
    """The HMAC itsdangerous signs with, keyed and ready to copy."""
    signer = _serializer(secret_key, purpose).make_signer()
    return hmac.new(signer.derive_key(), digestmod=signer.digest_method)


@lru_cache(maxsize=4)
def _timestamp(seconds: int) -> bytes:
    return base64_encode(int_to_bytes(seconds))


def make_token(secret_key: str, purpose: str, subscriber_id: int) -> str:
    value = int(subscriber_id)
    payload = str(value).encode("ascii")
    if len(payload) > _PLAIN_PAYLOAD:
        token: str = _serializer(secret_key, purpose).dumps(value)
        return token
    mac = _mac(secret_key, purpose).copy()
    signed = b"%s.%s" % (base64_encode(payload), _timestamp(int(time.time())))
    mac.update(signed)
    return (signed + b"." + base64_encode(mac.digest())).decode("ascii")


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
