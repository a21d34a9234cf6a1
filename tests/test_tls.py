"""TLS settings reach every transport: a private CA given to the provider (``verify=``)
or to its ``http_client`` serves HTTP and both WebSocket transports alike, and a
connect that fails says why (the certificate, DNS, a refused port).

The server is the local Responses server over HTTPS/WSS with a certificate issued by a
private CA that `trustme` makes in memory, so these tests need no ``openssl`` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from loop import API_KEY

import llmkit
from llmkit.messages import ResponseMetadata, WarmupResult
from llmkit.openai._recovery import Failure, fallback_reason
from llmkit.testing import ResponsesServer
from llmkit.transports._tls import client_ssl_context, ssl_context, tls_contexts
from llmkit.transports._ws_common import cause
from llmkit.transports.async_websocket import AsyncWebSocketConnection
from llmkit.transports.websocket import WebSocketConnection

CALL = llmkit.Call("hi")
WAIT = 20.0
FLAVOURS = ["sync", "async"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def trusted(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the private CA (and nothing else)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> Iterator[ResponsesServer]:
    """The local Responses server over HTTPS and WSS, its certificate from ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with ResponsesServer(ssl_context=context) as server:
        yield server


def _settings(base_url: str, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "api_key": API_KEY,
        "use_responses_api": True,
        "websocket": True,
        "max_retries": 0,
        "timeout": 10,
        **options,
    }


def warm_then_generate(
    base_url: str,
    flavour: str,
    *,
    client_verify: ssl.SSLContext | bool | None = None,
    **options: Any,
) -> tuple[WarmupResult, ResponseMetadata]:
    """A warm-up, then a call, on one provider (``Provider`` or ``AsyncProvider``); with
    ``client_verify`` the provider gets an httpx client made with that ``verify``."""
    settings = _settings(base_url, options)
    if flavour == "sync":
        with contextlib.ExitStack() as stack:
            if client_verify is not None:
                settings["http_client"] = stack.enter_context(httpx.Client(verify=client_verify))
            model = stack.enter_context(llmkit.Provider(**settings)).language_model("gpt-test")
            return model.warmup(CALL), model.generate(CALL).metadata

    async def main() -> tuple[WarmupResult, ResponseMetadata]:
        async with contextlib.AsyncExitStack() as stack:
            if client_verify is not None:
                client = httpx.AsyncClient(verify=client_verify)
                settings["http_client"] = await stack.enter_async_context(client)
            provider = await stack.enter_async_context(llmkit.AsyncProvider(**settings))
            model = provider.language_model("gpt-test")
            return await model.warmup(CALL), (await model.generate(CALL)).metadata

    return asyncio.run(asyncio.wait_for(main(), WAIT))


def assert_over_websocket(warmup: WarmupResult, metadata: ResponseMetadata) -> None:
    assert metadata.fallback_reason is None
    assert metadata.transport == "websocket"
    assert warmup.transport == "websocket"
    assert warmup.response_id is not None  # prepared, not a no-op


