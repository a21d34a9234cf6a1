"""The seam between models and transports: every protocol the two meet, declared once.

An HTTP transport (`PayloadOpener`) takes a `TransportRequest` and returns a
`PayloadStream`: the JSON text of each server event, in order, and nothing else. A
WebSocket transport (`ConnectionOpener`) opens a `Connection`; a frame sent on it is
answered by a `FramePayloads` stream of the same kind. Each has an asyncio twin. No
transport parses events: the protocol decides when a response is over. The arrows
point one way: transports import no provider package and no protocol.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from llmkit._deadline import Deadline

__all__ = [
    "MAX_EVENT_SIZE",
    "AsyncConnection",
    "AsyncConnectionOpener",
    "AsyncFramePayloads",
    "AsyncPayloadOpener",
    "AsyncPayloadStream",
    "Connection",
    "ConnectionBase",
    "ConnectionOpener",
    "FrameCount",
    "FramePayloads",
    "LaneEnd",
    "PayloadOpener",
    "PayloadFacts",
    "PayloadStream",
    "TransportRequest",
    "join_url",
    "json_text",
    "websocket_url",
]

MAX_EVENT_SIZE = 64 * 1024 * 1024
"""Size one event may have (SSE characters, WebSocket frame bytes): far above any real
response, far below a memory risk. A larger one is a `ProtocolError`."""


@dataclass(frozen=True, slots=True)
class TransportRequest:
    """One request: ``path`` below the base URL (``/responses``), a JSON-ready ``body``,
    and the call's `Deadline` (None: no ``max_duration``), which every wait honours."""

    path: str
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    deadline: Deadline | None = None


class PayloadFacts(Protocol):
    """What every payload stream, sync or async, tells about its request."""

    @property
    def bytes_sent(self) -> int:
        """Bytes of request body written to the server."""
        ...

    @property
    def secrets(self) -> tuple[str, ...]:
        """What to redact from server text that reaches an exception (API keys)."""
        ...


class PayloadStream(PayloadFacts, Protocol):
    """Server event payloads as text. Closing it releases the connection."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class AsyncPayloadStream(PayloadFacts, Protocol):
    """`PayloadStream` for asyncio: ``async for`` and ``await aclose()``."""

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class PayloadOpener(Protocol):
    """An HTTP transport, as a model sees it: open one request's payload stream."""

    @property
    def closed(self) -> bool:
        """Whether the provider closed it: its models then refuse every call."""
        ...

    def open(self, request: TransportRequest) -> PayloadStream: ...


class AsyncPayloadOpener(Protocol):
    """`PayloadOpener` for asyncio."""

    @property
    def closed(self) -> bool:
        """Whether the provider closed it: its models then refuse every call."""
        ...

    async def open(self, request: TransportRequest) -> AsyncPayloadStream: ...


class FrameCount(Protocol):
    """A payload stream that counts the frames it received."""

    received: int


class FramePayloads(PayloadStream, FrameCount, Protocol):
    """The payloads of one response on a WebSocket connection."""

    def sent(self, bytes_sent: int) -> None:
        """The request went out, ``bytes_sent`` long (for the response's metadata)."""
        ...


class AsyncFramePayloads(AsyncPayloadStream, FrameCount, Protocol):
    """`FramePayloads` for asyncio."""

    def sent(self, bytes_sent: int) -> None: ...


@dataclass(frozen=True, slots=True)
class LaneEnd:
    """How a connection tells a response's end, which only its protocol knows.

    When the payload stream of a lane is closed before ``ended()`` (the consumer gave
    up, or the wait for a frame ran out), the response may still be streaming: its
    frames are discarded until one ``is_end`` calls its last, then the lane is free
    again and ``drained`` is called (from whichever task or thread read that frame).
    """

    ended: Callable[[], bool]
    is_end: Callable[[str], bool]
    drained: Callable[[], None]
    answered: Callable[[str], None] | None = None
    """Called with the response's first frame (None: not needed; a capability probe
    reads the lane its answer came on)."""


class ConnectionBase(Protocol):
    """What the pure WebSocket decisions need of a connection, sync or async."""

    @property
    def age(self) -> float:
        """Seconds since it was opened."""
        ...

    @property
    def connected(self) -> bool:
        """Whether it is open and has not failed."""
        ...

    def close(self) -> None:
        """Close at once, awaiting nothing (also from a cancelled task)."""
        ...


class Connection(ConnectionBase, Protocol):
    """An open WebSocket connection: send a frame, then read its response's payloads."""

    def send_text(self, text: str) -> int:
        """Send one text frame; returns its size in bytes."""
        ...

    def payloads(self, bytes_sent: int, deadline: Deadline | None) -> FramePayloads:
        """The payloads answering the frame just sent (``bytes_sent`` long)."""
        ...

    def receive(
        self, stream_id: str | None, deadline: Deadline | None, end: LaneEnd
    ) -> FramePayloads:
        """The payloads of lane ``stream_id`` (None: the default lane), registered
        before its request is sent (then `FramePayloads.sent`). Other lanes' frames go
        to their own streams; closing this one before ``end.ended()`` drains the lane."""
        ...

    def probe(self) -> bool:
        """Whether the connection is still open, checked without blocking."""
        ...


class AsyncConnection(ConnectionBase, Protocol):
    """`Connection` for asyncio."""

    async def send_text(self, text: str) -> int: ...

    def payloads(self, bytes_sent: int, deadline: Deadline | None) -> AsyncFramePayloads: ...

    def receive(
        self, stream_id: str | None, deadline: Deadline | None, end: LaneEnd
    ) -> AsyncFramePayloads: ...

    async def probe(self) -> bool: ...


class ConnectionOpener(Protocol):
    """A WebSocket transport: opens connections within a call's deadline.

    Raises `ConnectError`, `Timeout`, or an `APIStatusError` for a refused upgrade.
    """

    def connect(self, deadline: Deadline | None) -> Connection: ...

    def close(self) -> None:
        """Release what the transport holds besides its connections (a keepalive thread)."""
        ...


class AsyncConnectionOpener(Protocol):
    """`ConnectionOpener` for asyncio."""

    async def connect(self, deadline: Deadline | None) -> AsyncConnection: ...


def join_url(base_url: str, path: str) -> str:
    """``path`` appended to the path of ``base_url``, its query kept (Azure's api-version)."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path))


def websocket_url(base_url: str, path: str = "/responses") -> str:
    """The WebSocket URL for ``base_url``: the scheme swapped, ``path`` appended.

    ``https://host/v1?x=1`` becomes ``wss://host/v1/responses?x=1``, exactly as HTTP
    requests append their path, so proxies and custom bases work the same on both.
    """
    parts = urlsplit(join_url(base_url, path))
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme))


def json_text(body: Any) -> str:
    """Compact JSON that always encodes as UTF-8.

    Non-ASCII text stays as is (smaller), except when a string holds a lone surrogate
    (valid in JSON, as a model may stream one), which only an ``\\u`` escape can carry.
    """
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, separators=(",", ":"))
    return text
