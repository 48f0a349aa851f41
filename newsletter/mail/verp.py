"""Return addresses with a tag: `bounces+d123-…@domain` and `unsubscribe+s45-…@domain`.

The tag after the `+` (a signed token, see newsletter.tokens) tells `newsletter inbound`
which delivery bounced or which reader wants to leave; the site's MTA delivers every
`local+anything@` to `local@` when its recipient delimiter is `+`. Pure string work.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.errors import InvalidInput
from newsletter.mail.message import ascii_address

DELIMITER = "+"
UNSUBSCRIBE_LOCAL = "unsubscribe"
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1


@dataclass(frozen=True)
class Tagged:
    """A recipient address taken apart, lower-cased: `local+tag@domain`."""

    local: str
    tag: str | None  # None: no `+` in the local part
    domain: str


@dataclass(frozen=True)
class ReturnAddresses:
    """The site's return addresses: the plain bounce address, its tagged (VERP) form,
    and the tagged unsubscribe address on the same domain."""

    bounce_local: str
    domain: str

    @classmethod
    def of(cls, bounce_address: str) -> ReturnAddresses:
        local, _, domain = ascii_address(bounce_address).rpartition("@")
        return cls(local.lower(), domain.lower())

    @property
    def bounce(self) -> str:
        return f"{self.bounce_local}@{self.domain}"

    @property
    def unsubscribe(self) -> str:
        return f"{UNSUBSCRIBE_LOCAL}@{self.domain}"

    def bounce_for(self, token: str) -> str:
        return tagged(self.bounce_local, token, self.domain)

    def unsubscribe_for(self, token: str) -> str:
        return tagged(UNSUBSCRIBE_LOCAL, token, self.domain)

    def is_ours(self, address: str) -> bool:
        found = split_address(address)
        return found is not None and found.domain == self.domain


def tagged(local: str, tag: str, domain: str) -> str:
    """`local+tag@domain`; InvalidInput if the local part would pass 64 characters
    (a relay may refuse or cut it, and the bounce would name nothing)."""
    full = f"{local}{DELIMITER}{tag}"
    if len(full) > MAX_LOCAL_PART:
        raise InvalidInput(
            f"the return address {full}@{domain} is longer than {MAX_LOCAL_PART} characters"
            " before the @: choose a shorter bounces.address"
        )
    return f"{full}@{domain}"


def split_address(address: str) -> Tagged | None:
    """`local+tag@domain` taken apart, case-insensitively; None if not an address.

    Accepts the forms an SMTP server or a header hands over: `<a@b>`, ` a@b `.
    """
    bare = address.strip().strip("<>").strip().lower()
    local, at, domain = bare.rpartition("@")
    if not at or not local or not domain:
        return None
    base, plus, tag = local.partition(DELIMITER)
    return Tagged(base, tag if plus else None, domain)
