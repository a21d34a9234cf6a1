"""Server-sent events to ``data`` payloads, block by block (sans-I/O).

Per-line decoding costs more than the rest of llmkit's work on an event, so the common
shape is taken whole: the text is cut into blocks at blank lines, and a block of
``event:`` and ``data:`` lines (what OpenAI and every compatible server send) yields its
data directly. Any other block (comments, ``id:``/``retry:`` fields, several ``data:``
lines, a field without a space after the colon) goes through httpx-sse's decoder, which
implements the specification; so does the whole rest of a stream once a ``\\r`` line
ending shows up. Either way the payloads are exactly the specification's.

Cutting at blank lines only looks at new text, so one huge event costs linear time, and
an event larger than ``max_event_size`` characters is refused rather than buffered.
"""

from __future__ import annotations

from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from llmkit.exceptions import ProtocolError
from llmkit.transports.base import MAX_EVENT_SIZE

__all__ = ["SSEParser"]


class SSEParser:
    """Feed decoded text chunks, get the non-empty ``data`` of each complete event."""

    __slots__ = ("_decoder", "_lines", "_max", "_pending", "_pending_size")

    def __init__(self, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self._max = max_event_size
        self._pending: list[str] = []
        self._pending_size = 0
        self._decoder = SSEDecoder()
        self._lines: SSELineDecoder | None = None  # set once a \r is seen: spec path only

    def feed(self, text: str) -> list[str]:
        """Take the next chunk of the body; return the data of the events it completed.

        Raises:
            ProtocolError: an event grew beyond ``max_event_size``.
        """
        if self._lines is None and "\r" in text:
            self._lines = SSELineDecoder()
            text, self._pending, self._pending_size = "".join(self._pending) + text, [], 0
        if self._lines is not None:
            done = self._spec_lines(self._lines.decode(text))
            # What the specification path holds for the event being read: its data lines
            # and the unfinished line.
            held = sum(map(len, self._decoder._data)) + sum(map(len, self._lines.buffer))
            if held > self._max:
                raise ProtocolError(f"a server-sent event exceeded {self._max} characters")
            return done
        pending = self._pending
        boundary = "\n\n" in text or (
            pending and pending[-1].endswith("\n") and text.startswith("\n")
        )
        if not boundary:
            pending.append(text)
            self._pending_size += len(text)
            if self._pending_size > self._max:
                raise ProtocolError(f"a server-sent event exceeded {self._max} characters")
            return []
        if pending:
            text = "".join(pending) + text
            pending.clear()
        *blocks, rest = text.split("\n\n")
        if rest:
            pending.append(rest)
        self._pending_size = len(rest)
        payloads: list[str] = []
        for block in blocks:
            data = self._block(block)
            if data:
                payloads.append(data)
        return payloads

    def flush(self) -> list[str]:
        """End of the body. An event not closed by a blank line is dropped, as the
        specification says, so a cut stream never passes for a complete one."""
        self._pending.clear()
        if self._lines is not None:
            return self._spec_lines(self._lines.flush())
        return []

    def _block(self, block: str) -> str | None:
        lines = block.split("\n")
        data: str | None = None
        for line in lines:
            if line.startswith("data: ") and data is None:
                data = line[6:]
            elif not line.startswith("event: "):
                return self._spec_block(lines)
        return data

    def _spec_block(self, lines: list[str]) -> str | None:
        event: ServerSentEvent | None = None
        for line in [*lines, ""]:
            event = self._decoder.decode(line) or event
        return event.data if event is not None else None

    def _spec_lines(self, lines: list[str]) -> list[str]:
        payloads = []
        for line in lines:
            event = self._decoder.decode(line)
            if event is not None and event.data:
                payloads.append(event.data)
        return payloads
