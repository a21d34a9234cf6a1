"""The async loop between a payload stream and an event protocol.

The twin of `run_protocol`: every decision (stamping, redaction, the partial response
on an error, what is folded where) is `ProtocolRun`'s; this loop only awaits payloads
and hands parts on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

from llmkit._core.run import EventProtocol, Meter, ProtocolRun, opening, stamp_unsent
from llmkit.exceptions import LLMKitError
from llmkit.stream import Collector, StreamPart
from llmkit.transports.base import AsyncPayloadOpener, AsyncPayloadStream, TransportRequest

__all__ = ["Parts", "aopen_stamped", "arun_protocol", "http_parts"]

Parts = AsyncGenerator[StreamPart, None]


async def aopen_stamped(
    open_payloads: Callable[[], Awaitable[AsyncPayloadStream]], meter: Meter, collector: Collector
) -> AsyncPayloadStream:
    """Open a payload stream; an error before any event still says how it was sent."""
    try:
        return await open_payloads()
    except LLMKitError as exc:
        stamp_unsent(exc, meter, collector)
        raise


async def arun_protocol(
    payloads: AsyncPayloadStream, meter: Meter, protocol: EventProtocol
) -> AsyncGenerator[StreamPart, None]:
    """Feed ``payloads`` to ``protocol`` until it is done; yield parts with metadata.

    The payload stream is closed on every exit, including cancellation and an
    abandoned generator (once it is closed).
    """
    run = ProtocolRun(payloads, meter, protocol)
    try:
        async for payload in payloads:
            for part in run.receive(payload):
                yield part
            if protocol.done:
                return
        for part in run.finish():
            yield part
    except LLMKitError as exc:
        run.failed(exc)
        raise
    finally:
        await payloads.aclose()


async def http_parts(
    http: AsyncPayloadOpener,
    prepare: Callable[[], tuple[TransportRequest, Meter]],
    protocol: EventProtocol,
    warnings: tuple[str, ...] = (),
) -> Parts:
    """One request over an HTTP transport, after the call's `Warnings` (`opening`)."""
    for part in opening(protocol.collector, warnings):
        yield part
    request, meter = prepare()  # when iteration starts: the meter times from here
    payloads = await aopen_stamped(lambda: http.open(request), meter, protocol.collector)
    async with aclosing(arun_protocol(payloads, meter, protocol)) as parts:
        async for part in parts:
            yield part
