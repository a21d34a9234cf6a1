"""Provider configuration: environment, validation, reprs, lifecycle."""

from __future__ import annotations

import httpx
import pytest
from loop import API_KEY, TRANSPORTS, provider

import llmkit
from llmkit._headers import CREDENTIAL_HEADERS
from llmkit.testing import ResponsesServer


def test_environment_variables_supply_key_and_base_url(
    monkeypatch: pytest.MonkeyPatch, server: ResponsesServer
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    server.api_key = "sk-from-the-environment"
    with llmkit.Provider(use_responses_api=True) as p:
        assert p.base_url == server.base_url
        response = p.language_model("scripted").generate(llmkit.Call("env"))
    assert response.text.startswith("Echo: env")
    assert "sk-from-the-environment" not in repr(p)


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with llmkit.Provider(use_responses_api=True) as p:
        assert p.base_url == "https://api.openai.com/v1"
        assert repr(p) == (
            "Provider(base_url='https://api.openai.com/v1', api='responses', websocket=False)"
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"websocket": True}, "use_responses_api=True"),
        ({"use_responses_api": True, "max_retries": -1}, "max_retries"),
        ({"use_responses_api": True, "ws_max_connections": 0}, "ws_max_connections"),
        ({"use_responses_api": True, "base_url": "ftp://example"}, "http"),
    ],
)
def test_invalid_settings_are_usage_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(llmkit.UsageError, match=message):
        llmkit.Provider(**options)  # type: ignore[arg-type]


def test_usage_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="use_responses_api"):
        llmkit.Provider(websocket=True)


def test_language_model_validation() -> None:
    with llmkit.Provider(use_responses_api=True, api_key="k") as p:
        with pytest.raises(llmkit.UsageError):
            p.language_model("")
        model = p.language_model("gpt-test")
        assert repr(model) == "<ResponsesModel provider='openai' model='gpt-test'>"
    with llmkit.Provider(api_key="k") as chat:  # Chat Completions is the default
        assert repr(chat.language_model("gpt-test")) == (
            "<ChatModel provider='openai' model='gpt-test'>"
        )
        assert repr(chat) == (
            "Provider(base_url='https://api.openai.com/v1', api='chat', websocket=False)"
        )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_key_is_in_no_repr(server: ResponsesServer, transport: str) -> None:
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        for text in (repr(p), repr(model), repr(p._http)):
            assert API_KEY not in text


def test_a_caller_http_client_is_used_and_left_open(server: ResponsesServer) -> None:
    seen: list[str] = []
    client = httpx.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]})
    with llmkit.Provider(base_url=server.base_url, use_responses_api=True, http_client=client) as p:
        p.language_model("scripted").generate(llmkit.Call("hooked"))
    assert seen == [server.base_url + "/responses"]
    assert not client.is_closed
    client.close()


def test_httpx_timeout_objects_are_accepted(server: ResponsesServer) -> None:
    timeout = httpx.Timeout(5.0, read=0.3)
    for transport in TRANSPORTS:
        with provider(server, transport, timeout=timeout) as p:
            server.faults.slow(1.0)
            with pytest.raises(llmkit.Timeout):
                p.language_model("scripted").generate(llmkit.Call("slow a b"))


def test_close_closes_websockets(server: ResponsesServer) -> None:
    p = provider(server, "websocket")
    p.language_model("scripted").generate(llmkit.Call("open"))
    p.close()
    p.close()
    assert not any(c.open for c in server.stats.connections) or _eventually_closed(server)


def _eventually_closed(server: ResponsesServer) -> bool:
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not any(c.open for c in server.stats.connections):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("header", [name.title() for name in sorted(CREDENTIAL_HEADERS)])
def test_credentials_in_headers_are_redacted_like_the_api_key(
    server: ResponsesServer, header: str
) -> None:
    secret = "azure-key-5b1d0c9e7a"
    server.faults.reject_requests(status=400, message=f"this key is wrong: {secret}")
    with (
        llmkit.Provider(base_url=server.base_url, headers={header: secret}, max_retries=0) as p,
        pytest.raises(llmkit.BadRequestError) as caught,
    ):
        p.language_model("scripted").generate(llmkit.Call("hi"))
    error = caught.value
    assert error.message.startswith("this key is wrong: ")
    for text in (str(error), repr(error), error.message, repr(error.body)):
        assert secret not in text
