"""The async loop between a payload stream and an event protocol.

The twin of `run_protocol`: every decision (stamping, redaction, the partial response
on an error) is `ProtocolRun`'s; this loop only awaits payloads and hands parts on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from llmkit.exceptions import LLMKitError
from llmkit.openai._loop import EventProtocol, Meter, ProtocolRun, stamp_unsent
from llmkit.stream import StreamPart
from llmkit.transports.base import AsyncPayloadStream

__all__ = ["aopen_stamped", "arun_protocol"]


async def aopen_stamped(
    open_payloads: Callable[[], Awaitable[AsyncPayloadStream]], meter: Meter
) -> AsyncPayloadStream:
    """Open a payload stream; an error before any event still says how it was sent."""
    try:
        return await open_payloads()
    except LLMKitError as exc:
        stamp_unsent(exc, meter)
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
