"""The origin rule for redirects, shared by the HTTP and WebSocket transports.

Credentials travel in headers (``Authorization``, Azure's ``api-key``, a gateway's own),
and an HTTP client strips at most ``Authorization`` when a redirect leaves the host. So
llmkit follows a redirect only within the origin (scheme, host, port) of the URL it was
configured with, and at most `MAX_REDIRECTS` times; everything else is refused.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

__all__ = ["MAX_REDIRECTS", "origin", "same_origin_redirect"]

MAX_REDIRECTS = 3

# ws/wss are http/https upgraded: one origin, whichever transport asks.
_SCHEMES = {"ws": "http", "wss": "https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """The (scheme, host, port) of ``url``; ``ws``/``wss`` count as ``http``/``https``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    scheme = _SCHEMES.get(scheme, scheme)
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # not a port number: an origin no valid URL has
        port = -1
    return scheme, (parts.hostname or "").lower(), port


def same_origin_redirect(origin_url: str, current: str, location: str) -> str | None:
    """Where a redirect from ``current`` leads, or None when it leaves the origin.

    The origin is that of ``origin_url``, the URL the caller configured (not of the
    previous hop); a relative ``Location`` resolves against ``current`` and stays in it.
    """
    target = urljoin(current, location)
    return target if origin(target) == origin(origin_url) else None
