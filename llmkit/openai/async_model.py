"""`AsyncResponsesModel`: `ResponsesModel` for asyncio.

The same encoder, requests and protocol as `ResponsesModel`; only the awaiting differs.
Each nested async generator is closed with ``aclosing`` so that leaving a stream early
releases its connection at once, not when the garbage collector runs.
"""

from __future__ import annotations

import functools
from typing import Any

from llmkit._core.async_run import Parts, http_parts
from llmkit._core.calls import start_call
from llmkit._deadline import Deadline
from llmkit.messages import Call, WarmupResult
from llmkit.model import AsyncLanguageModel
from llmkit.openai._async_websocket import AsyncWebSocketSession
from llmkit.openai._encode import encode_request
from llmkit.openai.model import http_request
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import AsyncStream, Collector
from llmkit.transports.base import AsyncPayloadOpener

__all__ = ["AsyncResponsesModel"]


class AsyncResponsesModel(AsyncLanguageModel):
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
        self.model_id = model_id
        self._http = http
        self._websocket = websocket
        self._max_duration = max_duration

    def stream(self, call: Call | str, *, max_duration: float | None = None) -> AsyncStream:
        limit = start_call(self._http, max_duration, self._max_duration)
        encoded = encode_request(self.model_id, call)
        collector = Collector()  # the call's one fold, as in `ResponsesModel`
        if self._websocket is None:
            # The deadline starts when `http_parts` prepares: when iteration starts.
            turn = http_parts(
                self._http,
                lambda: http_request(encoded.body, None, Deadline.start(limit)),
                ResponsesProtocol(collector),
                encoded.warnings,
            )
        else:
            turn = self._websocket.stream(
                encoded.body, self._http_turn, limit, collector, encoded.warnings
            )
        return AsyncStream(turn, collector)

    def _http_turn(
        self,
        body: dict[str, Any],
        fallback_reason: str | None,
        deadline: Deadline | None,
        collector: Collector,
    ) -> Parts:
        prepare = functools.partial(http_request, body, fallback_reason, deadline)
        return http_parts(self._http, prepare, ResponsesProtocol(collector))

    async def warmup(self, call: Call | str, *, max_duration: float | None = None) -> WarmupResult:
        """As `ResponsesModel.warmup`: ``generate: false`` over WebSocket, else a no-op."""
        limit = start_call(self._http, max_duration, self._max_duration)
        encoded = encode_request(self.model_id, call)
        if self._websocket is None:
            return WarmupResult.skipped()
        return await self._websocket.warmup(encoded.body, Deadline.start(limit))
