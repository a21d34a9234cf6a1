"""Server-sent events to ``data`` payloads, block by block (sans-I/O).

Per-line decoding costs more than the rest of llmkit's work on an event, so the common
shape is taken whole: the text is cut into blocks at blank lines, and a block of
``event:`` and ``data:`` lines (what OpenAI and every compatible server send) yields its
data directly. Any other block (comments, ``id:``/``retry:`` fields, several ``data:``
lines, a field without a space after the colon) goes through httpx-sse's decoder, which
implements the specification. ``\r\n`` and ``\r`` line endings are turned into ``\n``
first (a ``\r`` at the end of a chunk may pair with a ``\n`` starting the next), which
is the specification's own line splitting. Either way the payloads are exactly the
specification's.

Cutting at blank lines only looks at new text, so one huge event costs linear time.
Runs of blank lines are no-ops and are collapsed before cutting, so a body of nothing
but newlines (a decompression bomb expands to a gigabyte of them) costs a C-speed scan
rather than a Python call per line. And what may arrive without completing an event
with data is bounded: more than ``max_event_size`` characters (one oversized event, or
any mix of comments, blank lines and empty events) is refused rather than parsed on.
"""

from __future__ import annotations

import re

from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder

from llmkit.exceptions import ProtocolError
from llmkit.transports.base import MAX_EVENT_SIZE

__all__ = ["SSEParser"]

_BLANK_RUNS = re.compile("\n{3,}")


class SSEParser:
    """Feed decoded text chunks, get the non-empty ``data`` of each complete event."""

    __slots__ = ("_cr", "_decoder", "_max", "_pending", "_quiet")

    def __init__(self, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self._max = max_event_size
        self._pending: list[str] = []
        self._quiet = 0  # characters since the last event with data (pending included)
        self._decoder = SSEDecoder()
        self._cr = False  # the last chunk ended with \r: a leading \n completes it

    def feed(self, text: str) -> list[str]:
        """Take the next chunk of the body; return the data of the events it completed.

        Raises:
            ProtocolError: more than ``max_event_size`` characters arrived without an
                event with data (one event that large, or comments and blank lines).
        """
        if self._cr or "\r" in text:
            text = self._unify(text)
        pending = self._pending
        boundary = "\n\n" in text or (
            pending and pending[-1].endswith("\n") and text.startswith("\n")
        )
        self._quiet += len(text)
        if not boundary:
            pending.append(text)
            if self._quiet > self._max:
                raise self._too_much()
            return []
        if pending:
            text = "".join(pending) + text
            pending.clear()
        if "\n\n\n" in text:
            text = _BLANK_RUNS.sub("\n\n", text)
        *blocks, rest = text.split("\n\n")
        if rest:
            pending.append(rest)
        payloads: list[str] = []
        for block in blocks:
            if block:
                data = self._block(block)
                if data:
                    payloads.append(data)
        if payloads:
            self._quiet = len(rest)
        elif self._quiet > self._max:
            raise self._too_much()
        return payloads

    def _unify(self, text: str) -> str:
        """``text`` with ``\r\n`` and ``\r`` line endings as ``\n``."""
        if self._cr and text.startswith("\n"):
            text = text[1:]  # the \n of a \r\n split between two chunks
        if text:
            self._cr = text.endswith("\r")
        return text.replace("\r\n", "\n").replace("\r", "\n")

    def _too_much(self) -> ProtocolError:
        return ProtocolError(
            f"a server-sent event exceeded {self._max} characters "
            "(or that much arrived without an event with data)"
        )

    def flush(self) -> list[str]:
        """End of the body. An event not closed by a blank line is dropped, as the
        specification says, so a cut stream never passes for a complete one."""
        self._pending.clear()
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
