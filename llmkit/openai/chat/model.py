"""`ChatModel`: encode a call, stream it over HTTP, run the shared protocol loop."""

from __future__ import annotations

from collections.abc import Iterator

from llmkit._core.calls import start_call
from llmkit._core.run import Meter, http_parts, opening
from llmkit._deadline import Deadline
from llmkit.messages import Call, WarmupResult
from llmkit.model import LanguageModel
from llmkit.openai.chat._encode import encode_chat_request
from llmkit.openai.chat.protocol import ChatProtocol
from llmkit.stream import Collector, Stream, StreamPart
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


class ChatModel(LanguageModel):
    """An OpenAI Chat Completions model (or any compatible server), over HTTP SSE.

    The whole history is sent on every call. Same `Response`, parts and exceptions as
    the Responses path, so agent code runs unchanged on either. ``max_duration`` is the
    provider's default for a call's overall deadline.
    """

    provider = "openai"

    def __init__(
        self, model_id: str, *, http: PayloadOpener, max_duration: float | None = None
    ) -> None:
        self.model_id = model_id
        self._http = http
        self._max_duration = max_duration

    def stream(self, call: Call | str, *, max_duration: float | None = None) -> Stream:
        limit = start_call(self._http, max_duration, self._max_duration)
        encoded = encode_chat_request(self.model_id, call)
        collector = Collector()  # the call's one fold: the protocol's, read by the stream
        return Stream(self._parts(encoded.body, encoded.warnings, limit, collector), collector)

    def _parts(
        self,
        body: dict[str, object],
        warnings: tuple[str, ...],
        max_duration: float | None,
        collector: Collector,
    ) -> Iterator[StreamPart]:
        deadline = Deadline.start(max_duration)  # when iteration starts: nothing sent before
        yield from opening(collector, warnings)
        request, meter = chat_request(body, deadline)
        yield from http_parts(self._http, request, meter, ChatProtocol(collector))

    def warmup(self, call: Call | str, *, max_duration: float | None = None) -> WarmupResult:
        """Validate ``call``; send nothing. Chat Completions has no warm-up request.

        Like a Responses warm-up over HTTP, the result says ``transport="http"`` and
        nothing is billed.
        """
        start_call(self._http, max_duration, self._max_duration)
        encode_chat_request(self.model_id, call)
        return WarmupResult.skipped()
