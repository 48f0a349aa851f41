"""What keeps a drain from doing harm: a relay that fails every connection stops the
run (`RelayWatch`), readers who left since planning are skipped at send time
(`Leavers`), and claims held by a worker that is gone are taken back (`owner_is_gone`).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from newsletter.runtime import Runtime
from newsletter.store import claims as claims_mod
from newsletter.store import db
from newsletter.store.models import utcnow

RELAY_STRIKES = 3  # relay-level failures in a row that stop a run (at least)
RELAY_REST_SECONDS = 0.5  # a connection the relay just failed waits before its next try
LEAVERS_SECONDS = 0.25  # how stale the send-time check for unsubscribed readers may be


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_RUNNING_HERE: set[str] = set()  # lease owners of the drains running in this process


def owner_is_gone(owner: str) -> bool:
    """True only when a lease owner is provably dead: same host, and its PID is not
    running, or is this process but no drain here has that name (a process before a
    restart that reused the PID, as in a restarted container)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _RUNNING_HERE
    return not _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # a killed process its parent has not reaped yet is gone too
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class RelayWatch:
    """Tells a relay outage from a bad moment on one connection.

    The relay is down after as many relay-level failures as there are connections
    (at least RELAY_STRIKES) with no answer from it in between: a message accepted,
    or refused for the reader's sake, proves it works. One connection turned away by
    a per-client limit, resting between tries, while the others send is no outage.
    """

    def __init__(self, connections: int) -> None:
        self.limit = max(RELAY_STRIKES, connections)
        self._lock = threading.Lock()
        self._strikes = 0

    def answered(self) -> None:
        with self._lock:
            self._strikes = 0

    def failed(self) -> bool:
        """Count a relay-level failure; True when the relay is down."""
        with self._lock:
            self._strikes += 1
            return self._strikes >= self.limit


class Leavers:
    """Readers who unsubscribed or bounced since the run began, refreshed at most every
    LEAVERS_SECONDS: the claim checked them, this catches those who left since."""

    def __init__(self, context: Runtime) -> None:
        self.context = context
        # Back by a lease: clocks of the web and sending machines may differ a little.
        self.since = utcnow() - timedelta(seconds=context.settings.delivery.lease_seconds)
        self._lock = threading.Lock()
        self._left: set[int] = set()
        self._checked = -math.inf

    def __contains__(self, subscriber_id: int) -> bool:
        with self._lock:
            if time.monotonic() - self._checked >= LEAVERS_SECONDS:
                with db.transaction(self.context.sessions) as session:
                    self._left = claims_mod.readers_left_since(session, self.since)
                self._checked = time.monotonic()
            return subscriber_id in self._left
