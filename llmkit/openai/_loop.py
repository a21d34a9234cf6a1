"""The loop between a payload stream and an event protocol, shared by every transport.

The protocol decides when the response is over; the loop only feeds it, stamps the
`Finish` part (and any partial response on an exception) with `ResponseMetadata`, and
closes the payload stream on every exit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Literal, Protocol

from llmkit.exceptions import LLMKitError, redact_error
from llmkit.messages import Response, ResponseMetadata
from llmkit.stream import Finish, StreamPart, Warnings
from llmkit.transports.base import PayloadStream

__all__ = ["EventProtocol", "Meter", "open_stamped", "run_protocol"]


class EventProtocol(Protocol):
    """A sans-I/O protocol: `ResponsesProtocol` or `ChatProtocol`."""

    @property
    def done(self) -> bool: ...

    def receive(self, payload: str | bytes) -> list[StreamPart]: ...

    def finish(self) -> list[StreamPart]: ...

    def partial(self) -> Response: ...


@dataclasses.dataclass(slots=True)
class Meter:
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


def open_stamped(open_payloads: Callable[[], PayloadStream], meter: Meter) -> PayloadStream:
    """Open a payload stream; an error before any event still says how it was sent."""
    try:
        return open_payloads()
    except LLMKitError as exc:
        if exc.partial is None:
            exc.partial = Response(metadata=meter.apply(ResponseMetadata()))
        raise


def run_protocol(
    payloads: PayloadStream, meter: Meter, protocol: EventProtocol
) -> Iterator[StreamPart]:
    """Feed ``payloads`` to ``protocol`` until it is done; yield parts with metadata.

    The payload stream is closed on every exit, including an abandoned generator.
    """
    try:
        for payload in payloads:
            for part in protocol.receive(payload):
                # Most parts are deltas after the first token: one type check for them.
                if meter.first_token is None or type(part) is Finish:
                    part = _stamp(part, meter, payloads)
                yield part
            if protocol.done:
                return
        for part in protocol.finish():
            yield _stamp(part, meter, payloads)
    except LLMKitError as exc:
        redact_error(exc, payloads.secrets)  # server text (error events) can echo a key
        meter.bytes_sent = payloads.bytes_sent
        # Errors of the connection carry no partial: the protocol's has the response id.
        partial = exc.partial if exc.partial is not None else protocol.partial()
        exc.partial = dataclasses.replace(partial, metadata=meter.apply(partial.metadata))
        raise
    finally:
        payloads.close()


def _stamp(part: StreamPart, meter: Meter, payloads: PayloadStream) -> StreamPart:
    if meter.first_token is None and not isinstance(part, Warnings | Finish):
        meter.first_token = time.perf_counter()
    if isinstance(part, Finish):
        meter.bytes_sent = payloads.bytes_sent
        part = dataclasses.replace(part, metadata=meter.apply(part.metadata))
    return part
