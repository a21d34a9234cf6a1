"""Secrets: bad keys and headers refused at construction, no header injection, no piece of
the key in a protocol error, no credential across origins, third-party debug logs redacted.

Part of the security suite: the servers and helpers are test_security's, and so is its
acceptance check (`key_audit`, autouse here too): no log record, exception or provider
repr of any test below holds the key or an 8-character piece of it.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import json
import logging
import socket
from collections.abc import Callable, Iterator

import events as ev
import httpx
import pytest
import websocket
from loop import API_KEY, TRANSPORTS, Transport, provider
from portal import PortalProvider
from test_security import (
    CHAT_SSE,
    WS_GUID,
    Audit,
    RawServer,
    Request,
    assert_no_key,
    exception_texts,
    frame_header,
    is_upgrade,
    key_audit,  # noqa: F401 - the suite's acceptance check, autouse
    leaks,
    log_texts,
    raw_provider,
    recv_frame,
    reply,
    responses_events,
    serve_sse,
    serve_ws,
    sse,
)

import llmkit
from llmkit import _logs
from llmkit._headers import check_api_key, check_headers, key_from_environment
from llmkit.exceptions import redact, redact_error
from llmkit.testing import ResponsesServer
from llmkit.transports import HTTPTransport
from llmkit.transports._origin import origin, same_origin_redirect

HTTP_TRANSPORTS = [t for t in TRANSPORTS if t != "websocket"]
"""Chat and Responses over HTTP, sync and async: the paths that POST."""


# --------------------------------------------------------------------------- the audit


def test_the_key_audit_sees_every_error_log_record_and_provider(
    request: pytest.FixtureRequest,
) -> None:
    """The acceptance check can fail: what it collects from a test, a leak included."""
    audit: Audit = request.getfixturevalue("key_audit")
    error = llmkit.ConnectError(f"saw {API_KEY[2:12]}")
    logging.getLogger("llmkit").debug("saw %s", API_KEY[-9:])  # not a filtered logger
    with llmkit.Provider(api_key=API_KEY, base_url="http://127.0.0.1:9/v1") as p:
        pass
    texts = audit.texts()
    assert [t for t in texts if leaks(t)] == [t for t in texts if "saw " in t]
    assert len([t for t in texts if leaks(t)]) >= 3  # the log line, str and repr of the error
    assert repr(p) in texts
    with pytest.raises(pytest.fail.Exception, match="leaked"):
        assert_no_key(texts)
    error.message, error.args = "clean", ("clean",)  # let the audit itself pass
    audit.caplog.clear()


# --------------------------------------------------------------------------- 6: bad keys

BAD_KEYS = {
    "trailing-newline": API_KEY + "\n",
    "trailing-crlf": API_KEY + "\r\n",
    "trailing-tab": API_KEY + "\t",
    "leading-space": " " + API_KEY,
    "inner-nul": API_KEY[:10] + "\0" + API_KEY[10:],
    "inner-del": API_KEY[:10] + "\x7f" + API_KEY[10:],
    "non-ascii": API_KEY + "\u00e9",
    "non-ascii-dash": API_KEY.replace("-", "\u2013"),
}


def _upgrade_or_sse(request: Request, sock: socket.socket) -> None:
    if is_upgrade(request):
        serve_ws(request, sock, [p.encode() for p in responses_events()])
    else:
        serve_sse(request, sock)


def _refused(transport: Transport, match: str, **options: object) -> tuple[Exception, RawServer]:
    """Make a provider with ``options`` and call it once: the construction must raise a
    `UsageError` matching ``match``. Returns it, and the server that was never reached."""
    with (
        RawServer(_upgrade_or_sse) as origin_server,
        pytest.raises(llmkit.UsageError, match=match) as caught,
    ):
        p = raw_provider(origin_server.url("http"), transport, **options)
        with p:  # pragma: no cover - only before the fix: the call was made
            p.language_model("gpt-test").generate(llmkit.Call("hi"))
    return caught.value, origin_server


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_bad_api_key_is_a_usage_error_that_does_not_quote_it(
    transport: Transport, key: str
) -> None:
    error, origin_server = _refused(transport, r"^api_key ", api_key=BAD_KEYS[key])
    assert origin_server.accepted == 0  # refused before anything was sent
    assert_no_key(exception_texts(error))
    assert not leaks(repr(error.args))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_key_from_the_environment_is_stripped_of_surrounding_whitespace(
    server: ResponsesServer, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``export OPENAI_API_KEY="$(cat key.txt)"`` or a ``.env`` line ending in CRLF."""
    monkeypatch.setenv("OPENAI_API_KEY", f" {API_KEY}\r\n")
    server.api_key = API_KEY  # the server accepts exactly the key, nothing around it
    with provider(server, transport, api_key=None) as p:
        response = p.language_model("scripted").generate(llmkit.Call("hi"))
    assert response.text


