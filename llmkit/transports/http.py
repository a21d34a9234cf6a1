"""The HTTP-SSE transport: POST a JSON body, yield the ``data`` of each server-sent event.

Theory of operation. `HTTPTransport.open` serialises the body once, POSTs it with
``stream=True`` and looks at the status *before* touching the body: an error answer is
JSON, and handing it to an SSE reader would turn a clear 401 into "wrong content type"
(the httpx-sse trap). Error answers become `APIStatusError` subclasses. Connect failures
and retryable statuses (`llmkit.transports._retry`) are retried with backoff, and only
here, before a single event was read: once `HTTPPayloadStream` has yielded, the model has
run and a replay would run it again. Every httpx exception is mapped to the llmkit tree at
this boundary with ``raise ... from exc``.

Server text reaching an exception passes through `redact` first: error messages have been
seen echoing the API key that was rejected.
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from llmkit.exceptions import (
    APIStatusError,
    ConnectError,
    ConnectionClosed,
    ProtocolError,
    Timeout,
    TransportError,
    UsageError,
    redact,
    redact_tree,
    status_error,
)
from llmkit.transports._retry import RetryPolicy, should_retry_status
from llmkit.transports._sse import SSEParser
from llmkit.transports.base import TransportRequest, join_url, json_text

__all__ = ["HTTPPayloadStream", "HTTPTransport"]

# An error body is read only this far: it is for a message, not for storage, and a
# misbehaving proxy must not make the client buffer megabytes.
_ERROR_BODY_LIMIT = 64 * 1024
_SNIPPET_CHARS = 200
_MESSAGE_CHARS = 1000

# Failures that prove the request never reached the model, so sending it again is safe.
# RemoteProtocolError here means the server dropped the connection before any status line
# (typically a stale keep-alive connection).
_RETRYABLE_SEND_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)

# RetryPolicy is frozen, so every transport can share one default instance.
_DEFAULT_RETRY = RetryPolicy()

# Headers whose values are credentials; their values are redacted from every message.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})


def _header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """Collect credential values from ``headers``, with and without their auth scheme."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            found.append(value)
            found.append(value.partition(" ")[2])  # "Bearer sk-..." -> "sk-..."
    return tuple(found)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """Read at most about ``limit`` bytes of ``response``, then close it.

    A body that breaks off half-way still leaves the status to report, so read errors
    are swallowed here and the bytes that did arrive are kept.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    except httpx.RequestError:
        pass
    finally:
        response.close()
    return b"".join(chunks)[:limit]


def _error_fields(body: Any) -> dict[str, Any]:
    """Pick message, code, param and type out of an error body of any known shape.

    OpenAI nests them under ``error``; some gateways send them flat, or send
    ``{"error": "..."}``. The nested form wins, as in PROTOCOL.md §8.6. Anything else
    yields no fields and the caller falls back to the raw text.
    """
    fields: Any = body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            fields = error
        elif isinstance(error, str):
            fields = {"message": error}
    if not isinstance(fields, dict):
        return {}
    return {
        "message": _str_or_none(fields.get("message")),
        "code": _str_or_none(fields.get("code")),
        "param": _str_or_none(fields.get("param")),
        "error_type": _str_or_none(fields.get("type")),
    }


def _status_error(response: httpx.Response, secrets: Sequence[str]) -> APIStatusError:
    """Turn a non-2xx answer into the matching `APIStatusError`, redacted.

    The decoded body is redacted rather than the raw text alone, because a JSON escape
    (``\\/``) can hide a secret from a plain substring search.
    """
    raw = _read_bounded(response, _ERROR_BODY_LIMIT).decode("utf-8", "replace")
    text = redact(raw, secrets)
    body: Any
    try:
        body = redact_tree(json.loads(raw), secrets)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to keep
        body = text or None
    fields = _error_fields(body)
    message = fields.pop("message", None) or text.strip()[:_MESSAGE_CHARS]
    if not message:
        message = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    return status_error(
        response.status_code,
        message,
        request_id=response.headers.get("x-request-id"),
        headers={name: redact(value, secrets) for name, value in response.headers.items()},
        body=body,
        **fields,
    )


def _content_type_error(response: httpx.Response, secrets: Sequence[str]) -> ProtocolError:
    """Explain a 2xx answer that is not an event stream (e.g. ``stream`` was dropped)."""
    content_type = response.headers.get("content-type", "")
    snippet = _read_bounded(response, _SNIPPET_CHARS * 4).decode("utf-8", "replace")
    snippet = redact(snippet, secrets)[:_SNIPPET_CHARS]
    return ProtocolError(
        f"expected Content-Type text/event-stream, got {content_type!r}: {snippet!r}"
    )


def _send_error(exc: httpx.TransportError, secrets: Sequence[str]) -> TransportError:
    """Map an httpx failure that happened before any answer to the llmkit tree."""
    detail = redact(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"timed out before the server answered: {detail}")
    return ConnectError(f"could not get an answer from the server: {detail}")


def _is_event_stream(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").partition(";")[0]
    return "text/event-stream" in content_type.lower()


class HTTPPayloadStream:
    """The ``data`` of each server-sent event of one response, as text.

    Events with empty data (comments, keep-alive blocks) are skipped; a literal
    ``[DONE]`` is passed on because ending the response is the protocol's call.
    Iterate once. Closing releases the connection, and an abandoned or failed
    iteration closes it too.
    """

    __slots__ = ("_bytes_sent", "_response", "_secrets")

    def __init__(
        self, response: httpx.Response, *, bytes_sent: int, secrets: Sequence[str] = ()
    ) -> None:
        self._response = response
        self._bytes_sent = bytes_sent
        self._secrets = tuple(secrets)

    @property
    def bytes_sent(self) -> int:
        """Bytes of request body written to the server (the final attempt's body)."""
        return self._bytes_sent

    @property
    def secrets(self) -> tuple[str, ...]:
        """What to redact from server text that reaches an exception."""
        return self._secrets

    def __iter__(self) -> Iterator[str]:
        """Yield each event's data; map httpx failures to llmkit exceptions.

        Raises:
            Timeout: No bytes arrived within the read timeout.
            ConnectionClosed: The connection broke before the body ended.
            ProtocolError: The body is not a decodable event stream.
        """
        parser = SSEParser()
        try:
            if not _is_event_stream(self._response):
                raise _content_type_error(self._response, self._secrets)
            # SSE is UTF-8 whatever charset the header claims; bad bytes become U+FFFD.
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            for chunk in self._response.iter_bytes():
                yield from parser.feed(decoder.decode(chunk))
            yield from parser.feed(decoder.decode(b"", final=True))
            yield from parser.flush()
        except httpx.TimeoutException as exc:
            raise Timeout("timed out waiting for the next event") from exc
        except httpx.DecodingError as exc:
            raise ProtocolError("could not decode the response body") from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise ConnectionClosed("connection closed before the response finished") from exc
        finally:
            self._response.close()

    def close(self) -> None:
        """Release the connection. Safe to call more than once."""
        self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HTTPPayloadStream(status={self._response.status_code})"


class HTTPTransport:
    """POST requests to a Responses-style endpoint and stream back SSE payloads.

    Args:
        base_url: Prefix of every request URL; ``request.path`` is appended.
        headers: Sent with every request (authorization, organisation, ...). Values of
            credential headers are redacted from every error message.
        timeout: httpx timeout for every request this transport makes; it applies even to a
            caller's ``client`` so that the transport's setting always means something. The
            read timeout is the longest silence tolerated between two chunks.
        retry: When and how long to wait before resending a request that never started.
        secrets: Extra strings to redact from error messages (API keys).
        client: An httpx client to share; it stays open after `close`.
        transport: An httpx transport for the client this transport creates
            (``httpx.MockTransport`` in tests). Not allowed together with ``client``.
        sleep: Waits between retries; injectable so tests never really sleep.

    Raises:
        UsageError: Both ``client`` and ``transport`` were given.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy = _DEFAULT_RETRY,
        secrets: Sequence[str] = (),
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if client is not None and transport is not None:
            raise UsageError("pass either client or transport, not both")
        self._base_url = base_url.rstrip("/")
        self._headers = httpx.Headers(
            {"Content-Type": "application/json", "Accept": "text/event-stream"}
        )
        self._headers.update(headers or {})
        self._timeout = timeout
        self._retry = retry
        self._secrets = (*secrets, *_header_secrets(self._headers))
        self._owns_client = client is None
        self._client = httpx.Client(transport=transport) if client is None else client
        self._sleep = sleep

    def open(self, request: TransportRequest) -> HTTPPayloadStream:
        """Send ``request`` and return its event stream once a 2xx event stream answered.

        Returns:
            The payload stream; the caller must iterate or close it.

        Raises:
            APIStatusError: The server answered with an error status (after retries, for
                retryable ones); the subclass matches the status.
            ConnectError: No connection or no answer, after retries.
            Timeout: Connecting or waiting for the answer timed out.
            ProtocolError: A 2xx answer that is not ``text/event-stream``.
            UsageError: The transport was closed.
        """
        if self._client.is_closed:
            raise UsageError("this HTTPTransport is closed")
        body = json_text(request.body).encode()
        headers = self._headers
        secrets = self._secrets
        if request.headers:
            headers = headers.copy()
            headers.update(request.headers)
            secrets = (*secrets, *_header_secrets(request.headers))
        response = self._send_with_retries(
            join_url(self._base_url, request.path), body, headers, secrets
        )
        if not _is_event_stream(response):
            raise _content_type_error(response, secrets)
        return HTTPPayloadStream(response, bytes_sent=len(body), secrets=secrets)

    def _send_with_retries(
        self, url: str, body: bytes, headers: httpx.Headers, secrets: Sequence[str]
    ) -> httpx.Response:
        """POST until a 2xx answer, a final error, or the retries run out."""
        attempt = 0
        while True:
            request = self._client.build_request(
                "POST", url, content=body, headers=headers, timeout=self._timeout
            )
            try:
                response = self._client.send(request, stream=True)
            except _RETRYABLE_SEND_ERRORS as exc:
                if attempt >= self._retry.max_retries:
                    raise _send_error(exc, secrets) from exc
                self._sleep(self._retry.delay(attempt))
            except httpx.TransportError as exc:
                raise _send_error(exc, secrets) from exc
            else:
                if response.is_success:
                    return response
                retry = attempt < self._retry.max_retries and should_retry_status(
                    response.status_code, response.headers
                )
                if not retry:
                    raise _status_error(response, secrets)
                response.close()
                self._sleep(self._retry.delay(attempt, response.headers))
            attempt += 1

    def close(self) -> None:
        """Close the httpx client if this transport created it; a shared one stays open."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HTTPTransport(base_url={redact(self._base_url, self._secrets)!r})"
