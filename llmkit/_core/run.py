"""The loop between a payload stream and an event protocol, shared by every transport.

The protocol decides when the response is over; the loop only feeds it, stamps the
`Finish` part (and the partial response of an exception) with `ResponseMetadata`, and
closes the payload stream on every exit.

Who folds: the protocol folds the parts it makes into the call's `Collector`
(``protocol.collector``, one per call: a model makes it and gives it to each protocol of
the call); the loop folds the call's `Warnings` first (`opening`) and each `Finish` once
stamped, as it hands it on. Nothing else folds: the `Stream` reads that collector, and
an error's ``partial`` is built from it (`llmkit.stream.give_partial`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, Protocol

from llmkit.exceptions import LLMKitError, redact_error
from llmkit.messages import ResponseMetadata
from llmkit.stream import Collector, Finish, StreamPart, Warnings, give_partial
from llmkit.transports.base import PayloadFacts, PayloadOpener, PayloadStream, TransportRequest

__all__ = [
    "EventProtocol",
    "Meter",
    "ProtocolRun",
    "http_parts",
    "open_stamped",
    "opening",
    "run_protocol",
    "stamp_unsent",
]


class EventProtocol(Protocol):
    """A sans-I/O protocol (`llmkit._core.protocol.ProtocolBase`): `ResponsesProtocol`
    or `ChatProtocol`."""

    @property
    def done(self) -> bool: ...

    @property
    def collector(self) -> Collector: ...

    @property
    def final(self) -> Finish | None: ...

    def receive(self, payload: str | bytes) -> list[StreamPart]: ...

    def finish(self) -> list[StreamPart]: ...

    def metadata(self) -> ResponseMetadata: ...


def opening(collector: Collector, warnings: tuple[str, ...]) -> list[StreamPart]:
    """The parts a call's stream opens with, folded into its ``collector``: a `Warnings`
    part when there are warnings."""
    if not warnings:
        return []
    part = Warnings(warnings)
    collector.add(part)
    return [part]


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
    stream_id: str | None = None
    previous_response_id: str | None = None

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
            stream_id=self.stream_id,
            previous_response_id=self.previous_response_id,
            time_to_first_token=None
            if self.first_token is None
            else self.first_token - self.started,
            duration=now - self.started,
        )


def open_stamped(
    open_payloads: Callable[[], PayloadStream], meter: Meter, collector: Collector
) -> PayloadStream:
    """Open a payload stream; an error before any event still says how it was sent."""
    try:
        return open_payloads()
    except LLMKitError as exc:
        stamp_unsent(exc, meter, collector)
        raise


def stamp_unsent(exc: LLMKitError, meter: Meter, collector: Collector) -> None:
    """Give an error raised before any event a partial that says how it was sent."""
    if exc.partial is None:
        give_partial(exc, collector, meter.apply(ResponseMetadata()))


class ProtocolRun:
    """What the loop decides about each payload, without the loop: stamping and errors.

    The sync loop (`run_protocol`) and the async one (`arun_protocol`) only move
    payloads in and parts out; everything they decide is here, once.
    """

    __slots__ = ("collector", "meter", "payloads", "protocol")

    def __init__(self, payloads: PayloadFacts, meter: Meter, protocol: EventProtocol) -> None:
        self.payloads = payloads
        self.meter = meter
        self.protocol = protocol
        self.collector = protocol.collector

    def receive(self, payload: str | bytes) -> Iterable[StreamPart]:
        """The parts of one payload, stamped where needed."""
        parts = self.protocol.receive(payload)
        # Most parts are deltas after the first token; only the first one and the
        # `Finish` (always the last part, when there is one) need stamping.
        if self.meter.first_token is None or (parts and type(parts[-1]) is Finish):
            return self._stamped(parts)
        return parts

    def finish(self) -> Iterable[StreamPart]:
        """The parts the protocol gives when the payloads end before it is done."""
        return self._stamped(self.protocol.finish())

    def _stamped(self, parts: list[StreamPart]) -> Iterable[StreamPart]:
        parts = [_stamp(part, self.meter, self.payloads) for part in parts]
        if parts and type(parts[-1]) is Finish:
            return self._handing_out(parts)
        return parts

    def _handing_out(self, parts: list[StreamPart]) -> Iterator[StreamPart]:
        """``parts``, the last a stamped `Finish`, folded as it is handed on: a stream is
        finished only once its consumer has the `Finish`."""
        *rest, finish = parts
        yield from rest
        self.collector.add(finish)
        yield finish

    def failed(self, exc: LLMKitError) -> None:
        """Redact ``exc`` and give it a stamped partial response."""
        redact_error(exc, self.payloads.secrets)  # server text (error events) can echo a key
        self.meter.bytes_sent = self.payloads.bytes_sent
        protocol = self.protocol
        metadata = self.meter.apply(protocol.metadata())
        give_partial(exc, self.collector, metadata, protocol.final)


def run_protocol(
    payloads: PayloadStream, meter: Meter, protocol: EventProtocol
) -> Iterator[StreamPart]:
    """Feed ``payloads`` to ``protocol`` until it is done; yield parts with metadata.

    The payload stream is closed on every exit, including an abandoned generator.
    """
    run = ProtocolRun(payloads, meter, protocol)
    receive = run.receive
    try:
        for payload in payloads:
            yield from receive(payload)
            if protocol.done:
                return
        yield from run.finish()
    except LLMKitError as exc:
        run.failed(exc)
        raise
    finally:
        payloads.close()


def http_parts(
    http: PayloadOpener, request: TransportRequest, meter: Meter, protocol: EventProtocol
) -> Iterator[StreamPart]:
    """One request over an HTTP transport: open its payload stream, run ``protocol``."""
    payloads = open_stamped(lambda: http.open(request), meter, protocol.collector)
    yield from run_protocol(payloads, meter, protocol)


def _stamp(part: StreamPart, meter: Meter, payloads: PayloadFacts) -> StreamPart:
    if meter.first_token is None and not isinstance(part, Warnings | Finish):
        meter.first_token = time.perf_counter()
    if isinstance(part, Finish):
        meter.bytes_sent = payloads.bytes_sent
        part = dataclasses.replace(part, metadata=meter.apply(part.metadata))
    return part
