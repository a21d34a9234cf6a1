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

This module is only the blocking I/O shell: it sends, reads, closes and sleeps. Every
decision above (what to retry and when, how an error body reads, how bytes become
events) is made by `llmkit.transports._http_request` (preparing the request),
`llmkit.transports._http_send` (the retrying send) and `llmkit.transports._http_stream`
(the payload stream), which the asyncio shell `llmkit.transports.async_http` shares, so
the two cannot drift apart.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import httpx

from llmkit._closing import Closing
from llmkit._deadline import Deadline
from llmkit.transports import _http_request as prepare, _http_send as send, _http_stream as sse
from llmkit.transports._retry import RetryPolicy
from llmkit.transports.base import TransportRequest

__all__ = ["HTTPPayloadStream", "HTTPTransport"]


def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """Read at most about ``limit`` bytes of ``response``, then close it.

    A body that breaks off half-way still leaves the status to report, so read errors
    are swallowed here and the bytes that did arrive are kept.
    """
    body = send.BodyPrefix(limit)
    with contextlib.closing(response), contextlib.suppress(httpx.RequestError):
        for chunk in response.iter_bytes():
            if body.add(chunk):
                break
    return body.value()


def _require_event_stream(response: httpx.Response, secrets: Sequence[str]) -> None:
    """Raise `ProtocolError`, quoting the start of the body, unless ``response`` is SSE."""
    if not sse.is_event_stream(response):
        snippet = _read_bounded(response, sse.SNIPPET_BYTES)
        raise sse.content_type_error_from(response, snippet, secrets)


def _shut_down(sock: socket.socket) -> None:
    # The plain socket's shutdown, also under TLS: it wakes a read blocked in another
    # thread without touching the TLS object that read is using.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watchdog(response: httpx.Response, deadline: Deadline | None) -> threading.Timer | None:
    """With a deadline: a timer that shuts the response's socket down when it passes.

    httpx fixes a read's timeout when the request is sent, so a read that starts late
    could outlast the deadline; shutting the socket down wakes it (the read fails and
    `sse.read_error` reports the deadline). Without a socket to reach (a custom
    transport), the per-chunk check and the capped timeouts remain.
    """
    if deadline is None:
        return None
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if not isinstance(sock, socket.socket):
        return None
    timer = threading.Timer(max(deadline.remaining(), 0.0), _shut_down, (sock,))
    timer.daemon = True
    timer.start()
    return timer


class HTTPPayloadStream(sse.ResponseStream, Closing):
    """The ``data`` of each server-sent event of one response, as text.

    Events with empty data (comments, keep-alive blocks) are skipped; a literal
    ``[DONE]`` is passed on because ending the response is the protocol's call.
    Iterate once. Closing releases the connection, and an abandoned or failed
    iteration closes it too.
    """

    __slots__ = ()

    def __iter__(self) -> Iterator[str]:
        """Yield each event's data; map httpx failures to llmkit exceptions.

        Raises:
            Timeout: No event with data within the idle timeout (comments and blank
                lines do not count), or the call's deadline passed.
            ConnectionClosed: The connection broke before the body ended.
            ProtocolError: The body is not a decodable event stream.
        """
        decoder = sse.SSEDecoder()
        decode, parse = decoder.decode, decoder.parse
        idle, limit = self.limits()
        clock = time.monotonic
        watchdog = _watchdog(self._response, self._deadline)
        try:
            _require_event_stream(self._response, self._secrets)
            quiet_until = min(clock() + idle, limit)
            for chunk in self._response.iter_bytes():
                payloads = parse(decode(chunk))
                if payloads:
                    yield from payloads
                    quiet_until = min(clock() + idle, limit)
                elif clock() > quiet_until:
                    raise sse.silence(idle, self._deadline)
            yield from decoder.end()
            if self._deadline is not None and self._deadline.expired():
                raise self._deadline.error()  # the watchdog ended the body
        except sse.READ_ERRORS as exc:
            raise sse.read_error(exc, self._deadline) from exc
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self._response.close()

    def close(self) -> None:
        """Release the connection. Safe to call more than once."""
        self._response.close()


