"""The seam between models and transports.

A transport takes a `TransportRequest` and returns a `PayloadStream`: the JSON text of
each server event, in order, and nothing else. It never parses events; the protocol
decides when a response is over. The arrows point one way: transports do not import
``llmkit.openai``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["PayloadStream", "TransportRequest"]


@dataclass(frozen=True, slots=True)
class TransportRequest:
    """One request: ``path`` below the base URL (``/responses``), a JSON-ready ``body``."""

    path: str
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class PayloadStream(Protocol):
    """Server event payloads as text. Closing it releases the connection."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...

    @property
    def bytes_sent(self) -> int:
        """Bytes of request body written to the server."""
        ...
