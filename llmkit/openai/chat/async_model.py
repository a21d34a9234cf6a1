"""`AsyncChatModel`: `ChatModel` for asyncio."""

from __future__ import annotations

from llmkit._core.async_run import http_parts
from llmkit._core.calls import start_call
from llmkit._deadline import Deadline
from llmkit.messages import Call, WarmupResult
from llmkit.model import AsyncLanguageModel
from llmkit.openai.chat._encode import encode_chat_request
from llmkit.openai.chat.model import chat_request
from llmkit.openai.chat.protocol import ChatProtocol
from llmkit.stream import AsyncStream, Collector
from llmkit.transports.base import AsyncPayloadOpener

__all__ = ["AsyncChatModel"]


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
        collector = Collector()  # the call's one fold: the protocol's, read by the stream
        turn = http_parts(
            self._http,
            lambda: chat_request(encoded.body, Deadline.start(limit)),
            ChatProtocol(collector),
            encoded.warnings,
        )
        return AsyncStream(turn, collector)

    async def warmup(self, call: Call | str, *, max_duration: float | None = None) -> WarmupResult:
        """As `ChatModel.warmup`: validates ``call`` and sends nothing."""
        start_call(self._http, max_duration, self._max_duration)
        encode_chat_request(self.model_id, call)
        return WarmupResult.skipped()