@pytest.mark.parametrize("value", ["sk-in\x1bside", "sk-caf\u00e9"], ids=["control", "non-ascii"])
def test_a_bad_key_in_the_environment_is_a_usage_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", value)
    with pytest.raises(llmkit.UsageError, match=r"^OPENAI_API_KEY ") as caught:
        llmkit.Provider(base_url="http://127.0.0.1:9/v1")
    assert value not in str(caught.value)


def test_a_blank_key_in_the_environment_means_no_key() -> None:
    assert key_from_environment({"OPENAI_API_KEY": " \n"}) is None
    assert key_from_environment({}) is None
    assert key_from_environment({"OPENAI_API_KEY": "\tsk-x\n"}) == "sk-x"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("sk-x\n", "control character (a trailing newline?)"),
        ("sk-x\r", "control character (a trailing newline?)"),
        ("sk\0x", "contains a control character;"),
        ("sk-x\t", "contains a control character;"),
        ("sk-\u00e9", "outside printable ASCII"),
        ("sk-x ", "surrounding spaces"),
        (" sk-x", "surrounding spaces"),
    ],
)
def test_the_api_key_rules_say_what_is_wrong(key: str, problem: str) -> None:
    with pytest.raises(llmkit.UsageError, match=r"^api_key ") as caught:
        check_api_key(key)
    assert problem in str(caught.value)
    assert key.strip() not in str(caught.value)


def test_an_api_key_that_is_not_a_string_is_a_usage_error() -> None:
    with pytest.raises(llmkit.UsageError, match="api_key must be a string, not bytes"):
        check_api_key(b"sk-x")  # type: ignore[arg-type]
    assert check_api_key("") == ""  # no key, as before


# --------------------------------------------------------------------------- 6, 7: headers

BAD_HEADERS: dict[str, dict[str, str]] = {
    "crlf-injection-in-a-value": {"X-Trace": "a\r\nX-Injected: yes"},
    "lf-injection-in-a-value": {"X-Trace": "a\nX-Injected: yes"},
    "crlf-injection-in-a-name": {"X-Trace: a\r\nX-Injected": "yes"},
    "space-in-a-name": {"X Trace": "a"},
    "colon-in-a-name": {"X-Trace:": "a"},
    "empty-name": {"": "a"},
    "api-key-with-a-trailing-newline": {"api-key": API_KEY + "\n"},
    "api-key-non-ascii": {"api-key": API_KEY + "\u00e9"},
    "authorization-with-a-tab": {"Authorization": f"Bearer {API_KEY}\t"},
}


@pytest.mark.parametrize("headers", BAD_HEADERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_bad_header_is_refused_at_construction_and_never_sent(
    transport: Transport, headers: str
) -> None:
    """Over WebSocket an unchecked CR/LF became a header line of its own (injection)."""
    error, origin_server = _refused(transport, "header", api_key=None, headers=BAD_HEADERS[headers])
    assert origin_server.accepted == 0
    assert all("x-injected" not in r.headers for r in origin_server.requests)
    assert_no_key(exception_texts(error))
    assert "yes" not in str(error)  # the value is never quoted


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_the_http_transport_refuses_a_bad_header_too(headers: str) -> None:
    """`HTTPTransport` is public: its own headers and a request's are checked."""
    with pytest.raises(llmkit.UsageError, match="header"):
        HTTPTransport(base_url="http://127.0.0.1:9/v1", headers=BAD_HEADERS[headers])
    with HTTPTransport(base_url="http://127.0.0.1:9/v1") as transport:
        request = llmkit.transports.TransportRequest("/responses", {}, BAD_HEADERS[headers])
        with pytest.raises(llmkit.UsageError, match="header"):
            transport.open(request)


def test_the_header_rules_accept_what_http_allows() -> None:
    good = {"X-Trace": 'a b;c=d, "e" ~!', "api-key": API_KEY, "X-Empty": "", "a#b$c%d": "v"}
    assert check_headers(good) == good
    with pytest.raises(llmkit.UsageError, match="its value must be a string"):
        check_headers({"X-Number": 1})  # type: ignore[dict-item]
    with pytest.raises(llmkit.UsageError, match="header #2: its name must be an HTTP token"):
        check_headers({"ok": "v", b"X-Bytes": "v"})  # type: ignore[dict-item]
    with pytest.raises(llmkit.UsageError, match="surrounding spaces"):
        check_headers({"X-Trace": "a "})


# --------------------------------------------------------------------------- 8: protocol errors

SECRET_VALUE = f"Bearer {API_KEY}" + "." * 40
"""Long enough for pydantic to quote it cut short: a plain search for the key misses that."""
BAD_EVENTS = {
    "responses": [
        ev.created(),
        json.dumps(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": SECRET_VALUE,
                "content_index": 0,
                "delta": {"echo": SECRET_VALUE},
            }
        ),
    ],
    "chat": [
        json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-test",
                "choices": [{"index": SECRET_VALUE, "delta": {"content": {"k": SECRET_VALUE}}}],
            }
        )
    ],
}


