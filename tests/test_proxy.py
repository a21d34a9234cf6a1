"""Proxies: ``Provider(proxy=..., trust_env=...)`` and the environment's proxy variables
serve HTTP and both WebSocket transports alike, through a real proxy on loopback.

The proxy is `llmkit.testing.ProxyServer`: ``CONNECT`` tunnels (``https://``, ``wss://``
and ``ws://`` targets) and plain-HTTP forwarding (``http://`` targets, as httpx sends
them), with optional Basic authentication. Which proxy serves a URL is one pure decision
(`llmkit.transports._proxy`), tested at the end against httpx's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trustme
import websocket
from loop import API_KEY, TRANSPORTS, Transport, provider

import llmkit
from llmkit.testing import ProxyServer, ResponsesServer
from llmkit.transports import _proxy
from llmkit.transports._proxy import Route, parse_proxy, route_for
from llmkit.transports._ws_common import Endpoint
from llmkit.transports.factory import httpx_proxy, proxy_routes

CALL = llmkit.Call("hi")
ANSWER = "Echo: hi [user=1 assistant=0 tool_outputs=0 items=1]"
USER, PASSWORD = "alice", "pr0xy-s3cret-pw"
VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "WS_PROXY", "WSS_PROXY")
WAIT = 20.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of the machine reaches a test; a test sets its own."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="module")
def open_proxy() -> Iterator[ProxyServer]:
    with ProxyServer() as server:
        yield server


@pytest.fixture
def proxy(open_proxy: ProxyServer) -> ProxyServer:
    open_proxy.reset()
    return open_proxy


@pytest.fixture(scope="module")
def guarded_proxy() -> Iterator[ProxyServer]:
    with ProxyServer(auth=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture
def auth_proxy(guarded_proxy: ProxyServer) -> ProxyServer:
    guarded_proxy.reset()
    return guarded_proxy


def target(server: ResponsesServer) -> str:
    return f"127.0.0.1:{server.port}"


def generate(server: ResponsesServer, transport: Transport, **options: Any) -> llmkit.Response:
    with provider(server, transport, **options) as p:
        return p.language_model("gpt-test").generate(CALL)


def assert_proxied(
    response: llmkit.Response, proxy: ProxyServer, server: ResponsesServer, transport: str
) -> None:
    """The right answer, over the transport asked for, and it went through ``proxy``."""
    assert response.text == ANSWER
    if transport == "websocket":
        assert response.metadata.transport == "websocket"
        assert response.metadata.fallback_reason is None
        assert proxy.tunnels == [target(server)]  # ws:// is tunnelled too
        assert proxy.forwarded == []
    else:
        assert response.metadata.transport == "http"
        assert proxy.tunnels == []
        assert len(proxy.forwarded) == 1  # an http:// target is forwarded
        assert proxy.forwarded[0].startswith(f"POST http://{target(server)}/v1/")


def assert_direct(response: llmkit.Response, proxy: ProxyServer, transport: str) -> None:
    assert response.text == ANSWER
    expected = "websocket" if transport == "websocket" else "http"
    assert response.metadata.transport == expected
    assert response.metadata.fallback_reason is None
    assert proxy.tunnels == [] and proxy.forwarded == []


# --------------------------------------------------------------------------- ws://, http://


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_proxy_given_by_argument_serves_every_path(
    server: ResponsesServer, proxy: ProxyServer, transport: Transport
) -> None:
    response = generate(server, transport, proxy=proxy.url)
    assert_proxied(response, proxy, server, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_from_the_environment_serves_every_path(
    server: ResponsesServer,
    proxy: ProxyServer,
    transport: Transport,
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    response = generate(server, transport)
    assert_proxied(response, proxy, server, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_no_proxy_is_respected(
    server: ResponsesServer,
    proxy: ProxyServer,
    transport: Transport,
    no_proxy: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("no_proxy", no_proxy)
    assert_direct(generate(server, transport), proxy, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trust_env_false_takes_no_proxy_from_the_environment(
    server: ResponsesServer,
    proxy: ProxyServer,
    transport: Transport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every variable any of the three libraries reads points at the proxy: websocket-
    client and websockets would each use one if llmkit let them read the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy.url)
    assert_direct(generate(server, transport, trust_env=False), proxy, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_explicit_proxy_is_used_whatever_the_environment_says(
    server: ResponsesServer,
    proxy: ProxyServer,
    transport: Transport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in httpx: ``proxy=`` serves every target, ``NO_PROXY`` is not read for it."""
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would fail if it were used
    response = generate(server, transport, proxy=proxy.url, trust_env=False)
    assert_proxied(response, proxy, server, transport)


