"""`AsyncChatModel`: `ChatModel` for asyncio."""

from __future__ import annotations

from typing import Any

from llmkit._core.async_run import http_parts
from llmkit._core.calls import ModelBase
from llmkit._deadline import Deadline
from llmkit._schema import OutputSchema
from llmkit.messages import Call, WarmupResult
from llmkit.model import AsyncLanguageModel, schema_of
from llmkit.openai.chat._encode import encode_chat_request
from llmkit.openai.chat.model import chat_request
from llmkit.openai.chat.protocol import ChatProtocol
from llmkit.stream import AsyncStream
from llmkit.transports.base import AsyncPayloadOpener

__all__ = ["AsyncChatModel"]


class AsyncChatModel(ModelBase[AsyncPayloadOpener], AsyncLanguageModel):
    """An OpenAI Chat Completions model (or any compatible server) for asyncio."""

    provider = "openai"

    def _stream(
        self, call: Call | str, max_duration: float | None, output: OutputSchema[Any] | None
    ) -> AsyncStream:
        started = self._start(call, max_duration, encode_chat_request, output)
        turn = http_parts(
            self._http,
            lambda: chat_request(started.body, Deadline.start(started.limit)),
            ChatProtocol(started.collector),
            started.warnings,
        )
        return AsyncStream(started.aparts(turn), started.collector)

    async def warmup(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> WarmupResult:
        """As `ChatModel.warmup`: validates ``call`` and sends nothing."""
        output = schema_of(output_type)
        started = self._start(call, max_duration, encode_chat_request, output, "warmup")
        return started.warmup(WarmupResult.skipped)
