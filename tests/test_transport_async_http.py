"""Tier 2: `AsyncHTTPTransport` over `httpx.MockTransport`, held to `HTTPTransport`'s contract.

The two transports share every decision (`llmkit.transports._http_request`, `_http_send`,
`_http_stream`), so most cases here are one body run over both flavours: `run_sync` and
`run_async` send the same request to the same scripted `Server` and return the same
`Seen` observations, the async one
under `asyncio.run` with an async handler and an async fake sleep. The replies and
helpers are `test_transport_http`'s, whose sync-only cases are not repeated; the last
section covers what only the async shell has (``aclose``, cancellation, ``async with``).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from test_transport_http import (
    BASE_URL,
    REQUEST,
    SECRET,
    ChunkStream,
    Reply,
    Server,
    api_error,
    assert_no_secret,
    event_stream,
    fail,
    make,
    ok,
    sse_body,
    status,
)

from llmkit._headers import CREDENTIAL_HEADERS
from llmkit.exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConnectError,
    ConnectionClosed,
    InternalServerError,
    LLMKitError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    Timeout,
    UsageError,
)
from llmkit.transports._retry import RetryPolicy
from llmkit.transports.async_http import AsyncHTTPPayloadStream, AsyncHTTPTransport
from llmkit.transports.base import TransportRequest

E = TypeVar("E", bound=BaseException)

SSE = {"content-type": "text/event-stream"}
UTF8 = sse_body("é€😀")  # "€" is e2 82 ac: the split below falls inside it


# --------------------------------------------------------------------------- helpers


class Chunks(ChunkStream, httpx.AsyncByteStream):
    """`ChunkStream` that the async client can read too, with the same bookkeeping."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self:
            yield chunk

    async def aclose(self) -> None:
        self.close()