# --------------------------------------------------------------------------- verify=


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("form", ["path", "context"])
def test_websocket_mode_trusts_a_private_ca_given_with_verify(
    tls_server: ResponsesServer,
    ca_file: Path,
    trusted: ssl.SSLContext,
    form: str,
    flavour: str,
) -> None:
    verify = str(ca_file) if form == "path" else trusted
    assert_over_websocket(*warm_then_generate(tls_server.base_url, flavour, verify=verify))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_verify_false_turns_verification_off_for_websocket_too(
    tls_server: ResponsesServer, flavour: str
) -> None:
    assert_over_websocket(*warm_then_generate(tls_server.base_url, flavour, verify=False))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_verification_stays_on_by_default(tls_server: ResponsesServer, flavour: str) -> None:
    with pytest.raises(llmkit.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught:
        warm_then_generate(tls_server.base_url, flavour)
    partial = caught.value.partial
    assert partial is not None  # the call fell back to HTTP, which refused the server too
    assert "certificate verify failed" in (partial.metadata.fallback_reason or "")


# --------------------------------------------------------------------------- http_client=


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_websocket_mode_takes_the_ssl_context_of_http_client(
    tls_server: ResponsesServer, trusted: ssl.SSLContext, flavour: str
) -> None:
    metadata = warm_then_generate(tls_server.base_url, flavour, client_verify=trusted)
    assert_over_websocket(*metadata)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_with_http_client_verify_sets_websocket_only(
    tls_server: ResponsesServer,
    trusted: ssl.SSLContext,
    flavour: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client trusts the CA (HTTP works); ``verify=True`` makes WebSocket use the
    default CA bundle, which does not: each call falls back and says why."""
    caplog.set_level(logging.DEBUG, logger="llmkit")
    warmup, metadata = warm_then_generate(
        tls_server.base_url, flavour, client_verify=trusted, verify=True
    )
    assert warmup.transport == "http" and warmup.response_id is None
    assert metadata.transport == "http"
    reason = metadata.fallback_reason or ""
    assert "cooling down" in reason  # the warm-up met the failure; its cause is kept
    assert "certificate verify failed" in reason, reason
    logged = [r.getMessage() for r in caplog.records if r.name == "llmkit"]
    assert any("certificate verify failed" in line for line in logged), logged
    assert not any(API_KEY in line for line in logged)


def test_the_ssl_context_of_httpx_clients_is_found(trusted: ssl.SSLContext) -> None:
    url = "https://127.0.0.1:1/v1"
    with httpx.Client(verify=trusted) as client:
        assert client_ssl_context(client, url) is trusted
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        assert client_ssl_context(client, url) is None  # a custom transport: no guess
    loop = asyncio.new_event_loop()
    try:
        client_async = httpx.AsyncClient(verify=trusted)
        assert client_ssl_context(client_async, url) is trusted
        loop.run_until_complete(client_async.aclose())
    finally:
        loop.close()


class _OtherHttpx(httpx.Client):
    """A client whose private layout is not the one llmkit knows."""

    def _transport_for_url(self, url: httpx.URL) -> httpx.BaseTransport:
        raise AttributeError("no such thing in this httpx")


def test_a_client_of_an_unknown_layout_gives_no_context() -> None:
    with _OtherHttpx() as client:
        assert client_ssl_context(client, "https://127.0.0.1:1/v1") is None


def test_without_a_found_context_websocket_verifies_with_the_default_bundle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmkit")
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        http, websocket = tls_contexts(None, client, "https://127.0.0.1:1/v1", websocket=True)
    assert http is None
    assert websocket is not None and websocket.verify_mode is ssl.CERT_REQUIRED
    assert any("pass verify=" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def h2_server(ca: trustme.CA) -> Iterator[ResponsesServer]:
    """The local server with a context that prefers h2 over ALPN (as a CDN does); it
    still speaks HTTP/1.1 only, so the negotiated protocol is the client's doing."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with ResponsesServer(ssl_context=context) as server:
        yield server


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_websocket_offers_only_http11_on_a_context_shared_with_http2(
    h2_server: ResponsesServer, trusted: ssl.SSLContext, flavour: str
) -> None:
    """httpcore leaves ``["http/1.1", "h2"]`` on the context of an ``http2=True`` client;
    an upgrade over a connection that negotiated h2 would fail."""
    trusted.set_alpn_protocols(["http/1.1", "h2"])
    if flavour == "sync":
        connection = WebSocketConnection.connect(
            h2_server.ws_url, headers={}, timeout=5, ssl_context=trusted
        )
        try:
            assert isinstance(connection._ws.sock, ssl.SSLSocket)
            assert connection._ws.sock.selected_alpn_protocol() == "http/1.1"
        finally:
            connection.close()
        return

    async def main() -> str | None:
        connection = await AsyncWebSocketConnection.connect(
            h2_server.ws_url, headers={}, timeout=5, ssl_context=trusted
        )
        try:
            selected: str | None = connection._ws.transport.get_extra_info(
                "ssl_object"
            ).selected_alpn_protocol()
            return selected
        finally:
            connection.close()
            await asyncio.sleep(0.01)  # let the transport finish closing

    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == "http/1.1"


# --------------------------------------------------------------------------- usage errors


def test_verify_with_http_client_and_no_websocket_is_a_usage_error() -> None:
    with (
        httpx.Client() as client,
        pytest.raises(llmkit.UsageError, match=re.escape("httpx.Client(verify=...)")),
    ):
        llmkit.Provider(api_key=API_KEY, http_client=client, verify=False)


@pytest.mark.parametrize("verify", [1, b"ca.pem", object()])
def test_a_verify_of_another_type_is_a_usage_error(verify: Any) -> None:
    with pytest.raises(llmkit.UsageError, match="verify must be"):
        llmkit.Provider(api_key=API_KEY, verify=verify)


def test_a_ca_bundle_that_does_not_load_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(llmkit.UsageError, match="cannot load CA certificates"):
        llmkit.Provider(api_key=API_KEY, verify=str(tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(llmkit.UsageError, match="cannot load CA certificates"):
        llmkit.Provider(api_key=API_KEY, verify=garbage)


def test_a_ca_directory_is_accepted(ca: trustme.CA, tmp_path: Path) -> None:
    context = ssl_context(tmp_path)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_the_http_client_llmkit_builds_uses_the_same_context_as_websocket(
    trusted: ssl.SSLContext,
) -> None:
    with llmkit.Provider(
        api_key=API_KEY, base_url="https://127.0.0.1:1/v1", verify=trusted
    ) as provider:
        assert client_ssl_context(provider._http._client, provider.base_url) is trusted


# --------------------------------------------------------------------------- causes


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("host", "cause"),
    [("127.0.0.1", "ConnectionRefused"), ("nowhere.invalid", "Errno")],
    ids=["refused", "dns"],
)
def test_a_failed_websocket_connect_names_its_cause(flavour: str, host: str, cause: str) -> None:
    base_url = f"http://{host}:{_closed_port()}/v1"
    with pytest.raises(llmkit.ConnectError) as caught:
        warm_then_generate(base_url, flavour, max_retries=0)
    partial = caught.value.partial
    assert partial is not None
    reason = partial.metadata.fallback_reason or ""
    assert cause in reason, reason
    assert API_KEY not in reason


def test_the_fallback_reason_of_a_failed_connect_carries_its_message() -> None:
    error = llmkit.ConnectError("could not connect to wss://h/v1/responses: gaierror: x")
    reason = fallback_reason(Failure("connect", error))
    assert reason == f"could not connect over WebSocket: ConnectError: {error.message}"


def test_a_call_that_meets_the_failed_connect_names_the_certificate(
    tls_server: ResponsesServer, trusted: ssl.SSLContext
) -> None:
    with (
        httpx.Client(verify=trusted) as client,
        llmkit.Provider(
            **_settings(tls_server.base_url, {"http_client": client, "verify": True})
        ) as provider,
    ):
        metadata = provider.language_model("gpt-test").generate(CALL).metadata
    assert metadata.transport == "http"
    reason = metadata.fallback_reason or ""
    assert reason.startswith("could not connect over WebSocket: ConnectError: "), reason
    assert "certificate verify failed" in reason


def test_a_cause_is_named_redacted_and_bounded() -> None:
    assert cause(ConnectionRefusedError(111, "Connection refused"), ()) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert cause(OSError(), ()) == "OSError"
    text = cause(OSError(f"token {API_KEY} " + "x" * 1000), [API_KEY])
    assert API_KEY not in text and "[REDACTED]" in text
    assert len(text) < 400
