"""Retry decisions for transports, as pure functions.

Nothing here does I/O, sleeps or imports an HTTP library: a transport asks *whether* to
retry and *how long* to wait, then does the waiting itself. That keeps the rules testable
without a clock or a socket, and lets a future async transport reuse them unchanged
(the websockets pattern of one pure core under several I/O shells).

The rules follow the official OpenAI SDKs, so llmkit behaves like the client a server
operator expects:

- ``x-should-retry: true|false`` from the server wins over everything else;
- otherwise 408, 409, 429 and every status of 500 or more are retried;
- the wait is the server's ``retry-after-ms`` / ``retry-after`` when it is sane, else
  exponential backoff with jitter so that many clients do not retry in lock-step.
"""

from __future__ import annotations

import email.utils
import math
import random as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC

from llmkit.exceptions import UsageError

__all__ = ["RetryPolicy", "parse_retry_after", "should_retry_status"]

_RETRYABLE_STATUSES = frozenset({408, 409, 429})

# Jitter scales the backoff into [1 - _JITTER, 1.0]: enough spread to de-synchronise
# clients, never longer than the nominal delay.
_JITTER = 0.25

_DEFAULT_MAX_RETRY_AFTER = 60.0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Look up ``name`` (lower case) whatever the case of the stored key.

    ``httpx.Headers`` already matches case-insensitively, so the direct lookup hits;
    the scan is for plain dicts built by hand.
    """
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def should_retry_status(status: int, headers: Mapping[str, str]) -> bool:
    """Decide whether an error status is worth sending the same request again for.

    Args:
        status: The HTTP status of the answer.
        headers: The answer's headers; ``x-should-retry`` overrides the status rule
            because the server knows better than a table (OpenAI sets it on purpose).

    Returns:
        ``True`` for ``x-should-retry: true``; ``False`` for ``x-should-retry: false``;
        otherwise ``True`` exactly for 408, 409, 429 and statuses of 500 or more.
    """
    override = _header(headers, "x-should-retry")
    if override == "true":
        return True
    if override == "false":
        return False
    return status in _RETRYABLE_STATUSES or status >= 500


def _parse_seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_http_date(text: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown origin (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now


def parse_retry_after(
    headers: Mapping[str, str],
    now: float | None = None,
    *,
    max_retry_after: float = _DEFAULT_MAX_RETRY_AFTER,
) -> float | None:
    """Read how long the server asked the client to wait, in seconds.

    Args:
        headers: Response headers; names are matched case-insensitively.
        now: The current Unix time, for ``Retry-After`` given as an HTTP date. Defaults to
            `time.time`; tests pass a fixed value.
        max_retry_after: Waits longer than this are treated as absent, so that a
            misconfigured server cannot park the client for hours; the caller then
            falls back to its own backoff.

    Returns:
        The wait in seconds from ``retry-after-ms`` (preferred, it is more precise) or
        ``retry-after`` (seconds, integer or decimal, or an HTTP date), or ``None`` when
        neither is present, parseable, non-negative and at most ``max_retry_after``.
    """
    value: float | None = None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        parsed = _parse_seconds(millis)
        value = None if parsed is None else parsed / 1000.0
    if value is None:
        text = _header(headers, "retry-after")
        if text is not None:
            value = _parse_seconds(text)
            if value is None:
                value = _parse_http_date(text, time.time() if now is None else now)
    if value is None or value < 0 or value > max_retry_after:
        return None
    return value


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a transport retries a request that never got going.

    Retries only ever happen before the first event of a response was received: after
    that the model has run (and may have billed), so replaying would duplicate work.

    Attributes:
        max_retries: Retries after the first attempt; 0 disables retrying.
        initial_delay: Backoff before the first retry, in seconds; doubles each time.
        max_delay: Cap on the backoff, in seconds.
        max_retry_after: Longest server-requested wait honoured, in seconds.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = _DEFAULT_MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise UsageError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not value >= 0:  # also rejects NaN
                raise UsageError(f"{name} must be >= 0, got {value}")

    def delay(
        self,
        attempt: int,
        headers: Mapping[str, str] | None = None,
        random: Callable[[], float] = _random.random,
        *,
        now: float | None = None,
    ) -> float:
        """Return the seconds to wait before retry number ``attempt + 1``.

        Args:
            attempt: 0-based index of the attempt that just failed.
            headers: The failed answer's headers, if there was an answer.
            random: Source of jitter in [0, 1); injectable for deterministic tests.
            now: The current Unix time for HTTP-date ``Retry-After`` values.

        Returns:
            The server's ``retry-after-ms``/``retry-after`` when present and sane (see
            `parse_retry_after`), else ``min(initial_delay * 2**attempt, max_delay)``
            scaled by a jitter factor in (0.75, 1.0].
        """
        if headers:
            server = parse_retry_after(headers, now, max_retry_after=self.max_retry_after)
            if server is not None:
                return server
        backoff = min(self.initial_delay * 2.0 ** min(attempt, 64), self.max_delay)
        return backoff * (1.0 - _JITTER * random())