def _bad_event_server(request: Request, sock: socket.socket) -> None:
    if is_upgrade(request):
        serve_ws(request, sock, [p.encode() for p in BAD_EVENTS["responses"]])
    else:
        api = "chat" if request.path.endswith("/chat/completions") else "responses"
        reply(sock, "200 OK", sse(BAD_EVENTS[api]), {"Content-Type": "text/event-stream"})


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_malformed_event_quoting_the_key_gives_a_protocol_error_without_any_of_it(
    transport: Transport,
) -> None:
    with (
        RawServer(_bad_event_server) as origin_server,
        raw_provider(origin_server.url("http"), transport) as p,
        pytest.raises(llmkit.ProtocolError, match="malformed") as caught,
    ):
        p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert "Input should be a valid" in str(caught.value)  # still says what was wrong
    assert_no_key(exception_texts(caught.value))


def test_redaction_catches_a_long_prefix_suffix_or_middle_of_a_secret() -> None:
    secrets = [API_KEY]
    assert redact(f"value='{API_KEY[:12]}...'", secrets) == "value='[REDACTED]...'"
    assert redact(f"...{API_KEY[-9:]}!", secrets) == "...[REDACTED]!"
    assert redact(f"<{API_KEY[5:15]}>", secrets) == "<[REDACTED]>"
    assert redact(f"{API_KEY[:8]} and {API_KEY[-8:]}", secrets) == "[REDACTED] and [REDACTED]"
    assert redact(API_KEY[:7], secrets) == API_KEY[:7]  # under 8 characters: not a piece
    assert redact("nothing here", secrets) == "nothing here"
    assert redact("<abcdef>", ["abcdefg"]) == "<abcdef>"  # under 8: matched whole only
    bearer = [f"Bearer {API_KEY}"]
    assert redact("Bearer scheme, Bearer sk-other", bearer) == "Bearer scheme, Bearer sk-other"
    assert redact(f"Bearer {API_KEY[:9]}", bearer) == "Bearer [REDACTED]"


def test_redact_error_drops_a_chained_cause_holding_a_piece_of_a_secret() -> None:
    def raise_chained(inner: BaseException, *, chained: bool) -> llmkit.ProtocolError:
        try:
            try:
                raise inner
            except Exception as exc:
                if chained:
                    raise llmkit.ProtocolError("bad") from exc
                raise llmkit.ProtocolError("bad")  # noqa: B904 - the implicit context
        except llmkit.ProtocolError as error:
            return error

    for chained in (True, False):
        error = raise_chained(ValueError(f"input_value='{API_KEY[:10]}...'"), chained=chained)
        redact_error(error, [API_KEY])
        assert error.__cause__ is None and error.__suppress_context__
        assert_no_key(exception_texts(error))
        clean = raise_chained(ValueError("no secret"), chained=chained)
        redact_error(clean, [API_KEY])
        assert "no secret" in "".join(exception_texts(clean))

    # A chain that loops back on itself (Python allows it) is walked once, to its end.
    first, second = ValueError("first"), ValueError(f"deep: {API_KEY[-10:]}")
    first.__context__, second.__context__ = second, first
    looped = llmkit.ProtocolError("bad")
    looped.__cause__ = first
    redact_error(looped, [API_KEY])
    assert _cause(looped) is None
    second.args = ("clean",)
    looped.__cause__ = first
    redact_error(looped, [API_KEY])
    assert looped.__cause__ is first


