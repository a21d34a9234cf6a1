"""Transports: framing only. A request body goes out, JSON text payloads come back."""

from llmkit.transports._retry import RetryPolicy
from llmkit.transports.base import PayloadStream, TransportRequest
from llmkit.transports.http import HTTPPayloadStream, HTTPTransport

__all__ = ["HTTPPayloadStream", "HTTPTransport", "PayloadStream", "RetryPolicy", "TransportRequest"]
