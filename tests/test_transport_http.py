"""Tier 2: `HTTPTransport` over `httpx.MockTransport` (no sockets, no real sleeping).

Covers the framing contract: status checked before SSE, error bodies mapped to the
exception tree, retries only before the first event, and no secret in any message.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

import httpx
import pytest

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
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    Timeout,
    UsageError,
)
from llmkit.transports._retry import RetryPolicy
from llmkit.transports.base import TransportRequest
from llmkit.transports.http import HTTPPayloadStream, HTTPTransport

BASE_URL = "https://api.example.test/v1"
SECRET = "sk-test-0123456789abcdef"
REQUEST = TransportRequest(path="/responses", body={"model": "m", "input": "hi", "stream": True})

Reply = Callable[[httpx.Request], httpx.Response]


# --------------------------------------------------------------------------- helpers


class ChunkStream(httpx.SyncByteStream):
    """A response body that yields ``chunks`` and then, optionally, raises ``error``."""

    def __init__(self, chunks: Iterable[bytes], error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error
        self.yielded = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.yielded += 1
            yield chunk
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


def sse_body(*payloads: str, event: str | None = "message") -> bytes:
    lines = []
    for payload in payloads:
        if event is not None:
            lines.append(f"event: {event}\n")
        lines.append(f"data: {payload}\n\n")
    return "".join(lines).encode()


def ok(*payloads: str) -> Reply:
    return lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=sse_body(*payloads)
    )


def status(
    code: int, body: Any = None, *, headers: dict[str, str] | None = None, text: str | None = None
) -> Reply:
    content = text.encode() if text is not None else b"" if body is None else json.dumps(body)
    all_headers = {"content-type": "application/json", **(headers or {})}
    return lambda request: httpx.Response(code, headers=all_headers, content=content)


def api_error(code: int, message: str = "boom", **headers: str) -> Reply:
    body = {"error": {"message": message, "type": "t", "code": f"c{code}", "param": None}}
    return status(code, body, headers={k.replace("_", "-"): v for k, v in headers.items()})


def fail(exc: Exception) -> Reply:
    def reply(request: httpx.Request) -> httpx.Response:
        raise exc

    return reply


class Server:
    """Answers the n-th request with the n-th reply (the last one repeats)."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = replies
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = min(len(self.requests), len(self.replies)) - 1
        return self.replies[index](request)


