"""`AsyncResponsesModel`: `ResponsesModel` for asyncio.

The same encoder, requests and protocol as `ResponsesModel`; only the awaiting differs.
Each nested async generator is closed with ``aclosing`` so that leaving a stream early
releases its connection at once, not when the garbage collector runs.
"""

from __future__ import annotations

import functools
from typing import Any

from llmkit._core.async_run import Parts, http_parts
from llmkit._core.calls import ModelBase
from llmkit._deadline import Deadline
from llmkit._schema import OutputSchema
from llmkit.messages import Call, WarmupResult
from llmkit.model import AsyncLanguageModel, schema_of
from llmkit.openai._async_websocket import AsyncWebSocketSession
from llmkit.openai._encode import encode_request
from llmkit.openai._steer import SteerControl
from llmkit.openai.model import http_request
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import AsyncStream, Collector
from llmkit.transports.base import AsyncPayloadOpener

__all__ = ["AsyncResponsesModel"]


class AsyncResponsesModel(ModelBase[AsyncPayloadOpener], AsyncLanguageModel):
    """An OpenAI Responses API model for asyncio, over HTTP SSE or WebSocket mode."""

    provider = "openai"

    def __init__(
        self,
        model_id: str,
        *,
        http: AsyncPayloadOpener,
        websocket: AsyncWebSocketSession | None = None,
        max_duration: float | None = None,
    ) -> None:
        super().__init__(model_id, http=http, max_duration=max_duration)
        self._websocket = websocket

    def _stream(
        self, call: Call | str, max_duration: float | None, output: OutputSchema[Any] | None
    ) -> AsyncStream:
        started = self._start(call, max_duration, encode_request, output)
        body, collector = started.body, started.collector
        steering = None
        if self._websocket is None:
            # The deadline starts when `http_parts` prepares: when iteration starts.
            turn = http_parts(
                self._http,
                lambda: http_request(body, None, Deadline.start(started.limit)),
                ResponsesProtocol(collector),
                started.warnings,
            )
        else:
            steering = SteerControl()
            turn = self._websocket.stream(
                body, self._http_turn, started.limit, collector, started.warnings, steering
            )
        stream = AsyncStream(started.aparts(turn), collector)
        stream._steering = steering
        return stream

    def _http_turn(
        self,
        body: dict[str, Any],
        fallback_reason: str | None,
        deadline: Deadline | None,
        collector: Collector,
    ) -> Parts:
        prepare = functools.partial(http_request, body, fallback_reason, deadline)
        return http_parts(self._http, prepare, ResponsesProtocol(collector))

    async def warmup(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> WarmupResult:
        """As `ResponsesModel.warmup`: ``generate: false`` over WebSocket, else a no-op."""
        output = schema_of(output_type)
        started = self._start(call, max_duration, encode_request, output, "warmup")
        if self._websocket is None:
            return started.warmup(WarmupResult.skipped)
        return await started.awarmup(
            self._websocket.warmup(started.body, Deadline.start(started.limit))
        )
