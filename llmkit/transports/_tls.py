"""TLS: one SSL context for HTTP and both WebSocket transports.

httpx, websocket-client and websockets each build their own default context, and only
httpx's honours ``httpx.Client(verify=...)``: with a private CA every WebSocket connect
failed and each call silently went over HTTP. So the provider resolves one
`ssl.SSLContext` here and hands the same object to the httpx client it creates and to
both WebSocket transports.

``verify`` means what it means in httpx: True verifies with httpx's default CA bundle
(certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), a path names a CA bundle file or
directory, an `ssl.SSLContext` is used as it is, and False turns verification off.
With the caller's ``http_client`` the client's own settings serve HTTP, and WebSocket
takes the client's SSL context when it can be found (httpx's own transports keep it;
a custom transport may not): then ``verify`` sets WebSocket's only.
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import TypeAlias

import httpx

from llmkit.exceptions import UsageError

__all__ = ["Verify", "client_ssl_context", "http11_only", "ssl_context", "tls_contexts"]

Verify: TypeAlias = bool | str | os.PathLike[str] | ssl.SSLContext

logger = logging.getLogger("llmkit")


def ssl_context(verify: Verify) -> ssl.SSLContext:
    """The SSL context ``verify`` means, in httpx's terms.

    A path is loaded here rather than handed to httpx, which deprecates ``verify=<str>``.

    Raises:
        UsageError: ``verify`` is of another type, or its CA bundle cannot be loaded.
    """
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, bool):
        return httpx.create_ssl_context(verify=verify)
    if isinstance(verify, str | os.PathLike):
        path = os.fspath(verify)
        try:
            if os.path.isdir(path):
                return ssl.create_default_context(capath=path)
            return ssl.create_default_context(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"verify: cannot load CA certificates from {path!r} ({type(exc).__name__}: {exc})"
            ) from None
    raise UsageError(
        "verify must be True, False, a CA bundle path or an ssl.SSLContext, "
        f"not {type(verify).__name__}"
    )


def http11_only(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context``, offering only HTTP/1.1 over ALPN; call it right before each connect.

    A WebSocket upgrade is an HTTP/1.1 request, but a context shared with an httpx
    client with ``http2=True`` offers h2: httpcore sets the ALPN list on the context
    before each of its own connects, as this does before each WebSocket connect.
    """
    context.set_alpn_protocols(["http/1.1"])
    return context


def client_ssl_context(client: httpx.Client | httpx.AsyncClient, url: str) -> ssl.SSLContext | None:
    """The SSL context ``client`` uses for ``url``, or None when it cannot be found.

    httpx keeps no public handle on it: its default transports hand it to their
    httpcore pool, which stores it as ``_ssl_context`` (httpx 0.27 and 0.28 alike). A
    mounted or custom transport, or another layout, gives None rather than a guess.
    """
    try:
        transport = client._transport_for_url(httpx.URL(url))
    except Exception:  # a private method: its absence or failure means "not found"
        return None
    if not isinstance(transport, httpx.HTTPTransport | httpx.AsyncHTTPTransport):
        return None
    context = getattr(getattr(transport, "_pool", None), "_ssl_context", None)
    return context if isinstance(context, ssl.SSLContext) else None


def tls_contexts(
    verify: Verify | None,
    client: httpx.Client | httpx.AsyncClient | None,
    url: str,
    *,
    websocket: bool,
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """The SSL contexts of a provider: for the httpx client llmkit creates (None when
    the caller passed ``client``) and for WebSocket mode (None without it).

    ``verify`` None means the default: True, or ``client``'s own context for WebSocket.

    Raises:
        UsageError: ``verify`` is invalid, or given with ``client`` but without
            WebSocket mode (where it would change nothing).
    """
    if client is None:
        context = ssl_context(True if verify is None else verify)
        return context, context if websocket else None
    if not websocket:
        if verify is not None:
            raise UsageError(
                "verify applies to the http_client llmkit creates and to WebSocket mode; "
                "with your own http_client set TLS on it: httpx.Client(verify=...)"
            )
        return None, None
    if verify is not None:
        return None, ssl_context(verify)
    found = client_ssl_context(client, url)
    if found is None:
        logger.debug(
            "the SSL context of http_client was not found; WebSocket verifies with the "
            "default CA bundle (pass verify= to set it)"
        )
        return None, ssl_context(True)
    return None, found
