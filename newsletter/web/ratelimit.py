"""An in-memory token bucket per client address (one process; enough for one server)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """`allow(key)` spends one token; buckets refill at `per_hour` up to `burst`."""

    def __init__(
        self,
        per_hour: float,
        burst: int,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_hour / 3600.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        # key → (tokens, last refill); least recently seen first, so a flood of new
        # addresses evicts idle buckets instead of growing memory without bound.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return allowed

    def retry_after(self, key: str) -> int:
        """Seconds until the next token for `key` (for the Retry-After header)."""
        with self._lock:
            tokens, _ = self._buckets.get(key, (self.burst, 0.0))
        missing = max(0.0, 1.0 - tokens)
        return max(1, int(missing / self.rate + 0.999)) if self.rate else 3600
