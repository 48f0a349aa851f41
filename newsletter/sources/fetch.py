"""Fetching a source over HTTP(S): timeouts, retries with backoff, a size cap.

429 and 5xx answers and connection errors are retried with exponential backoff
(honouring Retry-After); other errors fail at once. Every failure is a SourceError
with a one-line message naming the URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from newsletter import __version__
from newsletter.errors import SourceError

USER_AGENT = f"trending-papers/{__version__} (+https://github.com/trending-papers)"


@dataclass(frozen=True)
class FetchPolicy:
    timeout: float = 30.0  # seconds per connect/read, not for the whole download
    retries: int = 3  # attempts after the first
    backoff: float = 1.0  # first wait; doubles each retry
    max_wait: float = 60.0  # cap on any single wait, Retry-After included
    max_bytes: int = 50 * 1024 * 1024


DEFAULT_POLICY = FetchPolicy()


def fetch(
    url: str,
    policy: FetchPolicy = DEFAULT_POLICY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> bytes:
    """The body of a GET of `url`; raises SourceError when it cannot be had."""
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    with httpx.Client(
        timeout=policy.timeout, headers=headers, follow_redirects=True, transport=transport
    ) as client:
        for attempt in range(policy.retries + 1):
            last = attempt == policy.retries
            try:
                outcome = _get(client, url, policy)
            except httpx.TransportError as exc:
                if last:
                    raise SourceError(f"{url}: cannot fetch ({_describe(exc)})") from None
                sleep(_backoff(policy, attempt))
                continue
            if isinstance(outcome, bytes):
                return outcome
            if last or not _retryable(outcome.status_code):
                raise SourceError(f"{url}: HTTP {outcome.status_code} {outcome.reason_phrase}")
            sleep(_retry_after(outcome, policy) or _backoff(policy, attempt))
    raise AssertionError("unreachable")  # the loop returns or raises on its last attempt


def _get(client: httpx.Client, url: str, policy: FetchPolicy) -> bytes | httpx.Response:
    """The body of a 2xx answer, or the (unread) response of any other."""
    with client.stream("GET", url) as response:
        if not response.is_success:
            return response
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > policy.max_bytes:
            raise _too_large(url, policy)
        body = bytearray()
        for chunk in response.iter_bytes():
            body.extend(chunk)
            if len(body) > policy.max_bytes:  # servers may lie or omit the length
                raise _too_large(url, policy)
        return bytes(body)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _backoff(policy: FetchPolicy, attempt: int) -> float:
    return float(min(policy.backoff * 2**attempt, policy.max_wait))


def _retry_after(response: httpx.Response, policy: FetchPolicy) -> float | None:
    """Retry-After in seconds (delta or HTTP date), capped; None when absent or junk."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - datetime.now(UTC)).total_seconds())
    return min(seconds, policy.max_wait)


def _too_large(url: str, policy: FetchPolicy) -> SourceError:
    limit = policy.max_bytes
    size = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit} bytes"
    return SourceError(f"{url}: larger than {size}, not loaded")


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
