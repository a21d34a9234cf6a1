"""`ResponsesModel`: the short loop between a transport and `ResponsesProtocol`.

The loop feeds payloads to the protocol and yields its parts; the protocol decides when
the response is over. Everything the loop adds is bookkeeping a caller asked for in
`ResponseMetadata`: transport, input mode, bytes and items sent, timings.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any, Literal, Protocol

from llmkit.exceptions import LLMKitError
from llmkit.messages import Call, ResponseMetadata, Usage, WarmupResult
from llmkit.model import LanguageModel
from llmkit.openai._encode import encode_request
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import Finish, Stream, StreamPart, Warnings
from llmkit.transports.base import PayloadStream, TransportRequest

__all__ = ["ResponsesModel"]

RESPONSES_PATH = "/responses"


class PayloadOpener(Protocol):
    """What the model needs of a transport: open one request's payload stream."""

    def open(self, request: TransportRequest) -> PayloadStream: ...


@dataclasses.dataclass(slots=True)
class _Meter:
    """Timing and request facts of one response, for `ResponseMetadata`."""

    transport: Literal["http", "websocket"]
    input_mode: Literal["full", "incremental"]
    input_items_sent: int
    started: float = dataclasses.field(default_factory=time.perf_counter)
    first_token: float | None = None
    bytes_sent: int = 0
    connection_reused: bool = False
    fallback_reason: str | None = None

    def apply(self, metadata: ResponseMetadata) -> ResponseMetadata:
        now = time.perf_counter()
        return dataclasses.replace(
            metadata,
            transport=self.transport,
            input_mode=self.input_mode,
            input_items_sent=self.input_items_sent,
            bytes_sent=self.bytes_sent,
            connection_reused=self.connection_reused,
            fallback_reason=self.fallback_reason,
            time_to_first_token=None
            if self.first_token is None
            else self.first_token - self.started,
            duration=now - self.started,
        )


def run_protocol(
    payloads: PayloadStream, meter: _Meter, protocol: ResponsesProtocol
) -> Iterator[StreamPart]:
    """Feed ``payloads`` to ``protocol`` until it is done; yield parts with metadata.

    The payload stream is closed on every exit, including an abandoned generator.
    """
    try:
        for payload in payloads:
            for part in protocol.receive(payload):
                if meter.first_token is None and not isinstance(part, Warnings | Finish):
                    meter.first_token = time.perf_counter()
                if isinstance(part, Finish):
                    meter.bytes_sent = payloads.bytes_sent
                    part = dataclasses.replace(part, metadata=meter.apply(part.metadata))
                yield part
            if protocol.done:
                return
        yield from protocol.finish()
    except LLMKitError as exc:
        meter.bytes_sent = payloads.bytes_sent
        if exc.partial is not None:
            exc.partial = dataclasses.replace(
                exc.partial, metadata=meter.apply(exc.partial.metadata)
            )
        raise
    finally:
        payloads.close()


class ResponsesModel(LanguageModel):
    """An OpenAI Responses API model over HTTP server-sent events."""

    provider = "openai"

    def __init__(self, model_id: str, *, http: PayloadOpener) -> None:
        self.model_id = model_id
        self._http = http

    def stream(self, call: Call) -> Stream:
        encoded = encode_request(self.model_id, call)
        return Stream(self._http_parts(encoded.body, encoded.warnings))

    def _http_parts(self, body: dict[str, Any], warnings: tuple[str, ...]) -> Iterator[StreamPart]:
        if warnings:
            yield Warnings(warnings)
        meter = _Meter("http", "full", len(body["input"]))
        payloads = self._http.open(TransportRequest(RESPONSES_PATH, {**body, "stream": True}))
        yield from run_protocol(payloads, meter, ResponsesProtocol())

    def warmup(self, call: Call) -> WarmupResult:
        """Over HTTP there is nothing to warm: validate ``call`` and return at once.

        A warm-up is never turned into a billed HTTP generation.
        """
        encode_request(self.model_id, call)
        return WarmupResult(response_id=None, usage=Usage(), transport="http")
