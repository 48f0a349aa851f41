"""Email address validation and normalization (pure; no DNS lookups)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import HeaderInjection, InvalidInput
from newsletter.mail.message import ascii_address


def normalize_email(raw: str) -> str:
    """The one spelling under which an address is stored.

    email-validator lower-cases and IDNA-normalizes the domain; the local part is
    lower-cased too, because readers type their address in any case and expect to
    be one subscriber (nearly every mail provider treats it case-insensitively).
    """
    candidate = raw.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in candidate):
        raise InvalidInput(f"invalid email address {raw!r}: contains control characters")
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
