"""The asyncio models: `AsyncResponsesModel` and `AsyncChatModel`.

The same encoders, requests and protocols as `ResponsesModel` and `ChatModel`; only the
awaiting differs. Each nested async generator is closed with ``aclosing`` so that leaving
a stream early releases its connection at once, not when the garbage collector runs.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any, Protocol

from llmkit._deadline import Deadline
from llmkit.messages import Call, WarmupResult
from llmkit.model import AsyncLanguageModel
from llmkit.openai._aio import aopen_stamped, arun_protocol
from llmkit.openai._aio_websocket import AsyncWebSocketSession
from llmkit.openai._encode import encode_request
from llmkit.openai._loop import EventProtocol, Meter
from llmkit.openai.chat._encode import encode_chat_request
from llmkit.openai.chat.model import chat_request
from llmkit.openai.chat.protocol import ChatProtocol
from llmkit.openai.model import http_request, start_call
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import AsyncStream, StreamPart, Warnings
from llmkit.transports.base import AsyncPayloadStream, TransportRequest

__all__ = ["AsyncChatModel", "AsyncPayloadOpener", "AsyncResponsesModel"]

Parts = AsyncGenerator[StreamPart, None]


class AsyncPayloadOpener(Protocol):
    """What an async model needs of a transport: open one request's payload stream."""

    closed: bool
    """Whether the provider closed it: its models then refuse every call."""

    async def open(self, request: TransportRequest) -> AsyncPayloadStream: ...


async def _http_parts(
    http: AsyncPayloadOpener,
    prepare: Callable[[], tuple[TransportRequest, Meter]],
    protocol: EventProtocol,
) -> Parts:
    request, meter = prepare()  # when iteration starts: the meter times from here
    payloads = await aopen_stamped(lambda: http.open(request), meter)
    async with aclosing(arun_protocol(payloads, meter, protocol)) as parts:
        async for part in parts:
            yield part


def _stream(warnings: tuple[str, ...], turn: Parts) -> AsyncStream:
    """The stream of ``turn``, after a `Warnings` part when there are warnings (only
    then is there another generator for every part to pass through)."""
    return AsyncStream(_with_warnings(warnings, turn) if warnings else turn)


async def _with_warnings(warnings: tuple[str, ...], turn: Parts) -> Parts:
    yield Warnings(warnings)
    async with aclosing(turn) as parts:
        async for part in parts:
            yield part


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
        if self._websocket is None:
            # The deadline starts when `_http_parts` prepares: when iteration starts.
            turn = _http_parts(
                self._http,
                lambda: http_request(encoded.body, None, Deadline.start(limit)),
                ResponsesProtocol(),
            )
        else:
            turn = self._websocket.stream(encoded.body, self._http_turn, limit)
        return _stream(encoded.warnings, turn)

    def _http_turn(
        self, body: dict[str, Any], fallback_reason: str | None, deadline: Deadline | None
    ) -> Parts:
        prepare = functools.partial(http_request, body, fallback_reason, deadline)
        return _http_parts(self._http, prepare, ResponsesProtocol())

    async def warmup(self, call: Call | str, *, max_duration: float | None = None) -> WarmupResult:
        """As `ResponsesModel.warmup`: ``generate: false`` over WebSocket, else a no-op."""
        limit = start_call(self._http, max_duration, self._max_duration)
        encoded = encode_request(self.model_id, call)
        if self._websocket is None:
            return WarmupResult.skipped()
        return await self._websocket.warmup(encoded.body, Deadline.start(limit))


class AsyncChatModel(AsyncLanguageModel):
    """An OpenAI Chat Completions model (or any compatible server) for asyncio."""

    provider = "openai"

    def __init__(
        self, model_id: str, *, http: AsyncPayloadOpener, max_duration: float | None = None
    ) -> None:
        self.model_id = model_id
        self._http = http
        self._max_duration = max_duration

    def stream(self, call: Call | str, *, max_duration: float | None = None) -> AsyncStream:
        limit = start_call(self._http, max_duration, self._max_duration)
        encoded = encode_chat_request(self.model_id, call)
        turn = _http_parts(
            self._http,
            lambda: chat_request(encoded.body, Deadline.start(limit)),
            ChatProtocol(),
        )
        return _stream(encoded.warnings, turn)

    async def warmup(self, call: Call | str, *, max_duration: float | None = None) -> WarmupResult:
        """As `ChatModel.warmup`: validates ``call`` and sends nothing."""
        start_call(self._http, max_duration, self._max_duration)
        encode_chat_request(self.model_id, call)
        return WarmupResult.skipped()
