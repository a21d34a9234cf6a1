"""`ResponsesModel`: encode a call, pick the transport, run the shared protocol loop.

HTTP turns go straight through `run_protocol`; WebSocket turns go through the session,
which falls back to an HTTP turn only when a request never reached the model. Each call
has one `Collector`: every protocol of the call folds into it and its `Stream` reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmkit._core.calls import ModelBase, Started
from llmkit._core.run import Meter, http_parts, opening
from llmkit._deadline import Deadline
from llmkit._schema import OutputSchema
from llmkit.messages import Call, WarmupResult
from llmkit.model import LanguageModel, schema_of
from llmkit.openai._encode import encode_request
from llmkit.openai._steer import SteerControl
from llmkit.openai._websocket import WebSocketSession
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import Collector, Stream, StreamPart
from llmkit.transports.base import PayloadOpener, TransportRequest

__all__ = ["ResponsesModel", "http_request"]

RESPONSES_PATH = "/responses"


def http_request(
    body: dict[str, Any], fallback_reason: str | None, deadline: Deadline | None = None
) -> tuple[TransportRequest, Meter]:
    """The HTTP request of a Responses turn (always streamed) and its meter."""
    meter = Meter("http", "full", len(body["input"]), fallback_reason=fallback_reason)
    request = TransportRequest(RESPONSES_PATH, {**body, "stream": True}, deadline=deadline)
    return request, meter


class ResponsesModel(ModelBase[PayloadOpener], LanguageModel):
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
        super().__init__(model_id, http=http, max_duration=max_duration)
        self._websocket = websocket

    def _stream(
        self, call: Call | str, max_duration: float | None, output: OutputSchema[Any] | None
    ) -> Stream:
        started = self._start(call, max_duration, encode_request, output)
        steering = None if self._websocket is None else SteerControl()
        stream = Stream(started.parts(self._parts(started, steering)), started.collector)
        stream._steering = steering
        return stream

    def _parts(self, started: Started, steering: SteerControl | None) -> Iterator[StreamPart]:
        deadline = Deadline.start(started.limit)  # when iteration starts: nothing sent before
        body, collector = started.body, started.collector
        yield from opening(collector, started.warnings)
        if self._websocket is None:
            yield from self._http_turn(body, None, deadline, collector)
        else:
            http = self._http_turn
            yield from self._websocket.stream(body, http, deadline, collector, steering)

    def _http_turn(
        self,
        body: dict[str, Any],
        fallback_reason: str | None,
        deadline: Deadline | None,
        collector: Collector,
    ) -> Iterator[StreamPart]:
        request, meter = http_request(body, fallback_reason, deadline)
        yield from http_parts(self._http, request, meter, ResponsesProtocol(collector))

    def warmup(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> WarmupResult:
        """Warm the server up for ``call`` without generating (WebSocket mode only).

        Over WebSocket: sends ``generate: false``; the warm-up becomes the head of the
        conversation's chain, so the next turn sends only what is new. It is billed for
        input tokens. Over HTTP, or while WebSocket is unavailable, nothing is sent and
        the result says ``transport="http"``: a warm-up never becomes a billed generation.
        """
        output = schema_of(output_type)
        started = self._start(call, max_duration, encode_request, output, "warmup")
        websocket = self._websocket
        if websocket is None:
            return started.warmup(WarmupResult.skipped)
        return started.warmup(lambda: websocket.warmup(started.body, Deadline.start(started.limit)))
