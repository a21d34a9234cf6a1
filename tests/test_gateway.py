"""WebSocket mode behind gateways (issue 16): fake warm-ups, odd error frames, silent closes.

Tier 1 (the protocol and the pure decisions) and tier 3 (both providers over real
sockets against the local server's gateway modes, `llmkit.testing._gateway`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from loop import API_KEY, TRANSPORTS, Loop, provider
from test_session_rules import Link, attempt_fails, session, start, turn

import llmkit
from llmkit.openai import wire
from llmkit.openai._chain import warmup_prepared
from llmkit.openai._protocol import error_from_event
from llmkit.openai._recovery import Cooldown, Failure, not_served, silent_close
from llmkit.openai._session import CooldownGate, Turn
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.testing import ResponsesServer

pytestmark = pytest.mark.timeout(30)

WEBSOCKET = [t for t in TRANSPORTS if t == "websocket"]
HTTP = {t.is_async: t for t in TRANSPORTS if t == "http"}
WS_IDS = [t.id for t in WEBSOCKET]


# --------------------------------------------------------------------------- error frames, tier 1

FRAMES: list[Any] = [
    pytest.param(
        {
            "type": "error",
            "status": 400,
            "error": {"type": "invalid_request_error", "code": "bad", "message": "m", "param": "x"},
        },
        llmkit.BadRequestError,
        "bad",
        id="nested",
    ),
    pytest.param(
        {"type": "error", "code": "rate_limit_exceeded", "message": "m", "param": None},
        llmkit.ResponseFailed,
        "rate_limit_exceeded",
        id="flat",
    ),
    pytest.param({"type": "error", "error": "m"}, llmkit.ResponseFailed, None, id="string"),
    pytest.param(
        {"type": "error", "error": "m", "status": 401},
        llmkit.AuthenticationError,
        None,
        id="string-with-status",
    ),
    pytest.param(
        {"type": "error", "status_code": 429, "error": {"message": "m", "code": "throttled"}},
        llmkit.RateLimitError,
        "throttled",
        id="status_code-renamed-code",
    ),
    pytest.param(
        {"type": "error", "status_code": "403", "error": {"message": "m"}},
        llmkit.PermissionDeniedError,
        None,
        id="status_code-as-text-no-code",
    ),
    pytest.param(
        {"type": "error", "status": 503, "error": {"message": "m", "code": 503}},
        llmkit.InternalServerError,
        "503",
        id="numeric-code",
    ),
    pytest.param(
        {"type": "error", "error": {"message": "m"}}, llmkit.ResponseFailed, None, id="no-status"
    ),
]


@pytest.mark.parametrize(("frame", "cls", "code"), FRAMES)
def test_every_error_frame_shape_is_typed_by_its_status(
    frame: dict[str, Any], cls: type[llmkit.APIError], code: str | None
) -> None:
    protocol = ResponsesProtocol()
    with pytest.raises(llmkit.APIError) as info:
        protocol.receive(json.dumps(frame))
    assert type(info.value) is cls
    assert info.value.message == "m"
    assert info.value.code == code
    assert info.value.body == frame  # the frame as it arrived
    assert info.value.partial is not None


def test_a_frame_whose_error_is_neither_object_nor_text_is_still_an_error() -> None:
    error = error_from_event(wire.ErrorEvent.model_validate({"type": "error", "error": [1, 2]}))
    assert type(error) is llmkit.ResponseFailed and error.message == "[1,2]"
    headers = {"type": "error", "status": 429, "error": {"message": "m", "headers": {"a": 1}}}
    limited = error_from_event(wire.ErrorEvent.model_validate(headers))
    assert isinstance(limited, llmkit.RateLimitError) and limited.headers == {"a": "1"}


# --------------------------------------------------------------------------- error frames, tier 3

SHAPES: list[Any] = [
    pytest.param({"shape": "nested", "status": 429}, llmkit.RateLimitError, id="nested-429"),
    pytest.param({"shape": "flat", "status": None}, llmkit.ResponseFailed, id="flat"),
    pytest.param({"shape": "string", "status": None}, llmkit.ResponseFailed, id="string"),
    pytest.param({"shape": "string", "status": 401}, llmkit.AuthenticationError, id="string-401"),
    pytest.param(
        {"shape": "status_code", "status": 429, "code": "throttled"},
        llmkit.RateLimitError,
        id="status_code-429-renamed",
    ),
    pytest.param(
        {"shape": "status_code", "status": 403, "code": None},
        llmkit.PermissionDeniedError,
        id="status_code-403-no-code",
    ),
    pytest.param(
        {"shape": "nested", "status": 500, "code": None},
        llmkit.InternalServerError,
        id="nested-500-no-code",
    ),
    pytest.param(
        {"shape": "nested", "status": None, "code": None}, llmkit.ResponseFailed, id="no-status"
    ),
]


def _raised(server: ResponsesServer, transport: str) -> llmkit.LLMKitError:
    with provider(server, transport) as p, pytest.raises(llmkit.LLMKitError) as info:
        p.language_model("m").generate("hello")
    return info.value


@pytest.mark.parametrize("transport", WEBSOCKET, ids=WS_IDS)
@pytest.mark.parametrize(("arm", "cls"), SHAPES)
def test_an_error_frame_raises_what_its_http_equivalent_raises(
    server: ResponsesServer, transport: Any, arm: dict[str, Any], cls: type[llmkit.APIError]
) -> None:
    arm = {"code": "rate_limit_exceeded", **arm}
    server.faults.error_next(message="the gateway says no", **arm)
    error = _raised(server, transport)
    assert type(error) is cls
    assert isinstance(error, llmkit.APIError) and error.message == "the gateway says no"
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert "the gateway says no" in json.dumps(error.body)  # the frame, kept as it came
    assert server.stats.generations == 0
    http = HTTP[transport.is_async]
    if arm["status"] is None:  # over HTTP: the same event in an SSE stream
        server.faults.error_next(message="the gateway says no", **arm)
    else:  # over HTTP: an answer with that status
        server.faults.reject_requests(status=arm["status"], message="the gateway says no")
    assert type(_raised(server, http)) is cls


@pytest.mark.parametrize("transport", WEBSOCKET, ids=WS_IDS)
def test_a_key_in_an_error_frame_is_redacted(server: ResponsesServer, transport: Any) -> None:
    server.faults.error_next(code=None, message=f"bad key {API_KEY}", status=401, shape="string")
    error = _raised(server, transport)
    assert type(error) is llmkit.AuthenticationError
    for text in (str(error), repr(error), json.dumps(getattr(error, "body", None))):
        assert API_KEY not in text and "[REDACTED]" in json.dumps(getattr(error, "body", None))


# --------------------------------------------------------------------------- warm-ups


def test_a_warmup_is_prepared_only_with_input_tokens_for_its_input() -> None:
    assert warmup_prepared({"input": [{"role": "user", "content": "x"}]}, 18)
    assert not warmup_prepared({"input": [{"role": "user", "content": "x"}]}, 0)
    assert warmup_prepared({"input": []}, 0)  # nothing to prepare
    assert not llmkit.WarmupResult.skipped().prepared


@pytest.mark.parametrize("transport", WEBSOCKET, ids=WS_IDS)
def test_a_fake_warmup_then_a_tool_loop_gives_correct_answers(
    server: ResponsesServer, transport: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server.ws_fake_warmups = True
    caplog.set_level(logging.WARNING, logger="llmkit")
    with provider(server, transport) as p:
        loop = Loop(p.language_model("m"), steps=3)
        warm = loop.model.warmup(loop.call)
        assert warm.transport == "websocket" and warm.prepared is False
        assert warm.response_id is not None and warm.response_id.startswith("resp_warmup_")
        answer = loop.run()
        assert answer.text.startswith(loop.expected_answer)
        first = loop.responses[0].metadata
        assert (first.input_mode, first.input_items_sent) == ("full", 1)
        assert [r.metadata.input_mode for r in loop.responses[1:]] == ["incremental"] * 3
        again = loop.model.warmup(llmkit.Call("another conversation"))
        assert again.prepared is False
    requests = server.stats.requests
    assert requests[1].previous_response_id is None and requests[1].input_items == 1
    assert server.stats.context_violations == 0
    warnings = [r for r in caplog.records if r.name == "llmkit" and r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per provider
    assert "prepared nothing" in warnings[0].getMessage()
    with provider(server, transport) as p:
        p.language_model("m").warmup("a new provider")
    assert len([r for r in caplog.records if "prepared nothing" in r.getMessage()]) == 2


@pytest.mark.parametrize("transport", WEBSOCKET, ids=WS_IDS)
def test_a_real_warmup_is_prepared(
    server: ResponsesServer, transport: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmkit")
    with provider(server, transport) as p:
        loop = Loop(p.language_model("m"), steps=1)
        warm = loop.model.warmup(loop.call)
        assert warm.prepared is True and warm.usage.input_tokens > 0
        loop.run()
    assert loop.responses[0].metadata.input_mode == "incremental"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("transport", [t for t in TRANSPORTS if t != "websocket"])
def test_a_warmup_without_websocket_prepares_nothing(
    server: ResponsesServer, transport: Any
) -> None:
    with provider(server, transport) as p:
        assert p.language_model("m").warmup("hi").prepared is False


# --------------------------------------------------------------------------- closes without events


def test_only_a_clean_close_before_any_event_is_silent() -> None:
    clean = llmkit.ConnectionClosed("closed", code=1000, reason="no")
    assert silent_close(Failure("receive", clean))
    assert not silent_close(Failure("receive", clean, events=1))
    assert not silent_close(Failure("send", clean))
    assert not silent_close(Failure("receive", llmkit.ConnectionClosed("broke", code=1006)))
    assert not silent_close(Failure("receive", llmkit.Timeout("slow")))
    error = not_served(clean)
    assert isinstance(error, llmkit.ConnectionClosed) and error.retryable is False
    assert (error.code, error.reason) == (1000, "no")


@pytest.mark.parametrize("mode", ["generate", "stream", "warmup"])
@pytest.mark.parametrize("transport", WEBSOCKET, ids=WS_IDS)
def test_two_closes_without_an_event_say_websocket_is_not_served(
    server: ResponsesServer, transport: Any, mode: str
) -> None:
    server.faults.close_on_create(n=2, reason="model not enabled", include_warmups=True)
    with provider(server, transport, timeout=10.0) as p:
        model = p.language_model("m")
        with pytest.raises(llmkit.WebSocketNotServed) as info:
            if mode == "generate":
                model.generate("hello")
            elif mode == "stream":
                list(model.stream("hello"))
            else:
                model.warmup("hello")
        assert model.generate("then it works").text.startswith("Echo: then it works")
    error = info.value
    assert (error.code, error.reason, error.retryable) == (1000, "model not enabled", False)
    assert "websocket=False" in str(error) and "(code 1000: model not enabled)" in str(error)
    assert [r.status for r in server.stats.requests] == ["closed", "closed", "completed"]
    assert server.stats.generations == 1


@pytest.mark.parametrize("transport", WEBSOCKET, ids=WS_IDS)
def test_one_close_without_an_event_is_resent_in_full(
    server: ResponsesServer, transport: Any
) -> None:
    with provider(server, transport) as p:
        model = p.language_model("m")
        first = model.generate("first")
        server.faults.close_on_create()
        history: list[llmkit.Message] = [
            llmkit.UserMessage("first"),
            first.message,
            llmkit.UserMessage("second"),
        ]
        response = model.generate(llmkit.Call(history))
    assert response.text.startswith("Echo: second")
    assert response.metadata.input_mode == "full"
    assert [r.status for r in server.stats.requests] == ["completed", "closed", "completed"]


@pytest.mark.parametrize("mode", ["refuse", "ignore"])
@pytest.mark.parametrize("transport", WEBSOCKET, ids=WS_IDS)
def test_a_server_without_lanes_serves_a_conversation_on_one_connection(
    server: ResponsesServer, transport: Any, mode: str
) -> None:
    # A refused stream_id is resent on the socket it came over: no second connection.
    server.ws_lanes = mode  # type: ignore[assignment]
    with provider(server, transport) as p:
        model = p.language_model("m")
        first = model.generate("first")
        history: list[llmkit.Message] = [
            llmkit.UserMessage("first"),
            first.message,
            llmkit.UserMessage("second"),
        ]
        second = model.generate(llmkit.Call(history))
    assert second.text.startswith("Echo: second")
    assert len(server.stats.connections) == 1
    assert [r.status for r in server.stats.requests][-2:] == ["completed", "completed"]
    assert (second.metadata.stream_id, second.metadata.previous_response_id) == (
        None,
        first.metadata.response_id,
    )
    assert second.metadata.input_mode == "incremental" and second.metadata.connection_reused


def _attempt_fails(step: Turn[Link], error: llmkit.LLMKitError) -> None:
    # No event of the response: an error event is the one frame; a close comes after none.
    received = 0 if isinstance(error, llmkit.TransportError) else 1
    attempt_fails(step, *start(step), error, received)


CLOSED = llmkit.ConnectionClosed("closed", code=1000, reason="no")


def test_two_silent_closes_of_a_turn_mean_not_served() -> None:
    step = turn(session())
    _attempt_fails(step, CLOSED)  # resent on a new connection
    assert not step.over
    with pytest.raises(llmkit.WebSocketNotServed) as info:
        _attempt_fails(step, llmkit.ConnectionClosed("closed", code=1001, reason="away"))
    assert (info.value.code, info.value.reason) == (1001, "away")
    assert isinstance(info.value.__cause__, llmkit.ConnectionClosed)


@pytest.mark.parametrize(
    "first",
    [
        llmkit.BadRequestError("gone", status_code=400, code="previous_response_not_found"),
        llmkit.ConnectionClosed("restart", code=1012),
    ],
)
def test_a_silent_close_after_another_resend_is_a_plain_close(first: llmkit.LLMKitError) -> None:
    step = turn(session())
    _attempt_fails(step, first)
    # after a clean close, a broken one (1006, never resent); after a miss, a clean one
    code = 1006 if isinstance(first, llmkit.ConnectionClosed) else 1000
    closed = llmkit.ConnectionClosed("closed", code=code)
    with pytest.raises(llmkit.ConnectionClosed) as info:
        _attempt_fails(step, closed)
    assert info.value is closed


def test_a_session_warns_once_per_message(caplog: pytest.LogCaptureFixture) -> None:
    gate = CooldownGate(Cooldown())
    with caplog.at_level(logging.WARNING, logger="llmkit"):
        gate.warn_once("a")
        gate.warn_once("a")
        gate.warn_once("b")
        CooldownGate(Cooldown()).warn_once("a")
    assert [r.getMessage() for r in caplog.records] == ["a", "b", "a"]
