"""WebSocket mode against the local server over real sockets.

Each test here names the bug of the Go original it proves absent (PEERS.md (b), "bug N").
The behaviour shared with HTTP is in test_model.py, which runs over both transports and
covers the rest:

* bugs 1 and 15 (blank, untyped WS errors): ``test_error_events_are_typed_like_http_errors``
* bug 14 (incomplete reported as stop): ``test_incomplete_maps_to_length``
* bug 19 (warm-up hidden in generate):
  ``test_warmup_over_http_is_a_no_op_and_over_websocket_a_chain_head``
* bug 4 (cancellation): also ``test_a_cancelled_consumer_leaves_the_model_usable``
* bug 21 (untested dangerous paths): this file and test_model.py as a whole
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loop import ADD, TRANSPORTS, Loop, idle_connections_closed, provider
from portal import PortalProvider
from test_security import FLAVOURS, Flavour

import llmkit
from llmkit.openai import ResponsesOptions
from llmkit.testing import ResponsesServer
from llmkit.transports.base import websocket_url

RECORDED = Path(__file__).parent / "data" / "recorded"


@pytest.fixture
def ws(server: ResponsesServer) -> Iterator[llmkit.Provider | PortalProvider]:
    with provider(server, "websocket", ws_cooldown=0.2, ws_cooldown_max=0.4) as p:
        yield p


@pytest.fixture
def model(ws: llmkit.Provider | PortalProvider) -> llmkit.LanguageModel:
    return ws.language_model("scripted")


def http_requests(server: ResponsesServer) -> int:
    return sum(1 for r in server.stats.requests if r.transport == "http")


# --------------------------------------------------------------------------- acceptance


def test_a_30_turn_tool_loop_is_incremental_flat_and_billed_once_per_turn(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    loop = Loop(model, steps=29)
    answer = loop.run()
    assert answer.text.startswith(loop.expected_answer)  # 30 turns: 29 calls + the answer
    metadata = [r.metadata for r in loop.responses]
    assert len(metadata) == 30
    assert {m.transport for m in metadata} == {"websocket"}
    assert metadata[0].input_mode == "full"
    assert all(m.input_mode == "incremental" for m in metadata[1:])
    assert all(m.input_items_sent == 1 for m in metadata[1:])
    sizes = [m.bytes_sent for m in metadata[1:]]
    assert max(sizes) - min(sizes) < 16  # flat while the history grows to 60 items
    assert all(m.connection_reused for m in metadata[1:])
    assert server.stats.context_violations == 0
    assert server.stats.generations == 30
    assert server.stats.connections_opened == 1


def test_the_same_loop_gives_identical_answers_on_every_path_of_both_providers(
    server: ResponsesServer,
) -> None:
    results = {}
    for transport in TRANSPORTS:  # Provider and AsyncProvider, each on the three paths
        with provider(server, transport) as p:
            loop = Loop(p.language_model("scripted"), steps=4)
            loop.run()
            results[transport.id] = [
                (r.text, [(c.name, c.arguments) for c in r.tool_calls], r.finish_reason)
                for r in loop.responses
            ]
    assert len(results) == 6
    assert all(answers == results["chat"] for answers in results.values())
    assert results["http"][-1][0].startswith("The answer is 10.")
    assert server.stats.context_violations == 0


def test_two_interleaved_conversations_keep_their_own_chains(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 8
    first, second = Loop(model, steps=9), Loop(model, steps=9)
    second.history[0] = llmkit.UserMessage("Another sum [steps=9]")
    for _ in range(10):
        first.turn()
        second.turn()
    assert first.responses[-1].text.startswith(first.expected_answer)
    assert second.responses[-1].text.startswith(second.expected_answer)
    for loop in (first, second):
        assert all(r.metadata.input_mode == "incremental" for r in loop.responses[1:])
    assert server.stats.context_violations == 0
    assert server.stats.generations == 20


def test_concurrent_conversations_on_one_provider(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 20
    loops = [Loop(model, steps=3) for _ in range(8)]
    for index, loop in enumerate(loops):
        loop.history[0] = llmkit.UserMessage(f"Thread {index} [steps=3]")
    errors: list[BaseException] = []

    def run(loop: Loop) -> None:
        try:
            loop.run()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert all(loop.responses[-1].text.startswith(loop.expected_answer) for loop in loops)
    assert server.stats.context_violations == 0
    assert server.stats.generations == 32
    assert server.stats.connections_opened <= 4


# --------------------------------------------------------------------------- recovery


def test_previous_response_not_found_is_resent_once_with_full_input(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 12
    loop = Loop(model, steps=3)
    loop.turn()
    server.faults.error_next(code="previous_response_not_found", message="gone", status=400)
    response = loop.turn()
    assert response.tool_calls
    assert response.metadata.input_mode == "full"
    assert loop.run().text.startswith(loop.expected_answer)
    assert server.stats.generations == 4
    assert server.stats.context_violations == 0


def test_the_connection_age_limit_reconnects_and_resends_in_full(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bugs 11, 16
    loop = Loop(model, steps=2)
    loop.turn()
    # Long enough for the new connection's create to come in time on a loaded machine
    # (the limit applies to every connection), short enough for the old one to pass it.
    server.max_connection_age = 0.5
    time.sleep(0.6)
    response = loop.turn()
    assert response.metadata.input_mode == "full"
    assert not response.metadata.connection_reused
    server.max_connection_age = None
    assert loop.run().text.startswith(loop.expected_answer)
    assert server.stats.generations == 3
    assert server.stats.connections_opened == 2


def test_a_connection_closed_while_idle_is_replaced_before_sending(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 6
    loop = Loop(model, steps=2)
    loop.turn()
    idle_connections_closed(server)
    response = loop.turn()
    assert response.metadata.input_mode == "full"
    assert loop.run().text.startswith(loop.expected_answer)
    assert server.stats.generations == 3
    assert server.stats.connections_opened == 2


def test_an_old_connection_is_rotated_before_the_server_limit(server: ResponsesServer) -> None:
    with provider(server, "websocket", ws_max_age=0.05) as p:
        loop = Loop(p.language_model("scripted"), steps=1)
        loop.turn()
        time.sleep(0.1)
        assert loop.run().text.startswith(loop.expected_answer)
    assert server.stats.connections_opened == 2
    assert not any(r.status == "previous_response_not_found" for r in server.stats.requests)


# --------------------------------------------------------------------------- fallback


@pytest.mark.parametrize("status", [503, 426, 404, None])
def test_a_rejected_upgrade_falls_back_to_http_once_then_websocket_returns(
    model: llmkit.LanguageModel, server: ResponsesServer, status: int | None
) -> None:  # bugs 2, 17
    server.faults.reject_upgrades(status=status)
    response = model.generate(llmkit.Call("fallback"))
    assert response.metadata.transport == "http"
    assert response.metadata.fallback_reason
    assert server.stats.generations == 1
    cooling = model.generate(llmkit.Call("still cooling"))
    assert cooling.metadata.transport == "http"
    assert cooling.metadata.fallback_reason is not None
    assert "cooling down" in cooling.metadata.fallback_reason
    time.sleep(0.25)
    back = model.generate(llmkit.Call("back"))
    assert back.metadata.transport == "websocket"
    assert back.metadata.fallback_reason is None
    assert server.stats.generations == 3


def test_a_frame_too_big_falls_back_to_http_for_that_request(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 16
    server.faults.max_frame_size = 400
    response = model.generate(llmkit.Call("x" * 1000))
    assert response.metadata.transport == "http"
    assert response.metadata.fallback_reason is not None
    assert "1009" in response.metadata.fallback_reason
    assert response.text.startswith("Echo: " + "x" * 1000)
    assert server.stats.generations == 1
    server.faults.max_frame_size = None
    assert model.generate(llmkit.Call("small")).metadata.transport == "websocket"


def test_a_turn_after_an_http_fallback_continues_correctly(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 13
    loop = Loop(model, steps=4)
    loop.turn()
    server.faults.close_idle()
    server.faults.reject_upgrades()
    assert loop.turn().metadata.transport == "http"
    time.sleep(0.25)
    answer = loop.run()
    assert answer.text.startswith(loop.expected_answer)
    assert loop.responses[-1].metadata.transport == "websocket"
    assert server.stats.context_violations == 0
    assert server.stats.generations == 5


@pytest.mark.parametrize("fault", ["fail", "error", "drop"])
def test_no_failure_after_the_request_reached_the_model_is_replayed(
    model: llmkit.LanguageModel, server: ResponsesServer, fault: str
) -> None:  # bug 2
    if fault == "fail":
        server.faults.fail_next()
    elif fault == "error":
        server.faults.error_next(status=429, code="rate_limit_exceeded")
    else:
        server.faults.drop_after(3)
    with pytest.raises(llmkit.LLMKitError):
        model.generate(llmkit.Call("once only, one two three four"))
    assert http_requests(server) == 0
    assert len(server.stats.requests) == 1


def test_a_warmup_never_falls_back_to_http(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 3
    server.faults.reject_upgrades()
    result = model.warmup(llmkit.Call("warm", tools=[ADD]))
    assert result == llmkit.WarmupResult(None, llmkit.Usage(), "http")
    assert server.stats.requests == []


def test_a_failed_warmup_raises_and_bills_no_output(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bugs 3, 19
    server.faults.fail_next(include_warmups=True)
    with pytest.raises(llmkit.ResponseFailed):
        model.warmup(llmkit.Call("warm"))
    assert http_requests(server) == 0
    assert model.generate(llmkit.Call("then")).metadata.input_mode == "full"


# --------------------------------------------------------------------------- connections


@pytest.mark.parametrize("lanes", [True, False])
def test_an_abandoned_stream_drains_its_lane_or_retires_its_connection(
    server: ResponsesServer, lanes: bool
) -> None:  # bugs 4, 5
    server.faults.slow(0.01)
    with provider(server, "websocket", ws_lanes=lanes) as p:
        model = p.language_model("scripted")
        with model.stream(llmkit.Call("one two three four five six seven eight")) as stream:
            next(iter(stream))
        assert not stream.finished
        with pytest.raises(llmkit.UsageError):
            _ = stream.response
        after = model.generate(llmkit.Call("next"))
        assert after.text.startswith("Echo: next")
        if lanes:  # another lane of the same socket; the abandoned one drains
            assert after.metadata.connection_reused
            assert after.metadata.stream_id not in (None, "lane-1")
            assert server.stats.connections_opened == 1
            later = model.generate(llmkit.Call("later"))  # the server sent the rest meanwhile
            assert later.text.startswith("Echo: later")
        else:
            assert not after.metadata.connection_reused
            assert server.stats.connections_opened == 2
    assert server.stats.context_violations == 0


def test_a_busy_pool_waits_with_a_bounded_timeout(server: ResponsesServer) -> None:  # bug 7
    with provider(server, "websocket", ws_max_connections=1, timeout=0.5, ws_lanes=False) as p:
        model = p.language_model("scripted")
        server.faults.slow(0.02)
        stream = model.stream(llmkit.Call("a b c d e f g h"))
        next(iter(stream))  # the only connection is now leased
        with pytest.raises(llmkit.Timeout, match="busy"):
            model.generate(llmkit.Call("blocked"))
        stream.close()
        assert model.generate(llmkit.Call("free")).text.startswith("Echo: free")


def test_an_edited_history_is_sent_in_full(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 9
    loop = Loop(model, steps=3)
    loop.turn()
    loop.turn()
    loop.history.insert(0, llmkit.SystemMessage("Be terse."))
    response = loop.turn()
    assert response.metadata.input_mode == "full"
    assert response.metadata.input_items_sent == len(loop.history) - 2
    assert loop.run().text.startswith(loop.expected_answer)
    assert server.stats.context_violations == 0


def test_changed_settings_break_the_chain(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 9
    history: list[llmkit.Message] = [llmkit.UserMessage("hi")]
    first = model.generate(llmkit.Call(history))
    history += [first.message, llmkit.UserMessage("again")]
    changed = model.generate(llmkit.Call(history, temperature=0.5))
    assert changed.metadata.input_mode == "full"
    history += [changed.message, llmkit.UserMessage("third")]
    same = model.generate(llmkit.Call(history, temperature=0.5))
    assert same.metadata.input_mode == "incremental"
    assert server.stats.context_violations == 0


def test_an_explicit_previous_response_id_is_honoured(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 10
    first = model.generate(llmkit.Call("remember me"))
    assert first.id is not None
    options = ResponsesOptions(previous_response_id=first.id)
    second = model.generate(llmkit.Call("and now", provider_options={"openai": options}))
    assert second.text == "Echo: and now [user=2 assistant=1 tool_outputs=0 items=3]"
    assert server.stats.requests[-1].previous_response_id == first.id
    assert second.metadata.input_mode == "incremental"


def test_a_response_done_terminal_event_ends_the_turn(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 16
    body = (
        RECORDED
        / "charmbracelet-fantasy/TestOpenAIResponsesCommon__openai-gpt-5__simple_streaming.i0.sse"
    ).read_bytes()
    server.replay_next(body.replace(b'"type":"response.completed"', b'"type":"response.done"'))
    response = model.generate(llmkit.Call("replayed"))
    assert response.finish_reason is llmkit.FinishReason.STOP
    assert response.text


def test_a_response_larger_than_one_mebibyte_is_received(
    model: llmkit.LanguageModel,
) -> None:
    # Long words keep the deltas few (the test is about the final frame's size, which
    # echoes the whole answer: more than 1 MiB in one frame).
    text = ("w" * 999 + " ") * 1_500
    response = model.generate(llmkit.Call(text))
    assert response.text.startswith("Echo: " + text.strip()[:100])
    assert len(response.text) > 1_400_000


# --------------------------------------------------------------------------- handshake


def test_the_websocket_url_is_the_base_url_with_the_scheme_swapped() -> None:  # bug 18
    assert websocket_url("https://api.example.com/v1") == "wss://api.example.com/v1/responses"
    assert websocket_url("http://127.0.0.1:8/proxy/v1/") == "ws://127.0.0.1:8/proxy/v1/responses"
    assert (
        websocket_url("https://r.example.com/openai/v1?api-version=preview")
        == "wss://r.example.com/openai/v1/responses?api-version=preview"
    )


def _handshake_server(reply: bytes) -> tuple[socket.socket, list[bytes]]:
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(5)
            seen.append(connection.recv(65536))
            connection.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return listener, seen


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_cross_origin_redirect_is_refused_and_headers_are_sent(
    flavour: Flavour,
) -> None:  # bug 18
    other = "ws://127.0.0.2:9/v1/responses"
    reply = f"HTTP/1.1 302 Found\r\nLocation: {other}\r\nContent-Length: 0\r\n\r\n".encode()
    listener, seen = _handshake_server(reply)
    with listener:
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/v1/responses"
        with pytest.raises(llmkit.ConnectError, match="another origin"):
            flavour.connect(
                url, headers={"Authorization": "Bearer sk-handshake", "X-Custom": "yes"}
            )
    request = seen[0].decode()
    assert request.startswith("GET /v1/responses HTTP/1.1")
    assert "Authorization: Bearer sk-handshake" in request
    assert "X-Custom: yes" in request


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'{"error":{"message":"bad key sk-handshake",'
            b'"type":"invalid_request_error","code":"invalid_api_key"}}',
            id="nested",
        ),
        # A gateway's flat shape reads as it does on an HTTP error (one body parser).
        pytest.param(b'{"message":"bad key sk-handshake","code":"invalid_api_key"}', id="flat"),
    ],
)
def test_a_refused_upgrade_is_a_typed_status_error_without_the_key(
    flavour: Flavour, body: bytes
) -> None:
    reply = (
        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nx-request-id: req_1\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    listener, _ = _handshake_server(reply)
    with listener:
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/v1/responses"
        with pytest.raises(llmkit.AuthenticationError) as caught:
            flavour.connect(
                url, headers={"Authorization": "Bearer sk-handshake"}, secrets=["sk-handshake"]
            )
    error = caught.value
    assert (error.status_code, error.code, error.request_id) == (401, "invalid_api_key", "req_1")
    assert error.message.startswith("bad key ")
    assert "sk-handshake" not in str(error) + repr(error.body)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_connection_refused_is_a_connect_error(flavour: Flavour) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(llmkit.ConnectError, match=r"could not connect to ws://127\.0\.0\.1"):
        flavour.connect(f"ws://127.0.0.1:{port}/v1/responses")


def test_connects_fallbacks_and_chain_resets_are_logged_with_reasons(
    model: llmkit.LanguageModel, server: ResponsesServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        loop = Loop(model, steps=2)
        loop.turn()
        server.faults.close_idle()
        server.faults.reject_upgrades()
        loop.turn()
    messages = [r.getMessage() for r in caplog.records if r.name == "llmkit"]
    assert any(m.startswith("opened WebSocket connection") for m in messages)
    assert any(m.startswith("chain reset on WebSocket connection 0:") for m in messages)
    assert any(m.startswith("WebSocket connect failed") for m in messages)
    assert any(m.startswith("falling back to HTTP") and "503" in m for m in messages)


def test_a_warmup_too_big_for_the_socket_is_a_no_op(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:  # bug 3
    server.faults.max_frame_size = 200
    result = model.warmup(llmkit.Call("x" * 500))
    assert result == llmkit.WarmupResult(None, llmkit.Usage(), "http")
    assert http_requests(server) == 0
    assert server.stats.warmups == 0
