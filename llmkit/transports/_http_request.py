"""How an HTTP-SSE transport prepares a request, with no I/O: shared by the sync and async shells.

`HTTPSettings` holds what a transport adds to every request (base URL, headers, timeout,
retry policy, what to redact) and encodes a `TransportRequest` once into a
`PreparedRequest` that every attempt resends unchanged. Which httpx client a transport
uses and whether it may still send are decided here too. The retrying send is
`llmkit.transports._http_send`; the response stream's facts are
`llmkit.transports._http_stream`.

httpx is imported for its types only: building a request does no I/O.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, TypeVar

import httpx

from llmkit._closing import closed_error
from llmkit._deadline import Deadline
from llmkit._headers import CREDENTIAL_HEADERS, check_headers
from llmkit.exceptions import UsageError, redact
from llmkit.transports._retry import RetryPolicy
from llmkit.transports.base import TransportRequest, join_url, json_text

__all__ = [
    "HTTPSettings",
    "PreparedRequest",
    "capped_timeout",
    "idle_timeout",
    "pick_client",
    "refuse_if_closed",
]

_ClientT = TypeVar("_ClientT", httpx.Client, httpx.AsyncClient)


def _header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """Collect credential values (`CREDENTIAL_HEADERS`) from ``headers``, with and without
    their auth scheme."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in CREDENTIAL_HEADERS:
            found.append(value)
            found.append(value.partition(" ")[2])  # "Bearer sk-..." -> "sk-..."
    return tuple(found)


def idle_timeout(timeout: float | httpx.Timeout | None) -> float:
    """The longest silence between two events that ``timeout`` allows (inf: no limit)."""
    read = timeout.read if isinstance(timeout, httpx.Timeout) else timeout
    return math.inf if read is None else read


def capped_timeout(timeout: float | httpx.Timeout | None, deadline: Deadline) -> httpx.Timeout:
    """``timeout`` with every part shortened to what ``deadline`` leaves now.

    Raises:
        Timeout: the deadline passed.
    """
    parts = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
    return httpx.Timeout(
        connect=deadline.cap(parts.connect),
        read=deadline.cap(parts.read),
        write=deadline.cap(parts.write),
        pool=deadline.cap(parts.pool),
    )


def pick_client(
    client: _ClientT | None,
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None,
    factory: Callable[..., _ClientT],
    *,
    verify: ssl.SSLContext | bool = True,
    proxy: httpx.Proxy | None = None,
    trust_env: bool = True,
) -> tuple[_ClientT, bool]:
    """The httpx client a transport uses, and whether it owns (and so closes) it.

    A caller's ``client`` is shared and stays open; without one, ``factory`` makes a
    client over ``transport`` (``httpx.MockTransport`` in tests) that verifies TLS as
    ``verify`` says, through ``proxy``, reading the environment as ``trust_env`` says.

    Raises:
        UsageError: Both ``client`` and ``transport`` were given, or ``client`` is not a
            ``factory`` (an ``httpx.AsyncClient`` for the blocking transport, say: it
            would fail only at the first request, with an unrelated message).
    """
    if client is not None and transport is not None:
        raise UsageError("pass either client or transport, not both")
    if client is not None and isinstance(factory, type) and not isinstance(client, factory):
        kind = type(client)
        raise UsageError(
            f"http_client must be an httpx.{factory.__name__}, not {kind.__module__}."
            f"{kind.__qualname__}: Provider takes an httpx.Client, AsyncProvider an "
            "httpx.AsyncClient"
        )
    if client is None:
        client = factory(transport=transport, verify=verify, proxy=proxy, trust_env=trust_env)
        return client, True
    return client, False


def refuse_if_closed(closed: bool, client: httpx.Client | httpx.AsyncClient) -> None:
    """Refuse a request of a closed transport, or over a caller's client closed since.

    A provider closes its transport but leaves a caller's client open, so the
    transport's own flag, not the client's state, says whether the provider is closed.

    Raises:
        UsageError: the transport (so the provider) is closed, or the client is.
    """
    if closed:
        raise closed_error()
    if client.is_closed:
        raise UsageError("the httpx client given as http_client is closed")


class PreparedRequest(NamedTuple):
    """One request as it goes out, encoded once and resent unchanged by every retry."""

    url: str
    body: bytes
    headers: httpx.Headers
    timeout: float | httpx.Timeout
    secrets: tuple[str, ...]
    deadline: Deadline | None = None

    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """A fresh ``httpx.Request`` for one attempt (building one does no I/O); its
        timeouts never reach past the deadline.

        Raises:
            Timeout: the deadline passed.
        """
        timeout = self.timeout
        if self.deadline is not None:
            timeout = capped_timeout(timeout, self.deadline)
        return client.build_request(
            "POST", self.url, content=self.body, headers=self.headers, timeout=timeout
        )


class HTTPSettings:
    """What a transport adds to every request, fixed when the transport is made."""

    __slots__ = ("base_url", "headers", "idle_timeout", "retry", "secrets", "timeout")

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy,
        secrets: Sequence[str],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = httpx.Headers(
            {"Content-Type": "application/json", "Accept": "text/event-stream"}
        )
        self.headers.update(check_headers(headers or {}))
        self.timeout = timeout
        self.idle_timeout = idle_timeout(timeout)
        self.retry = retry
        self.secrets = (*secrets, *_header_secrets(self.headers))

    def prepare(self, request: TransportRequest) -> PreparedRequest:
        """Encode ``request`` and merge its headers over the transport's (request wins).

        A credential in the request's own headers joins the secrets to redact.
        """
        headers = self.headers
        secrets = self.secrets
        if request.headers:
            headers = headers.copy()
            headers.update(check_headers(request.headers))
            secrets = (*secrets, *_header_secrets(request.headers))
        return PreparedRequest(
            join_url(self.base_url, request.path),
            json_text(request.body).encode(),
            headers,
            self.timeout,
            secrets,
            request.deadline,
        )

    def describe(self, owner: object) -> str:
        """The repr of a transport: its class and base URL, the base URL redacted."""
        return f"{type(owner).__name__}(base_url={redact(self.base_url, self.secrets)!r})"