class Sleeps(list[float]):
    """A fake ``sleep`` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(server: Server, *, max_retries: int = 2, **kwargs: Any) -> tuple[HTTPTransport, Sleeps]:
    sleeps = Sleeps()
    transport = HTTPTransport(
        base_url=BASE_URL,
        transport=httpx.MockTransport(server),
        retry=RetryPolicy(max_retries=max_retries),
        sleep=sleeps,
        **kwargs,
    )
    return transport, sleeps


def collect(transport: HTTPTransport, request: TransportRequest = REQUEST) -> list[str]:
    with transport.open(request) as stream:
        return list(stream)


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


# --------------------------------------------------------------------------- success path


def test_payloads_are_yielded_in_order_including_done() -> None:
    transport, sleeps = make(Server(ok('{"type":"a"}', '{"type":"b"}', "[DONE]")))
    assert collect(transport) == ['{"type":"a"}', '{"type":"b"}', "[DONE]"]
    assert sleeps == []


def test_events_without_event_lines_comments_and_empty_data() -> None:
    body = b': keep-alive comment\n\ndata: {"n":1}\n\ndata:\n\nevent: ping\n\ndata: a\ndata: b\n\n'
    server = Server(
        lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    transport, _ = make(server)
    assert collect(transport) == ['{"n":1}', "a\nb"]


def test_events_split_across_chunks_and_crlf() -> None:
    chunks = [b'data: {"a"', b":1}\r\n\r", b"\ndata: [DO", b"NE]\r\n\r\n"]
    server = Server(
        lambda r: httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=ChunkStream(chunks)
        )
    )
    transport, _ = make(server)
    assert collect(transport) == ['{"a":1}', "[DONE]"]


def test_request_shape_headers_and_bytes_sent() -> None:
    server = Server(ok("{}"))
    transport, _ = make(
        server, headers={"Authorization": f"Bearer {SECRET}", "OpenAI-Beta": "x", "X-Both": "t"}
    )
    request = TransportRequest(
        path="/responses",
        body={"input": "héllo", "n": [1, 2]},
        headers={"x-request-only": "r", "x-both": "request-wins"},
    )
    with transport.open(request) as stream:
        assert list(stream) == ["{}"]
        expected = '{"input":"héllo","n":[1,2]}'.encode()
        assert stream.bytes_sent == len(expected)
    [sent] = server.requests
    assert sent.method == "POST"
    assert str(sent.url) == "https://api.example.test/v1/responses"
    assert sent.content == expected
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["openai-beta"] == "x"
    assert sent.headers["x-request-only"] == "r"
    assert sent.headers.get_list("x-both") == ["request-wins"]


def test_trailing_slash_in_base_url_and_timeout_are_applied() -> None:
    server = Server(ok("{}"))
    transport = HTTPTransport(
        base_url=BASE_URL + "/",
        timeout=httpx.Timeout(3.0, read=7.0),
        transport=httpx.MockTransport(server),
    )
    assert collect(transport) == ["{}"]
    [sent] = server.requests
    assert sent.url.path == "/v1/responses"
    assert sent.extensions["timeout"] == {"connect": 3.0, "read": 7.0, "write": 3.0, "pool": 3.0}


def test_transport_headers_are_not_mutated_by_request_headers() -> None:
    server = Server(ok("{}"))
    transport, _ = make(server, headers={"X-Both": "transport"})
    collect(transport, TransportRequest("/responses", {}, {"x-both": "request"}))
    collect(transport, TransportRequest("/responses", {}))
    assert [r.headers["x-both"] for r in server.requests] == ["request", "transport"]


# --------------------------------------------------------------------------- status mapping


@pytest.mark.parametrize(
    ("code", "cls", "retryable"),
    [
        (400, BadRequestError, False),
        (401, AuthenticationError, False),
        (403, PermissionDeniedError, False),
        (404, NotFoundError, False),
        (409, APIStatusError, True),
        (422, APIStatusError, False),
        (429, RateLimitError, True),
        (500, InternalServerError, True),
        (503, InternalServerError, True),
    ],
)
def test_status_mapping(code: int, cls: type[APIStatusError], retryable: bool) -> None:
    server = Server(api_error(code, "nope", x_request_id="req_123"))
    transport, _ = make(server, max_retries=0)
    with pytest.raises(cls) as info:
        transport.open(REQUEST)
    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == code
    assert exc.message == "nope"
    assert exc.code == f"c{code}"
    assert exc.error_type == "t"
    assert exc.param is None
    assert exc.request_id == "req_123"
    assert exc.retryable is retryable
    assert exc.headers["x-request-id"] == "req_123"
    assert exc.body == {
        "error": {"message": "nope", "type": "t", "code": f"c{code}", "param": None}
    }
    assert str(exc) == f"{code}: nope (code: c{code}) [request id: req_123]"
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("reply", "message", "code", "param", "body"),
    [
        pytest.param(
            status(400, {"error": {"message": "m", "code": 42, "param": "input"}}),
            "m",
            "42",
            "input",
            {"error": {"message": "m", "code": 42, "param": "input"}},
            id="nested-int-code",
        ),
        pytest.param(
            status(400, {"message": "flat", "code": "bad", "param": "p", "type": "x"}),
            "flat",
            "bad",
            "p",
            {"message": "flat", "code": "bad", "param": "p", "type": "x"},
            id="flat",
        ),
        pytest.param(
            status(400, {"error": "just a string"}),
            "just a string",
            None,
            None,
            {"error": "just a string"},
            id="error-string",
        ),
        pytest.param(
            status(400, {"detail": "x"}), '{"detail": "x"}', None, None, {"detail": "x"}, id="other"
        ),
        pytest.param(status(400, [1, 2]), "[1, 2]", None, None, [1, 2], id="json-list"),
        pytest.param(
            status(400, text="  <html>Bad Gateway</html>\n"),
            "<html>Bad Gateway</html>",
            None,
            None,
            "  <html>Bad Gateway</html>\n",
            id="text",
        ),
        pytest.param(status(400), "HTTP 400 Bad Request", None, None, None, id="empty"),
        pytest.param(
            status(400, {"error": {"code": "c"}}),
            '{"error": {"code": "c"}}',
            "c",
            None,
            {"error": {"code": "c"}},
            id="no-message",
        ),
    ],
)
def test_error_body_shapes(
    reply: Reply, message: str, code: str | None, param: str | None, body: Any
) -> None:
    transport, _ = make(Server(reply))
    with pytest.raises(BadRequestError) as info:
        transport.open(REQUEST)
    assert info.value.message == message
    assert info.value.code == code
    assert info.value.param == param
    assert info.value.body == body
    assert info.value.request_id is None


def test_unknown_status_without_reason_phrase() -> None:
    transport, _ = make(Server(status(599)), max_retries=0)
    with pytest.raises(InternalServerError) as info:
        transport.open(REQUEST)
    assert info.value.message == "HTTP 599"


def test_non_2xx_below_400_is_a_status_error() -> None:
    transport, _ = make(Server(status(302, headers={"location": "/elsewhere"})))
    with pytest.raises(APIStatusError) as info:
        transport.open(REQUEST)
    assert info.value.status_code == 302
    assert info.value.retryable is False


def test_error_body_is_read_bounded() -> None:
    stream = ChunkStream(b"x" * 1024 for _ in range(10_000))
    server = Server(lambda r: httpx.Response(400, stream=stream))
    transport, _ = make(server)
    with pytest.raises(BadRequestError) as info:
        transport.open(REQUEST)
    assert stream.yielded == 64
    assert stream.closed
    assert info.value.message == "x" * 1000
    assert isinstance(info.value.body, str)
    assert len(info.value.body) == 64 * 1024


def test_error_body_that_breaks_off_still_reports_the_status() -> None:
    stream = ChunkStream([b'{"error": {"mess'], httpx.ReadError("reset"))
    server = Server(lambda r: httpx.Response(401, stream=stream))
    transport, _ = make(server)
    with pytest.raises(AuthenticationError) as info:
        transport.open(REQUEST)
    assert info.value.message == '{"error": {"mess'
    assert stream.closed


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (408, APIStatusError),
        (409, APIStatusError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
    ],
)
def test_retryable_statuses_are_retried_then_raised(code: int, cls: type[APIStatusError]) -> None:
    server = Server(api_error(code))
    transport, sleeps = make(server, max_retries=2)
    with pytest.raises(cls) as info:
        transport.open(REQUEST)
    assert info.value.status_code == code
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert 0.375 <= sleeps[0] <= 0.5
    assert 0.75 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(code: int) -> None:
    server = Server(api_error(code))
    transport, sleeps = make(server, max_retries=5)
    with pytest.raises(APIStatusError):
        transport.open(REQUEST)
    assert len(server.requests) == 1
    assert sleeps == []


def test_retry_then_success_returns_the_stream() -> None:
    server = Server(api_error(503), api_error(429), ok("{}"))
    transport, sleeps = make(server)
    assert collect(transport) == ["{}"]
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert server.requests[0].content == server.requests[2].content


def test_exhaustion_raises_the_last_error() -> None:
    server = Server(api_error(503, "first"), api_error(500, "second"), api_error(429, "third"))
    transport, _ = make(server)
    with pytest.raises(RateLimitError) as info:
        transport.open(REQUEST)
    assert info.value.message == "third"


def test_max_retries_zero_disables_retrying() -> None:
    server = Server(api_error(503))
    transport, sleeps = make(server, max_retries=0)
    with pytest.raises(InternalServerError):
        transport.open(REQUEST)
    assert len(server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"retry-after": "3"}, 3.0, 3.0),
        ({"Retry-After": "0.25"}, 0.25, 0.25),
        ({"retry-after-ms": "1250"}, 1.25, 1.25),
        ({"retry-after": "<in 30 s>"}, 27.0, 30.0),
        ({"retry-after": "3600"}, 0.375, 0.5),  # absurd: back off instead
        ({"retry-after": "whenever"}, 0.375, 0.5),
    ],
)
def test_retry_after_is_honoured(headers: dict[str, str], low: float, high: float) -> None:
    if headers.get("retry-after") == "<in 30 s>":  # an HTTP date, made when the test runs
        headers = {"retry-after": http_date(30)}
    server = Server(status(429, headers=headers), ok("{}"))
    transport, sleeps = make(server)
    assert collect(transport) == ["{}"]
    [delay] = sleeps
    assert low <= delay <= high


@pytest.mark.parametrize(
    ("code", "should_retry", "requests"),
    [(500, "false", 1), (400, "true", 3), (429, "false", 1)],
)
def test_x_should_retry_header_wins(code: int, should_retry: str, requests: int) -> None:
    server = Server(api_error(code, x_should_retry=should_retry))
    transport, _ = make(server)
    with pytest.raises(APIStatusError) as info:
        transport.open(REQUEST)
    assert len(server.requests) == requests
    assert info.value.retryable is (should_retry == "true")


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (httpx.ConnectError("refused"), ConnectError),
        (httpx.ConnectTimeout("slow"), Timeout),
        (httpx.RemoteProtocolError("server disconnected"), ConnectError),
    ],
)
def test_connect_errors_are_retried_then_mapped(error: Exception, cls: type[LLMKitError]) -> None:
    server = Server(fail(error))
    transport, sleeps = make(server)
    with pytest.raises(cls) as info:
        transport.open(REQUEST)
    assert type(info.value) is cls
    assert info.value.__cause__ is error
    assert info.value.retryable is True
    assert len(server.requests) == 3
    assert len(sleeps) == 2


def test_connect_error_then_success() -> None:
    server = Server(fail(httpx.ConnectError("refused")), ok("{}"))
    transport, sleeps = make(server)
    assert collect(transport) == ["{}"]
    assert len(server.requests) == 2
    assert len(sleeps) == 1


def test_connect_errors_and_statuses_share_the_attempt_budget() -> None:
    server = Server(fail(httpx.ConnectError("refused")), api_error(503), api_error(502, "last"))
    transport, sleeps = make(server)
    with pytest.raises(InternalServerError) as info:
        transport.open(REQUEST)
    assert info.value.message == "last"
    assert len(server.requests) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (httpx.ReadTimeout("no answer"), Timeout),
        (httpx.WriteTimeout("stuck"), Timeout),
        (httpx.WriteError("broken pipe"), ConnectError),
        (httpx.ReadError("reset"), ConnectError),
        (httpx.UnsupportedProtocol("ftp"), ConnectError),
    ],
)
def test_other_errors_before_the_answer_are_not_retried(
    error: Exception, cls: type[LLMKitError]
) -> None:
    server = Server(fail(error))
    transport, sleeps = make(server)
    with pytest.raises(cls) as info:
        transport.open(REQUEST)
    assert info.value.__cause__ is error
    assert len(server.requests) == 1
    assert sleeps == []


# --------------------------------------------------------------------------- after the answer


def event_stream(stream: httpx.SyncByteStream, **headers: str) -> Reply:
    return lambda r: httpx.Response(
        200, headers={"content-type": "text/event-stream", **headers}, stream=stream
    )


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (httpx.ReadError("reset"), ConnectionClosed),
        (httpx.RemoteProtocolError("peer closed"), ConnectionClosed),
        (httpx.ReadTimeout("quiet"), Timeout),
        (httpx.NetworkError("gone"), ConnectionClosed),
    ],
)
def test_no_retry_once_the_body_started(error: Exception, cls: type[LLMKitError]) -> None:
    stream = ChunkStream([sse_body('{"n":1}'), sse_body('{"n":2}')], error)
    server = Server(event_stream(stream), ok("{}"))
    transport, sleeps = make(server)
    received: list[str] = []
    with pytest.raises(cls) as info, transport.open(REQUEST) as payloads:
        received.extend(payloads)
    assert type(info.value) is cls
    assert info.value.__cause__ is error
    assert received == ['{"n":1}', '{"n":2}']
    assert len(server.requests) == 1
    assert sleeps == []
    assert stream.closed


def test_connection_closed_message() -> None:
    stream = ChunkStream([], httpx.ReadError(f"reset {SECRET}"))
    transport, _ = make(Server(event_stream(stream)))
    with pytest.raises(ConnectionClosed) as info:
        collect(transport)
    assert info.value.message == "connection closed before the response finished"


def test_undecodable_body_is_a_protocol_error() -> None:
    stream = ChunkStream([b"not gzip at all"])
    transport, _ = make(Server(event_stream(stream, **{"content-encoding": "gzip"})))
    with pytest.raises(ProtocolError) as info:
        collect(transport)
    assert isinstance(info.value.__cause__, httpx.DecodingError)


def test_gzip_event_stream_is_decoded() -> None:
    stream = ChunkStream([gzip.compress(sse_body('{"z":1}'))])
    transport, _ = make(Server(event_stream(stream, **{"content-encoding": "gzip"})))
    assert collect(transport) == ['{"z":1}']


def test_iterating_twice_is_connection_closed() -> None:
    transport, _ = make(Server(event_stream(ChunkStream([sse_body("{}")]))))
    stream = transport.open(REQUEST)
    assert list(stream) == ["{}"]
    with pytest.raises(ConnectionClosed) as info:
        list(stream)
    assert isinstance(info.value.__cause__, httpx.StreamError)


def test_abandoning_the_iteration_closes_the_response() -> None:
    stream = ChunkStream([sse_body("1"), sse_body("2"), sse_body("3")])
    transport, _ = make(Server(event_stream(stream)))
    payloads = iter(transport.open(REQUEST))
    assert isinstance(payloads, Generator)
    assert next(payloads) == "1"
    assert not stream.closed
    payloads.close()  # what garbage collection does to an abandoned for loop
    assert stream.closed


def test_close_is_idempotent_and_context_manager_closes() -> None:
    stream = ChunkStream([sse_body("1")])
    transport, _ = make(Server(event_stream(stream)))
    payloads = transport.open(REQUEST)
    payloads.close()
    payloads.close()
    assert stream.closed
    with transport.open(REQUEST) as again:
        pass
    again.close()
    assert repr(payloads) == "HTTPPayloadStream(status=200)"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", '{"output": "not streamed"}'),
        ("text/plain; charset=utf-8", "y" * 1000),
        (None, ""),
    ],
)
def test_2xx_that_is_not_an_event_stream_is_a_protocol_error(
    content_type: str | None, body: str
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    stream = ChunkStream([body.encode()])
    server = Server(lambda r: httpx.Response(200, headers=headers, stream=stream))
    transport, sleeps = make(server)
    with pytest.raises(ProtocolError) as info:
        transport.open(REQUEST)
    message = info.value.message
    assert repr(content_type or "") in message
    assert body[:200] in message
    assert len(message) < 300
    assert stream.closed
    assert len(server.requests) == 1
    assert sleeps == []


def test_payload_stream_checks_content_type_itself() -> None:
    response = httpx.Response(200, headers={"content-type": "application/json"}, content=b"{}")
    stream = HTTPPayloadStream(response, bytes_sent=0)
    with pytest.raises(ProtocolError) as info:
        list(stream)
    assert "text/event-stream" in info.value.message
    assert stream.bytes_sent == 0


# --------------------------------------------------------------------------- secrets


def assert_no_secret(exc: BaseException, secret: str = SECRET) -> None:
    assert secret not in str(exc)
    assert secret not in repr(exc)
    assert secret not in getattr(exc, "message", "")
    assert secret not in repr(getattr(exc, "body", None))
    assert secret not in repr(getattr(exc, "headers", None))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"Authorization": f"Bearer {SECRET}"}},
        {"headers": {"api-key": SECRET}},
        {"secrets": [SECRET]},
    ],
)
def test_secret_echoed_in_error_body_is_redacted(kwargs: dict[str, Any]) -> None:
    message = f"Incorrect API key provided: {SECRET}. Find yours at ..."
    server = Server(api_error(401, message, x_echo=f"Bearer {SECRET}"))
    transport, _ = make(server, **kwargs)
    with pytest.raises(AuthenticationError) as info:
        transport.open(REQUEST)
    assert_no_secret(info.value)
    assert "[REDACTED]" in info.value.message
    assert SECRET not in repr(transport)


def test_secret_in_request_headers_is_redacted() -> None:
    server = Server(status(400, text=f"bad key {SECRET}"))
    transport, _ = make(server)
    with pytest.raises(BadRequestError) as info:
        transport.open(TransportRequest("/responses", {}, {"x-api-key": SECRET}))
    assert_no_secret(info.value)


@pytest.mark.parametrize("name", sorted(CREDENTIAL_HEADERS))
@pytest.mark.parametrize("where", ["transport", "request"])
def test_a_credential_header_of_each_name_is_redacted_from_errors(name: str, where: str) -> None:
    headers = {name.title(): SECRET}
    server = Server(status(400, text=f"bad credential {SECRET}"))
    transport, _ = make(server, headers=headers) if where == "transport" else make(server)
    request = REQUEST if where == "transport" else TransportRequest("/responses", {}, headers)
    with pytest.raises(BadRequestError) as info:
        transport.open(request)
    assert_no_secret(info.value)
    assert info.value.message == "bad credential [REDACTED]"


def test_secret_hidden_by_json_escaping_is_redacted_in_the_message() -> None:
    secret = "sk/with/slashes"
    server = Server(status(400, text='{"error": {"message": "key sk\\/with\\/slashes"}}'))
    transport, _ = make(server, secrets=[secret])
    with pytest.raises(BadRequestError) as info:
        transport.open(REQUEST)
    assert info.value.message == "key [REDACTED]"
    assert_no_secret(info.value, secret)


def test_secret_in_non_sse_2xx_and_transport_errors_is_redacted() -> None:
    server = Server(lambda r: httpx.Response(200, content=f"echo {SECRET}".encode()))
    transport, _ = make(server, secrets=[SECRET])
    with pytest.raises(ProtocolError) as info:
        transport.open(REQUEST)
    assert_no_secret(info.value)

    transport, _ = make(Server(fail(httpx.ConnectError(f"proxy {SECRET}"))), secrets=[SECRET])
    with pytest.raises(ConnectError) as connect:
        transport.open(REQUEST)
    assert_no_secret(connect.value)


def test_repr_shows_only_the_base_url() -> None:
    transport, _ = make(Server(ok()), headers={"Authorization": f"Bearer {SECRET}"})
    assert repr(transport) == f"HTTPTransport(base_url={BASE_URL!r})"
    secret_url = HTTPTransport(base_url=f"https://x.test/{SECRET}", secrets=[SECRET])
    with secret_url:
        assert SECRET not in repr(secret_url)


# --------------------------------------------------------------------------- lifecycle


def test_close_closes_only_an_owned_client() -> None:
    owned, _ = make(Server(ok()))
    with owned:
        pass
    with pytest.raises(UsageError, match="closed"):
        owned.open(REQUEST)

    shared = httpx.Client(transport=httpx.MockTransport(Server(ok("{}"))))
    with HTTPTransport(base_url=BASE_URL, client=shared) as transport:
        assert collect(transport) == ["{}"]
    assert not shared.is_closed
    shared.close()


def test_client_and_transport_together_are_rejected() -> None:
    with httpx.Client() as client, pytest.raises(UsageError):
        HTTPTransport(base_url=BASE_URL, client=client, transport=httpx.MockTransport(Server()))