class AsyncSleeps(list[float]):
    """A fake async ``sleep`` that records the delays; a missed ``await`` fails the test."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@dataclass
class Seen:
    """What one request through either transport showed."""

    sleeps: list[float]
    transport_repr: str = ""
    stream_repr: str = ""
    bytes_sent: int | None = None
    secrets: tuple[str, ...] = ()
    payloads: list[str] = field(default_factory=list)
    error: LLMKitError | None = None

    def raised(self, cls: type[E]) -> E:
        assert isinstance(self.error, cls), f"expected {cls.__name__}, got {self.error!r}"
        return self.error


def run_sync(
    server: Server, request: TransportRequest = REQUEST, *, max_retries: int = 2, **kwargs: Any
) -> Seen:
    transport, sleeps = make(server, max_retries=max_retries, **kwargs)
    seen = Seen(sleeps, repr(transport))
    with transport:
        try:
            with transport.open(request) as stream:
                seen.bytes_sent, seen.secrets = stream.bytes_sent, stream.secrets
                seen.stream_repr = repr(stream)
                seen.payloads.extend(stream)
        except LLMKitError as exc:
            seen.error = exc
    return seen


def make_async(
    server: Server, *, max_retries: int = 2, **kwargs: Any
) -> tuple[AsyncHTTPTransport, AsyncSleeps]:
    async def handler(request: httpx.Request) -> httpx.Response:
        return server(request)

    sleeps = AsyncSleeps()
    transport = AsyncHTTPTransport(
        base_url=BASE_URL,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_retries=max_retries),
        sleep=sleeps,
        **kwargs,
    )
    return transport, sleeps


async def observe_async(server: Server, request: TransportRequest, **kwargs: Any) -> Seen:
    transport, sleeps = make_async(server, **kwargs)
    seen = Seen(sleeps, repr(transport))
    async with transport:
        try:
            async with await transport.open(request) as stream:
                seen.bytes_sent, seen.secrets = stream.bytes_sent, stream.secrets
                seen.stream_repr = repr(stream)
                async for data in stream:
                    seen.payloads.append(data)
        except LLMKitError as exc:
            seen.error = exc
    return seen


def run_async(server: Server, request: TransportRequest = REQUEST, **kwargs: Any) -> Seen:
    return asyncio.run(observe_async(server, request, **kwargs))


Run = Callable[..., Seen]


@pytest.fixture(params=[run_sync, run_async], ids=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Run:
    """Send a request through one transport flavour and report what it showed."""
    flavour: Run = request.param
    return flavour


def chunked(chunks: Iterable[bytes], error: Exception | None = None) -> tuple[Chunks, Reply]:
    """A body of ``chunks`` (then ``error``), and the SSE reply that sends it."""
    stream = Chunks(chunks, error)
    return stream, event_stream(stream)


# --------------------------------------------------------------------------- success path


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param(
            [sse_body('{"type":"a"}', '{"type":"b"}', "[DONE]")],
            ['{"type":"a"}', '{"type":"b"}', "[DONE]"],
            id="in-order-with-done",
        ),
        pytest.param(
            [b': keep-alive\n\ndata: {"n":1}\n\ndata:\n\nevent: ping\n\ndata: a\ndata: b\n\n'],
            ['{"n":1}', "a\nb"],
            id="comments-and-empty-data",
        ),
        pytest.param(
            [b'data: {"a"', b":1}\r\n\r", b"\ndata: [DO", b"NE]\r\n\r\n"],
            ['{"a":1}', "[DONE]"],
            id="split-and-crlf",
        ),
        pytest.param([b"data: a\r\r"], ["a"], id="cr-dispatched-at-the-end"),
        pytest.param(
            [UTF8[: UTF8.index(b"\xac")], UTF8[UTF8.index(b"\xac") :]],
            ["é€😀"],
            id="utf-8-split-inside-a-character",
        ),
    ],
)
def test_events_are_parsed(run: Run, chunks: list[bytes], expected: list[str]) -> None:
    stream, reply = chunked(chunks)
    seen = run(Server(reply))
    assert seen.error is None
    assert seen.payloads == expected
    assert seen.sleeps == []
    assert stream.closed
    assert seen.stream_repr.endswith("PayloadStream(status=200)")


def test_request_shape_headers_timeout_and_bytes_sent(run: Run) -> None:
    server = Server(ok("{}"))
    request = TransportRequest(
        "/responses", {"input": "héllo"}, {"x-request-only": "r", "x-both": "request-wins"}
    )
    seen = run(
        server,
        request,
        headers={"Authorization": f"Bearer {SECRET}", "X-Both": "t"},
        timeout=httpx.Timeout(3.0, read=7.0),
    )
    assert seen.payloads == ["{}"]
    expected = '{"input":"héllo"}'.encode()
    assert seen.bytes_sent == len(expected)
    assert SECRET in seen.secrets
    [sent] = server.requests
    assert (sent.method, str(sent.url), sent.content) == ("POST", f"{BASE_URL}/responses", expected)
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["x-request-only"] == "r"
    assert sent.headers.get_list("x-both") == ["request-wins"]
    assert sent.extensions["timeout"] == {"connect": 3.0, "read": 7.0, "write": 3.0, "pool": 3.0}


# --------------------------------------------------------------------------- status errors


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (422, APIStatusError),
        (429, RateLimitError),
        (503, InternalServerError),
    ],
)
def test_status_is_a_typed_error(run: Run, code: int, cls: type[APIStatusError]) -> None:
    server = Server(api_error(code, "nope", x_request_id="req_123"))
    exc = run(server, max_retries=0).raised(cls)
    assert type(exc) is cls
    assert (exc.status_code, exc.message, exc.code, exc.request_id) == (
        code,
        "nope",
        f"c{code}",
        "req_123",
    )
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("reply", "message", "code", "body"),
    [
        pytest.param(
            status(400, {"error": {"message": "m", "code": 42}}),
            "m",
            "42",
            {"error": {"message": "m", "code": 42}},
            id="nested",
        ),
        pytest.param(
            status(400, {"message": "flat", "code": "bad"}),
            "flat",
            "bad",
            {"message": "flat", "code": "bad"},
            id="flat",
        ),
        pytest.param(status(400, {"error": "s"}), "s", None, {"error": "s"}, id="error-string"),
        pytest.param(status(400, text=" <html> \n"), "<html>", None, " <html> \n", id="text"),
        pytest.param(status(400), "HTTP 400 Bad Request", None, None, id="empty"),
    ],
)
def test_error_body_shapes(
    run: Run, reply: Reply, message: str, code: str | None, body: Any
) -> None:
    exc = run(Server(reply)).raised(BadRequestError)
    assert (exc.message, exc.code, exc.body) == (message, code, body)


def test_error_body_is_read_bounded_and_closed(run: Run) -> None:
    stream = Chunks(b"x" * 1024 for _ in range(10_000))
    exc = run(Server(lambda r: httpx.Response(400, stream=stream))).raised(BadRequestError)
    assert stream.yielded == 64
    assert stream.closed
    assert exc.message == "x" * 1000


def test_error_body_that_breaks_off_still_reports_the_status(run: Run) -> None:
    stream = Chunks([b'{"error": {"mess'], httpx.ReadError("reset"))
    exc = run(Server(lambda r: httpx.Response(401, stream=stream))).raised(AuthenticationError)
    assert exc.message == '{"error": {"mess'
    assert stream.closed


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("code", "cls"), [(429, RateLimitError), (500, InternalServerError), (503, InternalServerError)]
)
def test_retryable_statuses_are_retried_then_raised(
    run: Run, code: int, cls: type[APIStatusError]
) -> None:
    server = Server(api_error(code))
    seen = run(server)
    assert seen.raised(cls).status_code == code
    assert len(server.requests) == 3
    [first, second] = seen.sleeps
    assert 0.375 <= first <= 0.5
    assert 0.75 <= second <= 1.0


def test_retry_then_success_honours_retry_after(run: Run) -> None:
    server = Server(api_error(503, retry_after_ms="1250"), api_error(429), ok("{}"))
    seen = run(server)
    assert seen.payloads == ["{}"]
    assert seen.sleeps[0] == 1.25
    assert len(seen.sleeps) == 2
    assert server.requests[0].content == server.requests[2].content


@pytest.mark.parametrize(
    ("code", "should_retry", "requests"), [(500, "false", 1), (400, "true", 3), (404, None, 1)]
)
def test_x_should_retry_header_wins(
    run: Run, code: int, should_retry: str | None, requests: int
) -> None:
    headers = {} if should_retry is None else {"x_should_retry": should_retry}
    server = Server(api_error(code, **headers))
    seen = run(server, max_retries=5 if should_retry is None else 2)
    seen.raised(APIStatusError)
    assert len(server.requests) == requests
    assert len(seen.sleeps) == requests - 1


@pytest.mark.parametrize(
    ("error", "cls", "retried"),
    [
        (httpx.ConnectError("refused"), ConnectError, True),
        (httpx.ConnectTimeout("slow"), Timeout, True),
        (httpx.RemoteProtocolError("server disconnected"), ConnectError, True),
        (httpx.ReadTimeout("no answer"), Timeout, False),
        (httpx.WriteError("broken pipe"), ConnectError, False),
        (httpx.UnsupportedProtocol("ftp"), ConnectError, False),
    ],
)
def test_send_errors_are_mapped_and_retried_only_before_the_request_arrived(
    run: Run, error: Exception, cls: type[LLMKitError], retried: bool
) -> None:
    server = Server(fail(error))
    seen = run(server)
    exc = seen.raised(cls)
    assert type(exc) is cls
    assert exc.__cause__ is error
    assert len(server.requests) == (3 if retried else 1)
    assert len(seen.sleeps) == (2 if retried else 0)


def test_connect_errors_and_statuses_share_the_attempt_budget(run: Run) -> None:
    server = Server(fail(httpx.ConnectError("refused")), api_error(503), api_error(502, "last"))
    seen = run(server)
    assert seen.raised(InternalServerError).message == "last"
    assert len(server.requests) == 3


# --------------------------------------------------------------------------- after the answer


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (httpx.ReadError("reset"), ConnectionClosed),
        (httpx.RemoteProtocolError("peer closed"), ConnectionClosed),
        (httpx.ReadTimeout("quiet"), Timeout),
    ],
)
def test_no_retry_once_the_body_started(run: Run, error: Exception, cls: type[LLMKitError]) -> None:
    stream, reply = chunked([sse_body('{"n":1}'), sse_body('{"n":2}')], error)
    server = Server(reply, ok("{}"))
    seen = run(server)
    exc = seen.raised(cls)
    assert type(exc) is cls
    assert exc.__cause__ is error
    assert seen.payloads == ['{"n":1}', '{"n":2}']
    assert len(server.requests) == 1
    assert seen.sleeps == []
    assert stream.closed


def test_undecodable_body_is_a_protocol_error(run: Run) -> None:
    gzipped = event_stream(Chunks([b"not gzip at all"]), **{"content-encoding": "gzip"})
    exc = run(Server(gzipped)).raised(ProtocolError)
    assert isinstance(exc.__cause__, httpx.DecodingError)


def test_gzip_event_stream_is_decoded(run: Run) -> None:
    gzipped = event_stream(Chunks([gzip.compress(sse_body("{}"))]), **{"content-encoding": "gzip"})
    assert run(Server(gzipped)).payloads == ["{}"]


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_2xx_that_is_not_an_event_stream_is_a_protocol_error(
    run: Run, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    stream = Chunks([f"y{SECRET}".encode() * 100])
    server = Server(lambda r: httpx.Response(200, headers=headers, stream=stream))
    seen = run(server, secrets=[SECRET])
    message = seen.raised(ProtocolError).message
    assert repr(content_type or "") in message
    assert "y[REDACTED]y" in message
    assert len(message) < 300
    assert_no_secret(seen.raised(ProtocolError))
    assert stream.closed
    assert len(server.requests) == 1
    assert seen.sleeps == []


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "kwargs", [{"headers": {"Authorization": f"Bearer {SECRET}"}}, {"secrets": [SECRET]}]
)
def test_secret_echoed_in_an_error_is_redacted(run: Run, kwargs: dict[str, Any]) -> None:
    server = Server(api_error(401, f"Incorrect API key: {SECRET}", x_echo=f"Bearer {SECRET}"))
    seen = run(server, **kwargs)
    exc = seen.raised(AuthenticationError)
    assert_no_secret(exc)
    assert "[REDACTED]" in exc.message
    assert SECRET not in seen.transport_repr


def test_secret_in_request_headers_and_send_errors_is_redacted(run: Run) -> None:
    request = TransportRequest("/responses", {}, {"x-api-key": SECRET})
    assert_no_secret(run(Server(status(400, text=f"bad {SECRET}")), request).raised(APIStatusError))
    failed = run(Server(fail(httpx.ConnectError(f"proxy {SECRET}"))), secrets=[SECRET])
    assert_no_secret(failed.raised(ConnectError))


@pytest.mark.parametrize("name", sorted(CREDENTIAL_HEADERS))
def test_a_credential_header_of_each_name_is_redacted_from_errors(run: Run, name: str) -> None:
    server = Server(status(400, text=f"bad credential {SECRET}"))
    seen = run(server, headers={name.title(): SECRET})
    exc = seen.raised(APIStatusError)
    assert_no_secret(exc)
    assert exc.message == "bad credential [REDACTED]"
    request = TransportRequest("/responses", {}, {name: SECRET})
    assert_no_secret(run(Server(status(400, text=f"bad {SECRET}")), request).raised(APIStatusError))


def test_repr_shows_only_the_redacted_base_url(run: Run) -> None:
    seen = run(Server(ok()), headers={"Authorization": f"Bearer {SECRET}"})
    assert seen.transport_repr.endswith(f"HTTPTransport(base_url={BASE_URL!r})")

    async def secret_base_url() -> str:
        async with AsyncHTTPTransport(base_url=f"https://x.test/{SECRET}", secrets=[SECRET]) as t:
            return repr(t)

    assert (
        asyncio.run(secret_base_url()) == "AsyncHTTPTransport(base_url='https://x.test/[REDACTED]')"
    )


# --------------------------------------------------------------------------- async lifecycle


def sse_chunks(*payloads: str) -> Iterator[bytes]:
    return (sse_body(payload) for payload in payloads)


async def first_of_three() -> tuple[AsyncHTTPTransport, AsyncHTTPPayloadStream, Chunks]:
    """A transport, its stream and the body behind it, after one event of three was read."""
    body = Chunks(sse_chunks("1", "2", "3"))
    transport, _ = make_async(Server(event_stream(body)))
    stream = await transport.open(REQUEST)
    return transport, stream, body


def test_closing_an_abandoned_iteration_releases_the_response() -> None:
    async def main() -> None:
        transport, stream, body = await first_of_three()
        async with transport:
            events = aiter(stream)
            assert isinstance(events, AsyncGenerator)
            assert await anext(events) == "1"
            assert not body.closed
            await events.aclose()  # what asyncio's finaliser does to an abandoned async for
            assert body.closed

    asyncio.run(main())


def test_aclose_of_the_stream_releases_the_response_mid_iteration() -> None:
    async def main() -> None:
        transport, stream, body = await first_of_three()
        async with transport:
            events = aiter(stream)
            assert await anext(events) == "1"
            await stream.aclose()
            await stream.aclose()
            assert body.closed
            assert isinstance(events, AsyncGenerator)
            await events.aclose()
            assert repr(stream) == "AsyncHTTPPayloadStream(status=200)"

    asyncio.run(main())


def test_cancelling_the_iteration_closes_the_response() -> None:
    class Stalls(httpx.AsyncByteStream):
        closed = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield sse_body("first")
            await asyncio.Event().wait()  # the server goes quiet

        async def aclose(self) -> None:
            self.closed = True

    async def main() -> None:
        body = Stalls()
        transport, _ = make_async(Server(lambda r: httpx.Response(200, headers=SSE, stream=body)))
        got: list[str] = []

        async def consume() -> None:
            async for data in await transport.open(REQUEST):
                got.append(data)

        async with transport:
            task = asyncio.create_task(consume())
            while not got:
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert got == ["first"]
        assert body.closed

    asyncio.run(main())


def test_iterating_twice_is_connection_closed() -> None:
    async def main() -> None:
        transport, _ = make_async(Server(event_stream(Chunks([sse_body("{}")]))))
        async with transport:
            stream = await transport.open(REQUEST)
            assert [data async for data in stream] == ["{}"]
            with pytest.raises(ConnectionClosed) as info:
                [data async for data in stream]
            assert isinstance(info.value.__cause__, httpx.StreamError)

    asyncio.run(main())


def test_closed_transport_and_shared_client() -> None:
    async def main() -> None:
        owned, _ = make_async(Server(ok()))
        async with owned:
            pass
        with pytest.raises(UsageError, match="closed"):
            await owned.open(REQUEST)

        async def handler(request: httpx.Request) -> httpx.Response:
            return ok("{}")(request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as shared:
            async with AsyncHTTPTransport(base_url=BASE_URL, client=shared) as transport:
                assert [data async for data in await transport.open(REQUEST)] == ["{}"]
            assert not shared.is_closed
            with pytest.raises(UsageError):
                AsyncHTTPTransport(
                    base_url=BASE_URL, client=shared, transport=httpx.MockTransport(handler)
                )

    asyncio.run(main())


def test_the_default_sleep_is_awaited() -> None:
    async def main() -> list[str]:
        server = Server(status(429, headers={"retry-after-ms": "1"}), ok("{}"))
        transport = AsyncHTTPTransport(base_url=BASE_URL, transport=httpx.MockTransport(server))
        async with transport:
            return [data async for data in await transport.open(REQUEST)]

    assert asyncio.run(main()) == ["{}"]
