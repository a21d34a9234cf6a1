"""The HTTP-SSE transport for asyncio: `llmkit.transports.http` over ``httpx.AsyncClient``.

Same contract as the blocking `HTTPTransport`: the status is checked before the body is
read, error answers become typed and redacted `APIStatusError` subclasses, connect failures
and retryable statuses are retried with backoff only before a single event was read, and
every httpx exception is mapped to the llmkit tree with ``raise ... from exc``.

It is the same code too. This module is only the asyncio I/O shell: each decision is made
by `llmkit.transports._http_request`, `_http_send` and `_http_stream`, shared with the
blocking shell, and what remains here is the awaiting (send, read, close, sleep). A rule
is therefore changed in one place and holds for both flavours.

Cancellation is an ordinary exit: every await that holds a response is inside a
``finally`` (or ``aclosing``) that closes it, in `AsyncHTTPTransport.open` and in the
iteration alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import httpx

from llmkit._closing import AsyncClosing, bind_loop
from llmkit._deadline import Deadline
from llmkit.transports import _http_request as prepare, _http_send as send, _http_stream as sse
from llmkit.transports._retry import RetryPolicy
from llmkit.transports.base import TransportRequest

__all__ = ["AsyncHTTPPayloadStream", "AsyncHTTPTransport"]


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """Read at most about ``limit`` bytes of ``response``, then close it.

    Read errors are swallowed, keeping what arrived: the status is what gets reported.
    """
    body = send.BodyPrefix(limit)
    async with contextlib.aclosing(response):
        with contextlib.suppress(httpx.RequestError):
            async for chunk in response.aiter_bytes():
                if body.add(chunk):
                    break
    return body.value()


async def _require_event_stream(response: httpx.Response, secrets: Sequence[str]) -> None:
    """Raise `ProtocolError`, quoting the start of the body, unless ``response`` is SSE."""
    if not sse.is_event_stream(response):
        snippet = await _read_bounded(response, sse.SNIPPET_BYTES)
        raise sse.content_type_error_from(response, snippet, secrets)


async def _before(chunks: AsyncIterator[bytes], deadline: Deadline) -> AsyncIterator[bytes]:
    """``chunks``, each read ending by ``deadline``: httpx fixes a read's timeout when
    the request is sent, so a read that starts late could outlast it otherwise."""
    loop = asyncio.get_running_loop()
    when = loop.time() + deadline.remaining()
    while True:
        try:
            async with asyncio.timeout_at(when):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise deadline.error() from None
        yield chunk


class AsyncHTTPPayloadStream(sse.ResponseStream, AsyncClosing):
    """The ``data`` of each server-sent event of one response, as text, for ``async for``.

    Events with empty data are skipped; a literal ``[DONE]`` is passed on. Iterate once.
    `aclose` releases the connection, and a finished, failed or cancelled iteration
    releases it too. An iteration abandoned with ``break`` is an async generator that
    only closes when asyncio finalises it, so call `aclose` (or use ``async with``).
    """

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[str]:
        """Yield each event's data, raising as `HTTPPayloadStream.__iter__` does."""
        return self._events()

    async def _events(self) -> AsyncIterator[str]:
        decoder = sse.SSEDecoder()
        decode, parse = decoder.decode, decoder.parse
        idle, limit = self.limits()
        clock = time.monotonic
        deadline = self._deadline
        chunks = self._response.aiter_bytes()
        if deadline is not None:  # only then: a generator hop per chunk
            chunks = _before(chunks, deadline)
        try:
            await _require_event_stream(self._response, self._secrets)
            quiet_until = min(clock() + idle, limit)
            async for chunk in chunks:
                payloads = parse(decode(chunk))
                if payloads:
                    for data in payloads:
                        yield data
                    quiet_until = min(clock() + idle, limit)
                elif clock() > quiet_until:
                    raise sse.silence(idle, deadline)
            for data in decoder.end():
                yield data
        except sse.READ_ERRORS as exc:
            raise sse.read_error(exc, deadline) from exc
        finally:
            await self._response.aclose()

    async def aclose(self) -> None:
        """Release the connection. Safe to call more than once."""
        await self._response.aclose()


class AsyncHTTPTransport(AsyncClosing):
    """POST requests to a Responses-style endpoint and stream back SSE payloads, async.

    The arguments are `HTTPTransport`'s, for asyncio: ``client`` is an
    ``httpx.AsyncClient`` (it stays open after `aclose`), ``transport`` an
    ``httpx.AsyncBaseTransport``, and ``sleep`` is awaited between retries.

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
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        verify: ssl.SSLContext | bool = True,
        proxy: httpx.Proxy | None = None,
        trust_env: bool = True,
    ) -> None:
        self._client, self._owns_client = prepare.pick_client(
            client, transport, httpx.AsyncClient, verify=verify, proxy=proxy, trust_env=trust_env
        )
        self._settings = prepare.HTTPSettings(base_url, headers, timeout, retry, secrets)
        self._sleep = sleep
        self.closed = False
        """Whether `aclose` was called: every later `open` is refused."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop of the first `open`; its connections belong to it."""

    async def open(self, request: TransportRequest) -> AsyncHTTPPayloadStream:
        """Send ``request`` and return its event stream once a 2xx event stream answered.

        Returns and raises as `HTTPTransport.open`: the payload stream, which the caller
        must iterate or close, or an `APIStatusError`, `ConnectError`, `Timeout`,
        `ProtocolError` or `UsageError`.
        """
        prepare.refuse_if_closed(self.closed, self._client)
        self.loop = bind_loop(self.loop)
        prepared = self._settings.prepare(request)
        response = await self._send_with_retries(prepared)
        await _require_event_stream(response, prepared.secrets)
        return AsyncHTTPPayloadStream(
            response,
            bytes_sent=len(prepared.body),
            secrets=prepared.secrets,
            idle_timeout=self._settings.idle_timeout,
            deadline=prepared.deadline,
        )

    async def _send_with_retries(self, prepared: prepare.PreparedRequest) -> httpx.Response:
        """POST until a 2xx answer, a final error, or the retries run out; follow
        same-origin 307/308 redirects (`send.SendAttempts`)."""
        attempts = send.SendAttempts(
            self._settings.retry, prepared.secrets, url=prepared.url, deadline=prepared.deadline
        )
        while True:
            try:
                # Never the client's own redirect handling: `attempts` decides (same origin).
                response = await self._client.send(
                    prepared.build(self._client), stream=True, follow_redirects=False
                )
            except httpx.TransportError as exc:
                await self._sleep(attempts.pause(attempts.send_failed(exc)))
                continue
            answer = attempts.answered(response)
            if answer is send.Answer.USE:
                return response
            if answer is send.Answer.FAIL:
                body = await _read_bounded(response, send.ERROR_BODY_LIMIT)
                raise attempts.failure(response, body)
            await response.aclose()
            if isinstance(answer, send.Redirect):
                prepared = prepared._replace(url=answer.url)
            else:
                await self._sleep(attempts.pause(answer))

    async def aclose(self) -> None:
        """Close the httpx client if this transport created it; a shared one stays open."""
        self.closed = True
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return self._settings.describe(self)