def _cause(error: BaseException) -> BaseException | None:
    return error.__cause__  # read through a call: mypy would narrow the attribute


# --------------------------------------------------------------------------- 9: redirects


def _generate_with_redirecting_client(
    base_url: str, transport: Transport, *, client: str = "following"
) -> llmkit.Response:
    """One call with the key in an Azure-style ``api-key`` header, through a user client
    that follows redirects itself (``client="following"``) or llmkit's own (``"own"``)."""
    options: dict[str, object] = {"api_key": None, "headers": {"api-key": API_KEY}}
    if client == "own":
        with raw_provider(base_url, transport, **options) as p:
            return p.language_model("gpt-test").generate(llmkit.Call("hi"))
    if transport.is_async:
        async_client = httpx.AsyncClient(follow_redirects=True)
        with raw_provider(base_url, transport, http_client=async_client, **options) as p:
            assert isinstance(p, PortalProvider)
            try:
                return p.language_model("gpt-test").generate(llmkit.Call("hi"))
            finally:
                p._portal.call(async_client.aclose())
    with (
        httpx.Client(follow_redirects=True) as sync_client,
        raw_provider(base_url, transport, http_client=sync_client, **options) as p,
    ):
        return p.language_model("gpt-test").generate(llmkit.Call("hi"))


CLIENTS = ["following", "own"]
"""A user's ``httpx.Client(follow_redirects=True)``, and the client llmkit makes."""


def _redirect_to(status: int, target: Callable[[Request], str]) -> Callable[..., None]:
    def handler(request: Request, sock: socket.socket) -> None:
        reply(sock, f"{status} Moved", b"moved", {"Location": target(request)})

    return handler


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_a_redirect_to_another_origin_never_receives_the_key(
    transport: Transport, status: int, client: str
) -> None:
    """127.0.0.1 on another port is another origin; httpx would strip only Authorization."""
    with RawServer(serve_sse) as other:
        moved = _redirect_to(status, lambda request: other.url("http", request.path))
        with RawServer(moved) as origin_server:
            with pytest.raises(llmkit.APIStatusError, match="another origin") as caught:
                _generate_with_redirecting_client(
                    origin_server.url("http"), transport, client=client
                )
            assert len(origin_server.requests) == 1
        assert other.accepted == 0
    assert caught.value.status_code == status
    assert not caught.value.retryable
    assert f"127.0.0.1:{other.port}" in str(caught.value)


def _moving(status: int, form: str) -> Callable[..., None]:
    """``/v1/...`` answers with a same-origin redirect to ``/v2/...``, which serves SSE."""

    def handler(request: Request, sock: socket.socket) -> None:
        if request.path.startswith("/v1/"):
            path = request.path.replace("/v1/", "/v2/")
            host = sock.getsockname()
            target = path if form == "relative" else f"http://{host[0]}:{host[1]}{path}"
            reply(sock, f"{status} Moved", headers={"Location": target})
        else:
            serve_sse(request, sock)

    return handler


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("form", ["relative", "absolute"])
@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_a_same_origin_307_or_308_is_followed_with_the_same_post(
    transport: Transport, status: int, form: str, client: str
) -> None:
    with RawServer(_moving(status, form)) as origin_server:
        response = _generate_with_redirecting_client(
            origin_server.url("http"), transport, client=client
        )
    assert response.text
    first, second = origin_server.requests
    assert second.path == first.path.replace("/v1/", "/v2/")
    assert (second.method, second.body) == ("POST", first.body)
    assert second.headers["api-key"] == API_KEY


@pytest.mark.parametrize("status", [301, 302, 303])
@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_a_redirect_that_would_turn_the_post_into_a_get_is_refused(
    transport: Transport, status: int
) -> None:
    with (
        RawServer(_moving(status, "relative")) as origin_server,
        pytest.raises(llmkit.APIStatusError, match="as a GET") as caught,
    ):
        _generate_with_redirecting_client(origin_server.url("http"), transport)
    assert len(origin_server.requests) == 1
    assert caught.value.status_code == status


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_a_same_origin_redirect_loop_ends_after_three_redirects(transport: Transport) -> None:
    with (
        RawServer(_redirect_to(307, lambda request: request.path)) as origin_server,
        pytest.raises(llmkit.APIStatusError, match="more than 3 redirects"),
    ):
        _generate_with_redirecting_client(origin_server.url("http"), transport)
    assert origin_server.accepted == 4  # the first try and three redirects


