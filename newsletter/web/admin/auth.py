"""Who may use /admin: the admins of the config, their argon2 password hashes, and
the signed session cookie a login sets.

A session is stateless (signed, timed by itsdangerous) and names the admin plus a
fingerprint of their password hash: changing the hash in the config, or removing the
admin, ends their sessions at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from newsletter.config import AdminConfig

SESSION_COOKIE = "admin_session"


@dataclass(frozen=True)
class Admin:
    email: str


class Admins:
    """Checks a login; always spends one hash verification, known address or not, so
    the time taken does not tell which addresses are admins."""

    def __init__(self, admins: Sequence[AdminConfig]) -> None:
        self._hasher = PasswordHasher()
        self._hashes = {a.email.strip().lower(): a.password_hash for a in admins}

    @cached_property
    def _dummy(self) -> str:
        """What an unknown address is checked against: the same cost parameters as the
        real hashes, so it takes as long. Made at the first login, not at startup: every
        app (and test) built would pay for a hash nobody may use."""
        dummy: str = self._hasher.hash(secrets.token_urlsafe(24))
        return dummy

    def check(self, email: str, password: str) -> Admin | None:
        address = email.strip().lower()
        dummy = self._dummy  # before the lookup: the first login pays for it either way
        known = self._hashes.get(address)
        try:
            ok: bool = self._hasher.verify(known or dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        return Admin(address) if ok and known is not None else None

    def fingerprint(self, email: str) -> str | None:
        """A short digest of the admin's current hash; None when not an admin."""
        known = self._hashes.get(email)
        return None if known is None else hashlib.sha256(known.encode()).hexdigest()[:16]


class Sessions:
    """Signed session cookies; a logged-out cookie is refused until it would have
    expired anyway (kept in this process's memory: one server, like the rate limit)."""

    def __init__(self, secret_key: str, admins: Admins, hours: float) -> None:
        self._signer = URLSafeTimedSerializer(secret_key, salt="newsletter.web.admin.session")
        self._admins = admins
        self.max_age = int(hours * 3600)
        self._revoked: dict[str, float] = {}  # cookie → when it expires (monotonic)
        self._lock = threading.Lock()

    def revoke(self, cookie: str | None) -> None:
        if not cookie:
            return
        now = time.monotonic()
        with self._lock:
            self._revoked = {c: until for c, until in self._revoked.items() if until > now}
            self._revoked[cookie] = now + self.max_age

    def cookie_for(self, admin: Admin) -> str:
        token: str = self._signer.dumps([admin.email, self._admins.fingerprint(admin.email)])
        return token

    def admin_of(self, cookie: str | None) -> Admin | None:
        if not cookie or len(cookie) > 1000:
            return None
        with self._lock:
            if cookie in self._revoked:
                return None
        try:
            email, fingerprint = self._signer.loads(cookie, max_age=self.max_age)
        except (BadSignature, ValueError, TypeError):
            return None
        current = self._admins.fingerprint(str(email))
        if current is None or not hmac.compare_digest(current, str(fingerprint)):
            return None
        return Admin(str(email))
