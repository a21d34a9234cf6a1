"""`ResponsesModel`: encode a call, pick the transport, run the shared protocol loop.

HTTP turns go straight through `run_protocol`; WebSocket turns go through the session,
which falls back to an HTTP turn only when a request never reached the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from llmkit._closing import closed_error
from llmkit._deadline import Deadline, call_limit
from llmkit.messages import Call, WarmupResult
from llmkit.model import LanguageModel
from llmkit.openai._encode import encode_request
from llmkit.openai._loop import Meter, open_stamped, run_protocol
from llmkit.openai._websocket import WebSocketSession
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import Stream, StreamPart, Warnings
from llmkit.transports.base import PayloadStream, TransportRequest

__all__ = ["PayloadOpener", "ResponsesModel", "http_request", "start_call"]

RESPONSES_PATH = "/responses"


def http_request(
    body: dict[str, Any], fallback_reason: str | None, deadline: Deadline | None = None
) -> tuple[TransportRequest, Meter]:
    """The HTTP request of a Responses turn (always streamed) and its meter."""
    meter = Meter("http", "full", len(body["input"]), fallback_reason=fallback_reason)
    request = TransportRequest(RESPONSES_PATH, {**body, "stream": True}, deadline=deadline)
    return request, meter


class _Closable(Protocol):
    @property
    def closed(self) -> bool: ...


def start_call(http: _Closable, max_duration: float | None, default: float | None) -> float | None:
    """What every model does first on a call: refuse it once the provider closed (its
    HTTP transport says so), then settle its ``max_duration`` (its own, else ``default``).

    Raises:
        UsageError: the provider is closed, or ``max_duration`` is not seconds > 0.
    """
    if http.closed:
        raise closed_error()
    return call_limit(max_duration, default)


class PayloadOpener(Protocol):
    """What the model needs of a transport: open one request's payload stream."""

    closed: bool
    """Whether the provider closed it: its models then refuse every call."""

    def open(self, request: TransportRequest) -> PayloadStream: ...


class ResponsesModel(LanguageModel):
    """An OpenAI Responses API model, over HTTP server-sent events or WebSocket mode.

    With a WebSocket session, turns go over the session's connections and fall back to
    HTTP only when a request provably never reached the model. ``max_duration`` is the
    provider's default for a call's overall deadline.
    """

    provider = "openai"

    def __init__(
        self,
        model_id: str,
        *,
        http: PayloadOpener,
        websocket: WebSocketSession | None = None,
        max_duration: float | None = None,
    ) -> None:
        self.model_id = model_id
        self._http = http
        self._websocket = websocket
        self._max_duration = max_duration

    def stream(self, call: Call | str, *, max_duration: float | None = None) -> Stream:
        limit = start_call(self._http, max_duration, self._max_duration)
        encoded = encode_request(self.model_id, call)
        return Stream(self._parts(encoded.body, encoded.warnings, limit))

    def _parts(
        self, body: dict[str, Any], warnings: tuple[str, ...], max_duration: float | None
    ) -> Iterator[StreamPart]:
        deadline = Deadline.start(max_duration)  # when iteration starts: nothing sent before
        if warnings:
            yield Warnings(warnings)
        if self._websocket is None:
            yield from self._http_turn(body, None, deadline)
        else:
            yield from self._websocket.stream(body, self._http_turn, deadline)

    def _http_turn(
        self, body: dict[str, Any], fallback_reason: str | None, deadline: Deadline | None
    ) -> Iterator[StreamPart]:
        request, meter = http_request(body, fallback_reason, deadline)
        payloads = open_stamped(lambda: self._http.open(request), meter)
        yield from run_protocol(payloads, meter, ResponsesProtocol())

    def warmup(self, call: Call | str, *, max_duration: float | None = None) -> WarmupResult:
        """Warm the server up for ``call`` without generating (WebSocket mode only).

        Over WebSocket: sends ``generate: false``; the warm-up becomes the head of the
        conversation's chain, so the next turn sends only what is new. It is billed for
        input tokens. Over HTTP, or while WebSocket is unavailable, nothing is sent and
        the result says ``transport="http"``: a warm-up never becomes a billed generation.
        """
        limit = start_call(self._http, max_duration, self._max_duration)
        encoded = encode_request(self.model_id, call)
        if self._websocket is None:
            return WarmupResult.skipped()
        return self._websocket.warmup(encoded.body, Deadline.start(limit))
