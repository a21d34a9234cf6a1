"""Pure decisions for WebSocket failures: resend, reconnect, fall back to HTTP, or raise.

The rule that keeps billing honest (PEERS.md (b) 2 and 3): a request is replayed, on any
transport, only when it provably never reached the model, or when the server said it
did not run it (``previous_response_not_found``, ``websocket_connection_limit_reached``
arrive instead of a response). Once any event of the response arrived, the failure is
the caller's to see. A warm-up never falls back to HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from llmkit.exceptions import (
    APIStatusError,
    ConnectError,
    ConnectionClosed,
    LLMKitError,
    Timeout,
    WebSocketNotServed,
)

__all__ = ["Action", "Cooldown", "Failure", "decide", "not_served", "silent_close"]

PREVIOUS_RESPONSE_NOT_FOUND = "previous_response_not_found"
CONNECTION_LIMIT_REACHED = "websocket_connection_limit_reached"
CLOSE_MESSAGE_TOO_BIG = 1009
# A close frame the server sent before any event of the response: it was shutting the
# connection down (idle, going away, restarting), not running the request. An abnormal
# end without a close frame (1006) proves nothing and is never replayed.
_CLEAN_CLOSE_CODES = frozenset({1000, 1001, 1012, 1013})
# An upgrade refused with these statuses would be refused over HTTP as well.
_UPGRADE_STATUSES_TO_RAISE = frozenset({401, 429})


class Action(Enum):
    """What to do about a failed WebSocket turn.

    `RESEND_FULL` and `RECONNECT` both send the full input again; they differ in the
    connection. ``previous_response_not_found`` is request-scoped (PROTOCOL.md §3.1
    "Recovery after a miss", §6.2): the server answered on a healthy socket and is idle
    again, so the turn is resent on the same connection with its chain forgotten. Every
    other failure says nothing good about the socket, so it is closed and the resend
    goes out on a new connection.
    """

    RAISE = "raise"
    RESEND_FULL = "resend_full"  # same connection, chain dropped, full input
    RECONNECT = "reconnect"  # new connection, full input
    FALLBACK_HTTP = "fallback_http"  # serve this turn over HTTP


@dataclass(frozen=True, slots=True)
class Failure:
    """What the I/O shell saw go wrong."""

    stage: Literal["connect", "send", "receive"]
    error: LLMKitError
    events: int = 0
    """Events of this response received before the failure."""


def decide(failure: Failure, *, resends_left: int) -> Action:
    """Choose the recovery for ``failure``; ``resends_left`` bounds automatic resends."""
    error = failure.error
    if failure.stage == "connect":
        status = error.status_code if isinstance(error, APIStatusError) else None
        if status in _UPGRADE_STATUSES_TO_RAISE:
            return Action.RAISE
        if isinstance(error, ConnectError | Timeout | APIStatusError):
            return Action.FALLBACK_HTTP
        return Action.RAISE
    if failure.events or resends_left <= 0:
        return Action.RAISE
    if failure.stage == "send":
        return Action.RECONNECT
    code = getattr(error, "code", None)
    if code == PREVIOUS_RESPONSE_NOT_FOUND:
        return Action.RESEND_FULL
    if code == CONNECTION_LIMIT_REACHED:
        return Action.RECONNECT
    if isinstance(error, ConnectionClosed) and error.code == CLOSE_MESSAGE_TOO_BIG:
        return Action.FALLBACK_HTTP
    if isinstance(error, ConnectionClosed) and error.code in _CLEAN_CLOSE_CODES:
        return Action.RECONNECT
    return Action.RAISE


def silent_close(failure: Failure) -> bool:
    """Whether the server closed the socket cleanly after the request, before any event.

    A gateway does this when it does not serve WebSocket mode for the request (the model
    or the account not enabled for it, a parameter value it does not relay). `decide`
    resends once on a new connection, as for any clean close; two in a row mean
    `not_served`.
    """
    error = failure.error
    return (
        failure.stage == "receive"
        and failure.events == 0
        and isinstance(error, ConnectionClosed)
        and error.code in _CLEAN_CLOSE_CODES
    )


def not_served(error: ConnectionClosed) -> WebSocketNotServed:
    """What the second `silent_close` of a turn raises, after ``error``.

    Not a fallback to HTTP: a clean close proves only that no event came back, not that
    the request never reached a model (DESIGN.md: fall back only when it provably did
    not), and the turn was already sent twice. The message says how to switch WebSocket
    mode off; ``code`` and ``reason`` (already redacted) are the close's.
    """
    reason = f": {error.reason}" if error.reason else ""
    return WebSocketNotServed(
        f"the server closed the WebSocket right after response.create, before any event, "
        f"twice in a row (code {error.code}{reason}): WebSocket mode appears not to be "
        "served for this request (a gateway or proxy that does not relay it, or a model "
        "or account not enabled for it); pass websocket=False to the provider to use HTTP",
        code=error.code,
        reason=error.reason,
        partial=error.partial,
    )


def fallback_reason(failure: Failure) -> str:
    """A short, key-free sentence for ``metadata.fallback_reason``."""
    error = failure.error
    if isinstance(error, ConnectionClosed) and error.code == CLOSE_MESSAGE_TOO_BIG:
        return "the server closed the WebSocket with 1009 (request frame too big)"
    if isinstance(error, APIStatusError):
        return f"the WebSocket upgrade was rejected with status {error.status_code}"
    # The message names the cause (a certificate, DNS, a refusal); llmkit's own text
    # is redacted where it is made, so it can be shown as it is.
    return f"could not connect over WebSocket: {type(error).__name__}: {error.message}"


@dataclass(slots=True)
class Cooldown:
    """After a failed connect, stay on HTTP for a while; the wait grows and is capped.

    One success resets it, so a passing network blip does not pin a session to HTTP.
    """

    initial: float = 30.0
    maximum: float = 600.0
    failures: int = 0
    until: float = 0.0

    def active(self, now: float) -> bool:
        """Whether WebSocket should not be tried yet."""
        return now < self.until

    def failed(self, now: float) -> float:
        """Record a failed connect; returns the length of the new cool-down."""
        self.failures += 1
        wait = min(self.initial * float(1 << min(self.failures - 1, 30)), self.maximum)
        self.until = now + wait
        return wait

    def succeeded(self) -> None:
        """Record a successful connect."""
        self.failures = 0
        self.until = 0.0
