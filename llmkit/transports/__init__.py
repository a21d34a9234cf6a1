"""Transports: framing only. A request body goes out, JSON text payloads come back."""

from llmkit.transports.base import PayloadStream, TransportRequest

__all__ = ["PayloadStream", "TransportRequest"]
