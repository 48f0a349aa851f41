"""Optional DKIM signing (dkimpy), the key read and checked once per process.

Signatures are dkimpy's; `dkim_gmp` does its RSA step on gmpy2 numbers when the `dkim`
extra is installed (a measured exception, figures there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dkim

from newsletter.errors import ConfigError
from newsletter.mail import dkim_gmp
from newsletter.mail.message import OutgoingMessage

# What receivers must see unaltered: who it is from and to, what it is, and the
# one-click unsubscribe (RFC 8058 requires List-Unsubscribe(-Post) to be signed).
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


@dataclass(frozen=True)
class DkimSigner:
    domain: str
    selector: str
    private_key: bytes

    @classmethod
    def load(cls, domain: str, selector: str, private_key_path: Path) -> DkimSigner:
        try:
            key = private_key_path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"dkim.private_key_path: cannot read {private_key_path}: {exc}"
            ) from None
        signer = cls(domain=domain, selector=selector, private_key=key)
        # Sign once now so a bad key fails at start, not on the first subscriber.
        signer.sign_bytes(b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nx\r\n")
        return signer

    def sign_bytes(self, data: bytes) -> bytes:
        try:
            header = dkim_gmp.sign(
                data,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self.private_key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=list(SIGNED_HEADERS),
            )
        except (dkim.DKIMException, ValueError, UnicodeError) as exc:
            raise ConfigError(f"dkim: cannot sign with the configured key: {exc}") from None
        return header + data

    def sign(self, message: OutgoingMessage) -> OutgoingMessage:
        return OutgoingMessage(
            sender=message.sender,
            recipient=message.recipient,
            message_id=message.message_id,
            data=self.sign_bytes(message.data),
        )
