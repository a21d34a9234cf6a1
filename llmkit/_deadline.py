"""The overall deadline of one call (``max_duration``): its arithmetic, no waiting.

``timeout`` bounds each wait (the silence between two events, a connect); a long
reasoning stream that keeps sending events never trips it. ``max_duration`` bounds the
whole call instead: connect, waiting for a pooled WebSocket connection, sending, every
event, the back-off before a retry and a fallback to HTTP. It starts when the stream
starts (nothing is sent before), and every shell, sync or async, asks this one value
how long it may still wait and what to raise when nothing is left.
"""

from __future__ import annotations

import math
import time

from llmkit.exceptions import Timeout, UsageError

__all__ = ["Deadline", "call_limit", "cap", "check_durations", "check_positive"]


class Deadline:
    """The instant (``time.monotonic``) by which one call must be over.

    Args:
        max_duration: Seconds the call may take in all, > 0.
    """

    __slots__ = ("at", "max_duration")

    def __init__(self, max_duration: float) -> None:
        self.max_duration = max_duration
        self.at = time.monotonic() + max_duration

    @classmethod
    def start(cls, max_duration: float | None) -> Deadline | None:
        """A deadline from now, or None when the call has no ``max_duration``."""
        return None if max_duration is None else cls(max_duration)

    def remaining(self) -> float:
        """Seconds left; zero or less once the deadline passed."""
        return self.at - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline passed."""
        return time.monotonic() >= self.at

    def error(self) -> Timeout:
        """What a call raises when its deadline passed (the partial is added later)."""
        return Timeout(f"the call ran out of its max_duration of {self.max_duration:g} seconds")

    def cap(self, timeout: float | None) -> float:
        """The longest a wait of ``timeout`` (None: no limit) may last now.

        Raises:
            Timeout: the deadline already passed (`error`).
        """
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise self.error()
        return remaining if timeout is None or timeout > remaining else timeout

    def pause(self, delay: float) -> float:
        """``delay``, unless sleeping that long would reach the deadline: a back-off
        never sleeps past it, the call ends at once instead.

        Raises:
            Timeout: ``delay`` would not end before the deadline (`error`).
        """
        if time.monotonic() + delay >= self.at:
            raise self.error()
        return delay


def cap(deadline: Deadline | None, timeout: float | None) -> float | None:
    """``timeout``, shortened to what ``deadline`` leaves (when there is one)."""
    return timeout if deadline is None else deadline.cap(timeout)


def check_positive(name: str, value: object, *, optional: bool = False) -> None:
    """Refuse a duration that is not a finite number of seconds above zero.

    ``None`` is allowed (no limit) when ``optional``.

    Raises:
        UsageError: ``value`` is zero, negative, NaN, infinite or not a number.
    """
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise UsageError(f"{name} must be a finite number of seconds > 0, not {value!r}")


def check_durations(
    *,
    timeout: object,
    max_duration: float | None,
    ws_max_age: float,
    ws_cooldown: float,
    ws_cooldown_max: float,
    ws_keepalive: float | None = None,
) -> None:
    """Validate a provider's durations at construction, not at the first call.

    Every duration is a finite number of seconds > 0. ``timeout`` is a number or an
    ``httpx.Timeout`` (this module does no I/O, so it reads its four fields by name); a
    field set to None means "no limit", as in httpx, and is allowed, as is None itself.

    Raises:
        UsageError: a duration that is zero, negative, NaN, infinite or not a number,
            or ``ws_cooldown_max`` below ``ws_cooldown``.
    """
    fields = ("connect", "read", "write", "pool")
    if all(hasattr(timeout, field) for field in fields):
        for field in fields:
            check_positive(f"timeout.{field}", getattr(timeout, field), optional=True)
    else:
        check_positive("timeout", timeout, optional=True)
    check_positive("max_duration", max_duration, optional=True)
    check_positive("ws_max_age", ws_max_age)
    check_positive("ws_cooldown", ws_cooldown)
    check_positive("ws_cooldown_max", ws_cooldown_max)
    check_positive("ws_keepalive", ws_keepalive, optional=True)
    if ws_cooldown_max < ws_cooldown:
        raise UsageError(
            f"ws_cooldown_max ({ws_cooldown_max!r}) must be >= ws_cooldown ({ws_cooldown!r})"
        )


def call_limit(per_call: float | None, provider: float | None) -> float | None:
    """The ``max_duration`` of one call: its own, else the provider's.

    Raises:
        UsageError: ``per_call`` is not a finite number of seconds > 0.
    """
    if per_call is None:
        return provider
    check_positive("max_duration", per_call)
    return per_call