class HTTPTransport(Closing):
    """POST requests to a Responses-style endpoint and stream back SSE payloads.

    Args:
        base_url: Prefix of every request URL; ``request.path`` is appended.
        headers: Sent with every request (authorization, organisation, ...). Values of
            credential headers are redacted from every error message.
        timeout: httpx timeout for every request this transport makes; it applies even to a
            caller's ``client`` so that the transport's setting always means something. The
            read timeout is the longest silence tolerated between two events with data
            (comments, blank lines and partial lines do not end a silence).
        retry: When and how long to wait before resending a request that never started.
        secrets: Extra strings to redact from error messages (API keys).
        client: An httpx client to share; it stays open after `close`.
        transport: An httpx transport for the client this transport creates
            (``httpx.MockTransport`` in tests). Not allowed together with ``client``.
        sleep: Waits between retries; injectable so tests never really sleep.
        verify: TLS verification of the client this transport creates (httpx's
            ``verify``); a caller's ``client`` keeps its own.
        proxy, trust_env: httpx's, for the client this transport creates (a provider
            decides the proxy itself and passes ``trust_env=False``).

    Raises:
        UsageError: Both ``client`` and ``transport`` were given.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy = send.DEFAULT_RETRY,
        secrets: Sequence[str] = (),
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        verify: ssl.SSLContext | bool = True,
        proxy: httpx.Proxy | None = None,
        trust_env: bool = True,
    ) -> None:
        self._client, self._owns_client = prepare.pick_client(
            client, transport, httpx.Client, verify=verify, proxy=proxy, trust_env=trust_env
        )
        self._settings = prepare.HTTPSettings(base_url, headers, timeout, retry, secrets)
        self._sleep = sleep
        self.closed = False
        """Whether `close` was called: every later `open` is refused."""

    def open(self, request: TransportRequest) -> HTTPPayloadStream:
        """Send ``request`` and return its event stream once a 2xx event stream answered.

        Returns:
            The payload stream; the caller must iterate or close it.

        Raises:
            APIStatusError: The server answered with an error status (after retries, for
                retryable ones), or with a redirect that is not followed (another
                origin, a 301/302/303, a fourth redirect); the subclass matches the status.
            ConnectError: No connection or no answer, after retries.
            Timeout: Connecting or waiting for the answer timed out.
            ProtocolError: A 2xx answer that is not ``text/event-stream``.
            UsageError: The transport was closed.
        """
        prepare.refuse_if_closed(self.closed, self._client)
        prepared = self._settings.prepare(request)
        response = self._send_with_retries(prepared)
        _require_event_stream(response, prepared.secrets)
        return HTTPPayloadStream(
            response,
            bytes_sent=len(prepared.body),
            secrets=prepared.secrets,
            idle_timeout=self._settings.idle_timeout,
            deadline=prepared.deadline,
        )

    def _send_with_retries(self, prepared: prepare.PreparedRequest) -> httpx.Response:
        """POST until a 2xx answer, a final error, or the retries run out; follow
        same-origin 307/308 redirects (`send.SendAttempts`)."""
        attempts = send.SendAttempts(
            self._settings.retry, prepared.secrets, url=prepared.url, deadline=prepared.deadline
        )
        while True:
            try:
                # Never the client's own redirect handling: `attempts` decides (same origin).
                response = self._client.send(
                    prepared.build(self._client), stream=True, follow_redirects=False
                )
            except httpx.TransportError as exc:
                self._sleep(attempts.pause(attempts.send_failed(exc)))
                continue
            answer = attempts.answered(response)
            if answer is send.Answer.USE:
                return response
            if answer is send.Answer.FAIL:
                body = _read_bounded(response, send.ERROR_BODY_LIMIT)
                raise attempts.failure(response, body)
            response.close()
            if isinstance(answer, send.Redirect):
                prepared = prepared._replace(url=answer.url)
            else:
                self._sleep(attempts.pause(answer))

    def close(self) -> None:
        """Close the httpx client if this transport created it; a shared one stays open."""
        self.closed = True
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return self._settings.describe(self)