def test_the_origin_rule_is_scheme_host_and_port() -> None:
    base = "https://api.example.com/v1"
    assert origin(base) == origin("wss://API.example.com:443/v1/responses")
    assert origin("http://h/x") == ("http", "h", 80)
    assert origin("http://h:bad/x")[2] == -1
    assert same_origin_redirect(base, base + "/responses", "/v2/responses") is not None
    for elsewhere in ("http://api.example.com/v1", "https://api.example.com:8443/v1"):
        assert same_origin_redirect(base, base, elsewhere) is None
    assert same_origin_redirect(base, base, "https://api.example.com@evil.example/") is None


# --------------------------------------------------------------------------- 10: debug logs


def _echoing_server(request: Request, sock: socket.socket) -> None:
    """Echo the key in a response header: of the upgrade, or of the SSE answer."""
    echo = f"Bearer {API_KEY}"
    if is_upgrade(request):
        digest = hashlib.sha1((request.headers["sec-websocket-key"] + WS_GUID).encode()).digest()
        accept = base64.b64encode(digest).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\nX-Echo: {echo}\r\n\r\n"
            ).encode()
        )
        recv_frame(sock)
        for payload in responses_events():
            sock.sendall(frame_header(len(payload)) + payload.encode())
        with contextlib.suppress(OSError):
            while sock.recv(65536):  # until the client closes
                pass
        return
    body = CHAT_SSE if request.path.endswith("/chat/completions") else sse(responses_events())
    reply(sock, "200 OK", body, {"Content-Type": "text/event-stream", "X-Echo": echo})


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_key_echoed_in_a_response_header_is_redacted_from_third_party_debug_logs(
    transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        RawServer(_echoing_server) as origin_server,
        raw_provider(origin_server.url("http"), transport) as p,
    ):
        response = p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert response.metadata.transport == ("websocket" if transport == "websocket" else "http")
    texts = log_texts(caplog)  # every client logger at DEBUG (`key_audit`)
    if transport != "websocket":  # httpcore logged the headers, redacted
        assert any("receive_response_headers.complete" in t and "X-Echo" in t for t in texts)
    assert_no_key(texts)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def websocket_trace() -> Iterator[_Records]:
    """websocket-client's own trace, on for one test (it is process-wide)."""
    records = _Records()
    websocket.enableTrace(True, handler=records)
    try:
        yield records
    finally:
        websocket.enableTrace(False)


def test_websocket_client_trace_shows_no_key(websocket_trace: _Records) -> None:
    with (
        RawServer(_echoing_server) as origin_server,
        raw_provider(origin_server.url("http"), "websocket") as p,
    ):
        response = p.language_model("gpt-test").generate(llmkit.Call("hi"))
    assert response.metadata.transport == "websocket"
    trace = "\n".join(websocket_trace.lines)
    assert "Authorization: Bearer [REDACTED]" in trace  # the handshake was traced, redacted
    assert_no_key(websocket_trace.lines)


class _Owner:
    """Stands for a provider: the registry holds its owners weakly."""


def test_the_log_filter_holds_only_the_secrets_of_live_owners() -> None:
    for n in range(20):
        _logs.protect(_Owner(), [f"sk-short-lived-{n:04d}"])  # dead at once
    kept = _Owner()
    _logs.protect(kept, ["sk-still-alive-0000", ""])
    _logs.protect(_Owner(), [])  # nothing to protect: not even registered
    gc.collect()
    secrets = _logs._REGISTRY.secrets()
    assert "sk-still-alive-0000" in secrets
    assert not [s for s in secrets if s.startswith("sk-short-lived-")]
    assert "" not in secrets
    record = logging.LogRecord("httpx", logging.DEBUG, "", 0, "%s!", ("sk-still-alive-0000",), None)
    assert _logs.SecretFilter().filter(record)
    assert (record.getMessage(), record.args) == ("[REDACTED]!", None)
    record = logging.LogRecord("httpcore.http11", logging.DEBUG, "", 0, "%s", ("x",), None)
    assert _logs.SecretFilter().filter(record)  # nothing to redact: left as it was
    assert record.args == ("x",)
    broken = logging.LogRecord("httpx", logging.DEBUG, "", 0, "%d", ("x",), None)
    assert _logs.SecretFilter().filter(broken)  # a bad format is logging's to report
    del kept
