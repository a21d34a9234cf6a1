"""Fault switches of the local server: what the next requests, responses or upgrades do wrong.

Armed by a test (another thread) and taken by the server's loop, so every structure is
guarded by a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ErrorShape = Literal["nested", "flat", "string", "status_code"]
"""How an armed `error` event is written (`llmkit.testing._gateway.error_frame`): OpenAI's
nested envelope, the documented flat SSE event, a gateway's bare string, or the nested
envelope with ``status_code`` in place of ``status``."""


@dataclass(frozen=True, slots=True)
class ErrorFault:
    """An armed `error` event: sent instead of the response."""

    code: str | None
    message: str
    status: int | None
    shape: ErrorShape
    param: str | None
    type: str


@dataclass(frozen=True, slots=True)
class HTTPRejection:
    """An armed HTTP error answer to `POST /v1/responses` or `/v1/chat/completions`."""

    status: int
    message: str
    code: str | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class ResponseFaults:
    """The faults that apply to one response, taken (and disarmed) when it starts."""

    error: ErrorFault | None = None
    fail: tuple[str, str] | None = None
    drop_after: int | None = None
    slow: float | None = None
    replay: bytes | None = None


@dataclass(slots=True)
class _Armed:
    value: Any
    remaining: int
    include_warmups: bool = False


class Faults:
    """Fault switches; each one-shot fault applies to the next N matching requests.

    A response-level fault is taken when a request reaches the point where a real server
    would start a response (after validation and `previous_response_id` resolution).
    Warm-ups (`generate: false`) are skipped unless `include_warmups=True`, so a test that
    arms `fail_next()` is not silently disarmed by a client's automatic warm-up.
    """

    def __init__(self, close_idle: Callable[[], int] | None = None) -> None:
        self._lock = threading.Lock()
        self._close_idle = close_idle
        self._clear()

    def _clear(self) -> None:
        self._upgrades: list[_Armed] = []
        self._armed: dict[str, list[_Armed]] = {}
        self.max_frame_size: int | None = None
        self.unknown_events: bool = False

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def _arm(self, kind: str, value: Any, n: int, include_warmups: bool) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._armed.setdefault(kind, []).append(_Armed(value, n, include_warmups))

    # -- arming (test side) ---------------------------------------------------------------
    def reject_upgrades(self, n: int = 1, status: int | None = 503) -> None:
        """Refuse the next `n` WebSocket upgrades with `status`, or drop the TCP if None."""
        if n < 1:
            raise ValueError("n must be >= 1")
        with self._lock:
            self._upgrades.append(_Armed(status, n))

    def reject_requests(
        self,
        n: int = 1,
        status: int = 503,
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        message: str = "The server is overloaded. Please retry.",
    ) -> None:
        """Answer the next `n` HTTP POSTs (Responses or Chat) with `status` and a JSON error.

        `headers` go out with the answer (``retry-after``, ``x-should-retry``, ...).
        """
        error = HTTPRejection(status, message, code, dict(headers or {}))
        self._arm("http_status", error, n, True)

    def take_http_rejection(self) -> HTTPRejection | None:
        with self._lock:
            value: HTTPRejection | None = self._take("http_status", True)
            return value

    def drop_after(self, events: int, n: int = 1, *, include_warmups: bool = False) -> None:
        """Abort the connection after `events` events of each of the next `n` responses."""
        self._arm("drop", events, n, include_warmups)

    def fail_next(
        self,
        code: str = "server_error",
        message: str = "The server had an error while processing your request.",
        n: int = 1,
        *,
        include_warmups: bool = False,
    ) -> None:
        """Make the next `n` responses end in `response.failed` with this error."""
        self._arm("fail", (code, message), n, include_warmups)

    def error_next(
        self,
        code: str | None = "server_error",
        message: str = "The server had an error while processing your request.",
        status: int | None = 400,
        shape: ErrorShape = "nested",
        n: int = 1,
        *,
        param: str | None = None,
        error_type: str | None = None,
        include_warmups: bool = False,
    ) -> None:
        """Send an `error` event instead of the next `n` responses.

        ``shape`` is how it is written (`ErrorShape`); a ``status`` or ``code`` of None is
        left out of the frame, as some gateways do (an HTTP answer then uses status 500).
        """
        server_side = status is None or status >= 500
        etype = error_type or ("server_error" if server_side else "invalid_request_error")
        fault = ErrorFault(code, message, status, shape, param, etype)
        self._arm("error", fault, n, include_warmups)

    def close_on_create(
        self, n: int = 1, *, code: int = 1000, reason: str = "", include_warmups: bool = False
    ) -> None:
        """Close the WebSocket cleanly (``code``, ``reason``) right after each of the next
        `n` ``response.create`` frames, before any event: what a gateway does when it does
        not serve WebSocket mode for a model or account. HTTP requests are not affected."""
        self._arm("close", (code, reason), n, include_warmups)

    def take_close(self, *, warmup: bool) -> tuple[int, str] | None:
        with self._lock:
            value: tuple[int, str] | None = self._take("close", warmup)
            return value

    def refuse_next(self, refusal: str = "I'm sorry, I can't help with that.", n: int = 1) -> None:
        """Make the next `n` text answers a refusal: a ``refusal`` content part (Chat:
        ``refusal`` deltas) with this text in place of the answer. A response that calls
        a tool is sent as it is and leaves the fault armed."""
        self._arm("refuse", refusal, n, False)

    def invalid_json_next(self, n: int = 1) -> None:
        """Cut the last character off the next `n` text answers: a structured answer
        (``text.format`` / ``response_format``) is then no valid JSON. A response that
        calls a tool leaves the fault armed."""
        self._arm("invalid_json", True, n, False)

    def slow(self, delay: float, n: int = 1) -> None:
        """Use `delay` seconds before every delta of the next `n` responses."""
        self._arm("slow", delay, n, False)

    def hold_for_steer(self, n: int = 1, *, timeout: float = 5.0) -> None:
        """Pause each of the next `n` WebSocket responses after its first delta until a
        ``response.steer`` for it is accepted (at most `timeout` seconds): a steer sent
        on the first delta then stops the response mid-answer, whatever the timing."""
        self._arm("hold_for_steer", timeout, n, False)

    def take_steer_hold(self) -> float | None:
        with self._lock:
            value: float | None = self._take("hold_for_steer", False)
            return value

    def replay(self, body: bytes, n: int = 1) -> None:
        """Replay a recorded SSE body verbatim as the next `n` responses."""
        self._arm("replay", body, n, False)

    def close_idle(self) -> int:
        """Close every WebSocket connection that has no response in flight; returns how many."""
        return self._close_idle() if self._close_idle is not None else 0

    # -- taking (server side) -------------------------------------------------------------
    def take_upgrade_rejection(self) -> tuple[bool, int | None]:
        with self._lock:
            if not self._upgrades:
                return False, None
            armed = self._upgrades[0]
            armed.remaining -= 1
            if armed.remaining <= 0:
                self._upgrades.pop(0)
            return True, armed.value

    def _take(self, kind: str, warmup: bool) -> Any:
        queue = self._armed.get(kind, [])
        for armed in queue:
            if warmup and not armed.include_warmups:
                continue
            armed.remaining -= 1
            if armed.remaining <= 0:
                queue.remove(armed)
            return armed.value
        return None

    def take_response_faults(self, *, warmup: bool) -> ResponseFaults:
        with self._lock:
            error = self._take("error", warmup)
            if error is not None:
                return ResponseFaults(error=error)
            return ResponseFaults(
                fail=self._take("fail", warmup),
                drop_after=self._take("drop", warmup),
                slow=self._take("slow", warmup),
                replay=self._take("replay", warmup),
            )

    def take_answer_faults(self) -> tuple[str | None, bool]:
        """The refusal text and whether to break the JSON, for a response whose plan
        ends in a text answer (taken only then: a tool call leaves them armed)."""
        with self._lock:
            refusal: str | None = self._take("refuse", False)
            invalid = refusal is None and self._take("invalid_json", False) is True
            return refusal, invalid


def read_replay_source(source: bytes | str | Path) -> bytes:
    """Accept raw SSE bytes or a path to a recorded `.sse` file."""
    if isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def monotonic() -> float:
    return time.monotonic()