# --------------------------------------------------------------------------- credentials


def _all_text(*items: object) -> str:
    """Everything a caller could see of ``items``: str, repr and tracebacks."""
    out = []
    for item in items:
        out += [str(item), repr(item)]
        if isinstance(item, BaseException):
            out += traceback.format_exception(item)
    return "\n".join(out)


def _credential_forms() -> list[str]:
    return list(parse_proxy(f"http://{USER}:{PASSWORD}@127.0.0.1:1").secrets)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_credentials_sign_in_and_are_never_shown(
    server: ResponsesServer,
    auth_proxy: ProxyServer,
    transport: Transport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    records = _Records()
    websocket.enableTrace(True, handler=records)
    try:
        with provider(server, transport, proxy=auth_proxy.url_with(USER, PASSWORD)) as p:
            response = p.language_model("gpt-test").generate(CALL)
            shown = _all_text(p, p.language_model("gpt-test"))
    finally:
        websocket.enableTrace(False)
    assert_proxied(response, auth_proxy, server, transport)
    logs = "\n".join([r.getMessage() for r in caplog.records] + records.lines)
    assert "send_request_headers" in logs or "Upgrade: websocket" in logs  # logs were on
    for form in _credential_forms():
        assert form not in logs
        assert form not in shown


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_407_is_a_connect_error_that_is_not_retried_and_shows_no_credential(
    server: ResponsesServer,
    auth_proxy: ProxyServer,
    transport: Transport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-pr0xy-pw"
    with (
        provider(server, transport, proxy=auth_proxy.url_with(USER, wrong)) as p,
        pytest.raises(llmkit.ConnectError, match="407") as caught,
    ):
        p.language_model("gpt-test").generate(CALL)
    error = caught.value
    assert error.retryable is False
    assert "user name and password of the proxy" in error.message
    if transport == "websocket":  # the WebSocket connect met the 407, then HTTP did
        assert error.partial is not None
        assert "407" in (error.partial.metadata.fallback_reason or "")
    assert auth_proxy.refused >= 1 and auth_proxy.tunnels == [] and auth_proxy.forwarded == []
    assert server.stats.requests == [] and server.stats.connections_opened == 0
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for text in (_all_text(error), logs):
        assert wrong not in text
        assert f"{USER}:{wrong}" not in text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_httpx_proxy_with_auth_is_taken_as_it_is(
    server: ResponsesServer, auth_proxy: ProxyServer, transport: Transport
) -> None:
    given = httpx.Proxy(auth_proxy.url, auth=(USER, PASSWORD))
    response = generate(server, transport, proxy=given)
    assert_proxied(response, auth_proxy, server, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_password_that_needs_percent_encoding_signs_in(
    server: ResponsesServer, transport: Transport
) -> None:
    password = "p@ss:w/rd%"
    with ProxyServer(auth=(USER, password)) as guarded:
        url = guarded.url.replace("//", f"//{USER}:{quote(password, safe='')}@", 1)
        response = generate(server, transport, proxy=url)
        assert_proxied(response, guarded, server, transport)
        assert guarded.refused == 0


# --------------------------------------------------------------------------- wss://, https://


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> Iterator[ResponsesServer]:
    """The local Responses server over HTTPS and WSS, its certificate from ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with ResponsesServer(ssl_context=context) as server:
        yield server


@pytest.fixture
def trusted(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context


def _tls_generate(server: ResponsesServer, flavour: str, **options: Any) -> llmkit.Response:
    settings = {
        "base_url": server.base_url,
        "api_key": API_KEY,
        "use_responses_api": True,
        "max_retries": 0,
        "timeout": 10,
        **options,
    }
    if flavour == "sync":
        with llmkit.Provider(**settings) as p:
            return p.language_model("gpt-test").generate(CALL)

    async def main() -> llmkit.Response:
        async with llmkit.AsyncProvider(**settings) as p:
            return await p.language_model("gpt-test").generate(CALL)

    return asyncio.run(asyncio.wait_for(main(), WAIT))


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("websocket_mode", [False, True], ids=["https", "wss"])
@pytest.mark.parametrize("given", ["argument", "HTTPS_PROXY", "https_proxy"])
def test_tls_targets_are_tunnelled(
    tls_server: ResponsesServer,
    auth_proxy: ProxyServer,
    trusted: ssl.SSLContext,
    flavour: str,
    websocket_mode: bool,
    given: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options: dict[str, Any] = {"verify": trusted, "websocket": websocket_mode}
    url = auth_proxy.url_with(USER, PASSWORD)
    if given == "argument":
        options["proxy"] = url
    else:
        monkeypatch.setenv(given, url)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # only for http:// targets
    response = _tls_generate(tls_server, flavour, **options)
    assert response.text == ANSWER
    assert response.metadata.transport == ("websocket" if websocket_mode else "http")
    assert response.metadata.fallback_reason is None
    assert auth_proxy.tunnels == [target(tls_server)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_https_proxy_is_reached_over_tls(
    server: ResponsesServer, ca: trustme.CA, trusted: ssl.SSLContext, transport: Transport
) -> None:
    """TLS to the proxy itself (its certificate from ``ca``), given as an `httpx.Proxy`
    with the context that trusts it; the target is the plain ``http://`` server."""
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(served)
    with ProxyServer(ssl_context=served, auth=(USER, PASSWORD)) as tls_proxy:
        assert tls_proxy.url.startswith("https://")
        given = httpx.Proxy(tls_proxy.url, ssl_context=trusted, auth=(USER, PASSWORD))
        response = generate(server, transport, proxy=given)
        assert_proxied(response, tls_proxy, server, transport)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("websocket_mode", [False, True], ids=["https", "wss"])
def test_a_407_to_a_tunnel_is_the_same_connect_error(
    tls_server: ResponsesServer,
    auth_proxy: ProxyServer,
    trusted: ssl.SSLContext,
    flavour: str,
    websocket_mode: bool,
) -> None:
    """httpx's refused ``CONNECT`` (an ``https://`` target) ends as the forwarded 407 does."""
    url = auth_proxy.url_with(USER, "wr0ng-pr0xy-pw")
    with pytest.raises(llmkit.ConnectError, match="407") as caught:
        _tls_generate(tls_server, flavour, verify=trusted, websocket=websocket_mode, proxy=url)
    assert caught.value.retryable is False
    assert "wr0ng-pr0xy-pw" not in _all_text(caught.value)
    assert auth_proxy.tunnels == [] and auth_proxy.refused == (2 if websocket_mode else 1)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_wss_through_a_proxy_still_verifies_the_server(
    tls_server: ResponsesServer, proxy: ProxyServer, flavour: str
) -> None:
    """The tunnel carries TLS to the server: a certificate of an untrusted CA fails."""
    with pytest.raises(llmkit.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        _tls_generate(tls_server, flavour, websocket=True, proxy=proxy.url)
    partial = caught.value.partial
    assert partial is not None
    assert "certificate verify failed" in (partial.metadata.fallback_reason or "")
    assert proxy.tunnels == [target(tls_server)] * 2  # WebSocket, then HTTP


@pytest.mark.parametrize("transport", [t for t in TRANSPORTS if t == "websocket"])
def test_a_proxy_that_does_not_speak_http_is_a_connect_error(
    server: ResponsesServer, transport: Transport
) -> None:
    """A "proxy" that closes every connection at once: the WebSocket connect fails and
    says so, the fallback to HTTP fails too, and the call ends with a `ConnectError`."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def close_each() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                connection, _ = listener.accept()
                connection.close()

    listener.settimeout(0.1)
    thread = threading.Thread(target=close_each, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(llmkit.ConnectError) as caught:
            generate(server, transport, proxy=url)
    finally:
        stop.set()
        thread.join(WAIT)
        listener.close()
    partial = caught.value.partial
    assert partial is not None
    assert "proxy" in (partial.metadata.fallback_reason or "")
    assert server.stats.connections_opened == 0


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("flavour", [llmkit.Provider, llmkit.AsyncProvider])
@pytest.mark.parametrize(
    "proxy_url", ["socks5://127.0.0.1:1080", "socks5h://u:pw-secret@127.0.0.1:1080"]
)
def test_a_socks_proxy_is_a_usage_error(flavour: type[llmkit.Provider], proxy_url: str) -> None:
    with pytest.raises(llmkit.UsageError, match="SOCKS proxies") as caught:
        flavour(base_url="http://127.0.0.1:9/v1", api_key=None, proxy=proxy_url)
    assert "pw-secret" not in _all_text(caught.value)


def test_a_socks_proxy_from_the_environment_is_a_usage_error_unless_exempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(llmkit.UsageError, match=r"ALL_PROXY.*SOCKS"):
        llmkit.Provider(base_url="http://127.0.0.1:9/v1", api_key=None)
    llmkit.Provider(base_url="http://127.0.0.1:9/v1", api_key=None, trust_env=False).close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    llmkit.Provider(base_url="http://127.0.0.1:9/v1", api_key=None).close()


@pytest.mark.parametrize(
    ("proxy_url", "problem"),
    [
        ("ftp://127.0.0.1:21", "must be an http:// or https:// proxy URL"),
        ("http://:8080", "has no host"),
        ("http://127.0.0.1:99999", "not a valid proxy URL"),
    ],
)
def test_a_bad_proxy_is_a_usage_error(proxy_url: str, problem: str) -> None:
    with pytest.raises(llmkit.UsageError, match=problem):
        llmkit.Provider(base_url="http://127.0.0.1:9/v1", api_key=None, proxy=proxy_url)


def test_a_proxy_of_another_type_or_with_headers_is_a_usage_error() -> None:
    with pytest.raises(llmkit.UsageError, match="proxy must be a URL"):
        llmkit.Provider(api_key=None, proxy=8080)  # type: ignore[arg-type]
    with pytest.raises(llmkit.UsageError, match="headers"):
        llmkit.Provider(api_key=None, proxy=httpx.Proxy("http://h:1", headers={"X-A": "1"}))


def test_with_http_client_the_proxy_settings_are_for_websocket_mode_only(
    server: ResponsesServer, proxy: ProxyServer
) -> None:
    with httpx.Client() as client:
        for settings in ({"proxy": proxy.url}, {"trust_env": False}):
            with pytest.raises(llmkit.UsageError, match=r"httpx\.Client\(proxy="):
                llmkit.Provider(base_url=server.base_url, http_client=client, **settings)
        with llmkit.Provider(
            base_url=server.base_url,
            api_key=API_KEY,
            http_client=client,
            use_responses_api=True,
            websocket=True,
            proxy=proxy.url,
        ) as p:
            assert p.language_model("gpt-test").generate(CALL).metadata.transport == "websocket"
    assert proxy.tunnels == [target(server)]


def test_the_provider_repr_and_the_endpoint_show_no_credential(proxy: ProxyServer) -> None:
    url = proxy.url_with(USER, PASSWORD)
    with llmkit.Provider(
        base_url="http://127.0.0.1:9/v1", use_responses_api=True, websocket=True, proxy=url
    ) as p:
        endpoint = p._websocket._transport  # type: ignore[union-attr]
        assert isinstance(endpoint, Endpoint)
        shown = _all_text(p, endpoint, endpoint.proxy)
    assert f"proxy='{proxy.url}'" in repr(endpoint)
    for form in _credential_forms():
        assert form not in shown


# --------------------------------------------------------------------------- ProxyServer


def test_the_proxy_refuses_targets_off_loopback_and_closes_cleanly() -> None:
    with ProxyServer() as local:
        with httpx.Client(proxy=local.url, trust_env=False) as client:
            answer = client.get("http://192.0.2.1/")
        assert answer.status_code == 403
        assert local.refused == 1 and local.forwarded == []
        assert "auth=off" in repr(local)
    mine = f"llmkit-proxy-{local.port}-"
    assert not [t for t in threading.enumerate() if t.name.startswith(mine)]
    with pytest.raises(ValueError, match="loopback"):
        ProxyServer(host="0.0.0.0")


# --------------------------------------------------------------------------- the decision


def test_route_for_follows_the_explicit_setting_then_the_environment() -> None:
    explicit = parse_proxy("http://proxy.example:3128")
    env = {"http": "http://h:1", "https": "https://s:2", "all": "a:3", "no": "skip.example"}
    assert route_for("wss://x/v1", explicit=explicit, trust_env=True, environment=env) is explicit
    assert route_for("wss://x/v1", explicit=None, trust_env=False, environment=env) is None
    for url, shown in [
        ("http://x/v1", "http://h:1"),
        ("ws://x/v1/responses", "http://h:1"),
        ("https://x/v1", "https://s:2"),
        ("wss://x/v1/responses", "https://s:2"),
    ]:
        route = route_for(url, explicit=None, trust_env=True, environment=env)
        assert route is not None and route.shown == shown, url
    only_all = {"all": "a:3"}
    route = route_for("wss://x/v1", explicit=None, trust_env=True, environment=only_all)
    assert route is not None and route.shown == "http://a:3"  # no scheme: http://
    for url in ("https://skip.example/v1", "wss://api.skip.example/v1"):
        assert route_for(url, explicit=None, trust_env=True, environment=env) is None


NO_PROXY_CASES = [
    ("example.com", "https://example.com/v1", False),
    ("example.com", "https://api.example.com/v1", False),
    ("example.com", "https://notexample.com/v1", True),
    (".example.com", "https://api.example.com/v1", False),
    (".example.com", "https://example.com/v1", True),
    ("127.0.0.1", "https://127.0.0.1:8443/v1", False),
    ("127.0.0.2", "https://127.0.0.1/v1", True),
    ("::1", "https://[::1]:8443/v1", False),
    ("localhost", "https://localhost/v1", False),
    ("localhost", "https://sub.localhost/v1", True),
    ("example.com:8443", "https://example.com:8443/v1", False),
    ("example.com:8443", "https://example.com/v1", True),
    ("example.com:443", "https://example.com:443/v1", True),  # a default port is no port
    ("https://example.com", "https://example.com/v1", False),
    ("http://example.com", "https://example.com/v1", True),
    (" other.org , example.com ", "https://example.com/v1", False),
    ("*", "https://anything.org/v1", False),
    ("", "https://example.com/v1", True),
]


@pytest.mark.parametrize(("no_proxy", "url", "proxied"), NO_PROXY_CASES)
def test_no_proxy_decides_as_httpx_does(
    no_proxy: str, url: str, proxied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table, and httpx's own client agrees with it."""
    env = {"https": "http://proxy.example:3128", "no": no_proxy}
    route = route_for(url, explicit=None, trust_env=True, environment=env)
    assert (route is not None) is proxied
    ws_url = url.replace("https://", "wss://", 1)
    assert (
        route_for(ws_url, explicit=None, trust_env=True, environment=env) is not None
    ) is proxied
    monkeypatch.setenv("HTTPS_PROXY", env["https"])
    monkeypatch.setenv("NO_PROXY", no_proxy)
    with httpx.Client() as client:
        assert (client._transport_for_url(httpx.URL(url)) is not client._transport) is proxied


def test_the_more_specific_no_proxy_rule_wins() -> None:
    env = {"https": "http://p:1", "no": "example.com:9999,api.example.com"}
    assert (
        route_for("https://api.example.com/v1", explicit=None, trust_env=True, environment=env)
        is None
    )
    assert route_for("https://www.example.com/v1", explicit=None, trust_env=True, environment=env)
    assert (
        route_for("https://example.com:9999/", explicit=None, trust_env=True, environment=env)
        is None
    )
    bad = {"https": "http://p:1", "no": "http://[bad"}  # no URL: exempts nothing
    assert route_for("https://example.com/", explicit=None, trust_env=True, environment=bad)


def test_parse_proxy_reads_credentials_and_default_ports() -> None:
    route = parse_proxy("HTTP://Bob:p%40ss%3Aword@Proxy.Example")
    assert (route.scheme, route.host, route.port) == ("http", "proxy.example", 80)
    assert route.auth == ("Bob", "p@ss:word")
    assert route.url == "http://Bob:p%40ss%3Aword@proxy.example:80"
    assert route.shown == "http://proxy.example:80"
    assert repr(route) == "Route('http://proxy.example:80')"
    assert "p@ss:word" in route.secrets and "Bob:p@ss:word" in route.secrets
    assert parse_proxy("https://[::1]").shown == "https://[::1]:443"
    assert parse_proxy("http://h:1", auth=("u", "pw")).auth == ("u", "pw")
    assert (
        parse_proxy("http://h:1").secrets == () and parse_proxy("http://h:1").authorization is None
    )
    assert parse_proxy("http://u@h:1").secrets == ()  # a user name alone is no secret


def test_the_connect_request_and_the_answer() -> None:
    route = parse_proxy("http://u:pw@h:1")
    request = _proxy.connect_request(route, "::1", 443).decode()
    assert request.startswith("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n")
    assert "Proxy-Authorization: Basic dTpwdw==\r\n\r\n" in request
    assert b"Proxy-Authorization" not in _proxy.connect_request(parse_proxy("http://h:1"), "a", 80)
    assert _proxy.tunnel_status(b"HTTP/1.1 200 Connection established\r\n\r\n") == 200
    assert _proxy.tunnel_status(b"HTTP/1.0 407 Proxy Authentication Required") == 407
    for garbage in (b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 2x0 OK"):
        with pytest.raises(llmkit.ConnectError, match="did not answer"):
            _proxy.tunnel_status(garbage)


def test_refusals_are_retryable_only_when_the_proxy_failed() -> None:
    assert _proxy.refused(407, "x").retryable is False
    assert _proxy.refused(403, "x").retryable is False
    assert _proxy.refused(502, "x").retryable is True
    assert _proxy.refused(None, "x").retryable is True
    assert "user name and password" not in _proxy.refused(403, "x").message


def test_httpx_gets_the_route_as_an_httpx_proxy() -> None:
    assert httpx_proxy(None) is None
    given = httpx_proxy(parse_proxy("http://u:pw@h:3128"))
    assert given is not None
    assert (str(given.url), given.auth) == ("http://h:3128", ("u", "pw"))
    routes = proxy_routes("http://h:1", trust_env=True, urls=("https://x", None))
    assert routes[0] == Route("http", "h", 1) and routes[1] is None
