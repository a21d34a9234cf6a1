"""`ChatModel`: encode a call, stream it over HTTP, run the shared protocol loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmkit._core.calls import ModelBase, Started
from llmkit._core.run import Meter, http_parts, opening
from llmkit._deadline import Deadline
from llmkit._schema import OutputSchema
from llmkit.messages import Call, WarmupResult
from llmkit.model import LanguageModel, schema_of
from llmkit.openai.chat._encode import encode_chat_request
from llmkit.openai.chat.protocol import ChatProtocol
from llmkit.stream import Stream, StreamPart
from llmkit.transports.base import PayloadOpener, TransportRequest

__all__ = ["ChatModel", "chat_request"]

CHAT_PATH = "/chat/completions"


def chat_request(
    body: dict[str, object], deadline: Deadline | None = None
) -> tuple[TransportRequest, Meter]:
    """The HTTP request of a Chat Completions call and its meter."""
    messages = body["messages"]
    assert isinstance(messages, list)
    request = TransportRequest(CHAT_PATH, body, deadline=deadline)
    return request, Meter("http", "full", len(messages))


class ChatModel(ModelBase[PayloadOpener], LanguageModel):
    """An OpenAI Chat Completions model (or any compatible server), over HTTP SSE.

    The whole history is sent on every call. Same `Response`, parts and exceptions as
    the Responses path, so agent code runs unchanged on either. ``max_duration`` is the
    provider's default for a call's overall deadline.
    """

    provider = "openai"

    def _stream(
        self, call: Call | str, max_duration: float | None, output: OutputSchema[Any] | None
    ) -> Stream:
        started = self._start(call, max_duration, encode_chat_request, output)
        return Stream(started.parts(self._parts(started)), started.collector)

    def _parts(self, started: Started) -> Iterator[StreamPart]:
        deadline = Deadline.start(started.limit)  # when iteration starts: nothing sent before
        yield from opening(started.collector, started.warnings)
        request, meter = chat_request(started.body, deadline)
        yield from http_parts(self._http, request, meter, ChatProtocol(started.collector))

    def warmup(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> WarmupResult:
        """Validate ``call``; send nothing. Chat Completions has no warm-up request.

        Like a Responses warm-up over HTTP, the result says ``transport="http"`` and
        nothing is billed.
        """
        output = schema_of(output_type)
        started = self._start(call, max_duration, encode_chat_request, output, "warmup")
        return started.warmup(WarmupResult.skipped)
