"""Email address validation and normalization (pure; no DNS lookups)."""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import HeaderInjection, InvalidInput
from newsletter.mail.message import ascii_address

# A local part of letters, digits, '_', '+', '-' and single inner dots: what nearly every
# address is, and what email-validator keeps as it is. Such an address only needs its
# domain checked, and a list of ten thousand readers has a handful of domains: each is
# checked once (importing a list spent most of its time in the validator otherwise).
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*\Z")
_PLAIN_MAX = 200  # well under every length limit of the validator


@lru_cache(maxsize=4096)
def _plain_domain(domain: str) -> str | None:
    """The domain as email-validator normalizes it, or None if it refuses it (the full
    check of the whole address then says why)."""
    try:
        return validate_email(f"postmaster@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalize_email(raw: str) -> str:
    """The one spelling under which an address is stored.

    email-validator lower-cases and IDNA-normalizes the domain; the local part is
    lower-cased too, because readers type their address in any case and expect to
    be one subscriber (nearly every mail provider treats it case-insensitively).
    """
    candidate = raw.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in candidate):
        raise InvalidInput(f"invalid email address {raw!r}: contains control characters")
    local, _, domain = candidate.rpartition("@")
    if len(candidate) <= _PLAIN_MAX and len(local) <= 64 and _PLAIN_LOCAL.match(local):
        known = _plain_domain(domain)
        if known is not None:
            return f"{local.lower()}@{known.lower()}"
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"invalid email address {raw!r}: {exc}") from None
    local, _, domain = result.normalized.rpartition("@")
    return f"{local.lower()}@{domain.lower()}"


def mailable_email(raw: str) -> str:
    """`normalize_email`, refusing addresses this newsletter can never deliver to.

    The SMTP client speaks plain SMTP (no SMTPUTF8), so the part before the @ must be
    ASCII; an internationalized domain is fine (it is sent in its IDNA form).
    """
    address = normalize_email(raw)
    local = address.rpartition("@")[0]
    if not local.isascii():
        raise InvalidInput(
            f"cannot send mail to {address}: the part before the @ has non-ASCII characters,"
            " which our mail server cannot deliver to; please use another address"
        )
    try:
        ascii_address(address)
    except HeaderInjection:
        raise InvalidInput(
            f"cannot send mail to {address}: our mail server cannot deliver to an address"
            " written this way; please use another address"
        ) from None
    return address
