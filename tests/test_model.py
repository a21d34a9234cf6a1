"""Model-level behaviour, the same on every path (real sockets, local server).

Switching ``websocket=False`` to ``True``, or ``use_responses_api`` either way, must
change nothing for the caller: same calls, same results, same exceptions. Every test
here runs over Chat Completions, the Responses API over HTTP, and WebSocket mode.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import events as ev
import pytest
from loop import ADD, API_KEY, RESPONSES_TRANSPORTS, TRANSPORTS, Loop, Transport, provider
from portal import PortalModel

import llmkit
from llmkit.openai import ResponsesOptions
from llmkit.testing import ResponsesServer

DATA = Path(__file__).parent / "data"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Transport:
    # The Transport itself, not its text: it says which provider runs the test.
    assert isinstance(request.param, Transport)
    return request.param


@pytest.fixture
def model(server: ResponsesServer, transport: str) -> Iterator[llmkit.LanguageModel]:
    with provider(server, transport) as p:
        yield p.language_model("scripted-1")


def wire_transport(transport: str) -> str:
    """What `ResponseMetadata.transport` says for a test transport."""
    return "websocket" if transport == "websocket" else "http"


def echo(text: str, *, user: int = 1, assistant: int = 0, items: int = 1) -> str:
    return f"Echo: {text} [user={user} assistant={assistant} tool_outputs=0 items={items}]"


def test_an_async_transport_runs_the_async_provider(
    model: llmkit.LanguageModel, transport: Transport
) -> None:
    """Guards the suite itself: an ``async-…`` id must really drive `AsyncProvider`."""
    assert isinstance(model, PortalModel) is transport.is_async
    if isinstance(model, PortalModel):
        assert isinstance(model.model, llmkit.AsyncLanguageModel)


def test_generate_plain_text(model: llmkit.LanguageModel, transport: str) -> None:
    response = model.generate(llmkit.Call("hello there"))
    assert response.text == echo("hello there")
    assert response.finish_reason is llmkit.FinishReason.STOP
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    prefix = "chatcmpl-" if transport == "chat" else "resp_"
    assert response.id is not None and response.id.startswith(prefix)
    assert response.metadata.transport == wire_transport(transport)
    assert response.metadata.fallback_reason is None
    assert response.metadata.input_items_sent == 1
    assert response.metadata.bytes_sent > 0
    assert response.metadata.time_to_first_token is not None
    assert response.metadata.duration >= response.metadata.time_to_first_token


def test_stream_yields_parts_that_fold_to_generate(model: llmkit.LanguageModel) -> None:
    with model.stream(llmkit.Call("stream me")) as stream:
        parts = list(stream)
    kinds = [p.type for p in parts]
    assert kinds[0] == "text_start" and kinds[-2:] == ["text_end", "finish"]
    deltas = "".join(p.delta for p in parts if isinstance(p, llmkit.TextDelta))
    assert deltas == stream.response.text == echo("stream me")
    assert llmkit.collect(parts).text == stream.response.text


def _sse(payloads: list[str]) -> bytes:
    return b"".join(f"data: {payload}\n\n".encode() for payload in payloads)


@pytest.mark.parametrize("transport", RESPONSES_TRANSPORTS)
def test_deltas_without_item_ids_are_one_part_each_by_generate_and_stream(
    server: ResponsesServer, transport: Transport
) -> None:
    # A server that names its items only in output_item.done: the text, reasoning and
    # tool input streamed before must merge with those items, not appear twice.
    reasoning = ev.reasoning_item("rs_1", ["Think"], encrypted_content="enc")
    message = ev.message_item("msg_1", "Hi")
    call = ev.function_call_item("fc_1", "call_1", "add", '{"a":1,"b":2}')
    body = _sse(
        ev.numbered(
            [
                ev.created(),
                ev.summary_delta(None, "Think", output_index=0),
                ev.item_done(reasoning, output_index=0),
                ev.text_delta(None, "H", output_index=1),
                ev.text_delta(None, "i", output_index=1),
                ev.item_done(message, output_index=1),
                ev.args_delta(None, '{"a":1,', output_index=2),
                ev.args_delta(None, '"b":2}', output_index=2),
                ev.item_done(call, output_index=2),
                ev.completed(output=[reasoning, message, call]),
            ]
        )
    )
    server.replay_next(body, n=2)
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        generated = model.generate(llmkit.Call("hi", tools=[ADD]))
        with model.stream(llmkit.Call("hi", tools=[ADD])) as stream:
            parts = list(stream)
    for response in (generated, stream.response):
        assert response.text == "Hi"
        assert [type(part) for part in response.content] == [
            llmkit.ReasoningPart,
            llmkit.TextPart,
            llmkit.ToolCall,
        ]
        assert [part.summary for part in response.reasoning] == [("Think",)]
        assert response.tool_calls == [llmkit.ToolCall("call_1", "add", '{"a":1,"b":2}')]
    assert "".join(p.delta for p in parts if isinstance(p, llmkit.TextDelta)) == "Hi"
    assert server.stats.generations == 2


@pytest.mark.parametrize("transport", [t for t in TRANSPORTS if t == "chat"])
def test_a_chat_stream_ending_after_its_finish_reason_without_done_is_complete(
    server: ResponsesServer, transport: Transport
) -> None:
    # `[DONE]` is a convention some servers skip: EOF after a finish reason is the end.
    recorded = (DATA / "chat" / "openai-text-usage.sse").read_bytes()
    body = recorded.replace(b"data: [DONE]\n\n", b"")
    assert body != recorded
    server.replay_next(body, n=2)
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        generated = model.generate(llmkit.Call("hi"))
        with model.stream(llmkit.Call("hi")) as stream:
            parts = list(stream)
    for response in (generated, stream.response):
        assert response.text == "Hello there!"
        assert response.finish_reason is llmkit.FinishReason.STOP
        assert response.usage.output_tokens == 4
    assert isinstance(parts[-1], llmkit.Finish)


def test_tool_loop_gives_the_correct_answer(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    loop = Loop(model, steps=5)
    answer = loop.run()
    assert answer.text.startswith(loop.expected_answer)
    assert [r.finish_reason for r in loop.responses] == [llmkit.FinishReason.TOOL_CALLS] * 5 + [
        llmkit.FinishReason.STOP
    ]
    assert server.stats.generations == 6
    assert server.stats.context_violations == 0


@pytest.mark.parametrize("transport", RESPONSES_TRANSPORTS)
def test_history_with_reasoning_replays_with_store_false(
    server: ResponsesServer, transport: str
) -> None:
    options = ResponsesOptions(reasoning_effort="low", reasoning_summary="auto")
    with provider(server, transport) as p:
        model = p.language_model("scripted-reasoner")
        first = model.generate(llmkit.Call("think", provider_options={"openai": options}))
        assert first.reasoning and first.reasoning[0].encrypted_content
        assert first.reasoning[0].summary
        history: list[llmkit.Message] = [
            llmkit.UserMessage("think"),
            first.message,
            llmkit.UserMessage("again"),
        ]
        second = model.generate(llmkit.Call(history, provider_options={"openai": options}))
    assert "Echo: again" in second.text
    assert second.usage.reasoning_tokens > 0
    assert server.stats.context_violations == 0


def test_chat_reasoning_content_is_reasoning_and_the_history_replays(
    server: ResponsesServer,
) -> None:
    with provider(server, "chat") as p:
        model = p.language_model("scripted-reasoner")
        first = model.generate(llmkit.Call("think"))
        assert first.reasoning and first.reasoning[0].content[0].startswith("**Planning**")
        assert first.usage.reasoning_tokens > 0
        history: list[llmkit.Message] = [
            llmkit.UserMessage("think"),
            first.message,
            llmkit.UserMessage("again"),
        ]
        second = model.generate(llmkit.Call(history))
    assert "Echo: again" in second.text
    assert server.stats.context_violations == 0


def test_incomplete_maps_to_length(model: llmkit.LanguageModel) -> None:
    response = model.generate(llmkit.Call("a long answer " * 10, max_output_tokens=16))
    assert response.finish_reason is llmkit.FinishReason.LENGTH
    assert response.text


def test_response_failed_raises_with_partial_and_the_next_call_is_correct(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    server.faults.fail_next(code="server_error", message="boom")
    with pytest.raises(llmkit.ResponseFailed) as caught:
        model.generate(llmkit.Call("first"))
    assert caught.value.code == "server_error"
    assert caught.value.message == "boom"
    assert caught.value.retryable
    partial = caught.value.partial
    assert partial is not None and partial.finish_reason is llmkit.FinishReason.ERROR
    assert partial.id is not None
    assert model.generate(llmkit.Call("second")).text == echo("second")
    assert server.stats.generations == 2  # the failed one ran once, never replayed


@pytest.mark.parametrize("shape", ["nested", "flat"])
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, llmkit.BadRequestError),
        (429, llmkit.RateLimitError),
        (500, llmkit.InternalServerError),
    ],
)
def test_error_events_are_typed_like_http_errors(
    model: llmkit.LanguageModel,
    server: ResponsesServer,
    transport: str,
    shape: str,
    status: int,
    error: type[llmkit.APIStatusError],
) -> None:
    server.faults.error_next(code="some_code", message="went wrong", status=status, shape=shape)  # type: ignore[arg-type]
    with pytest.raises(llmkit.APIError) as caught:
        model.generate(llmkit.Call("first"))
    assert caught.value.message == "went wrong"
    if transport == "chat" and shape == "flat":  # vLLM's shape: the status is the code
        assert type(caught.value) is error
        assert caught.value.code == str(status)
    elif shape == "nested" and transport != "chat":  # the same class as an HTTP error
        assert caught.value.code == "some_code"
        assert type(caught.value) is error
        assert caught.value.retryable is (status != 400)
    else:  # no status in the payload
        assert caught.value.code == "some_code"
        assert type(caught.value) is llmkit.ResponseFailed
    assert caught.value.partial is not None
    assert model.generate(llmkit.Call("next")).text == echo("next")


def test_a_drop_mid_stream_raises_connection_closed_with_the_text_so_far(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    server.faults.drop_after(5)
    with model.stream(llmkit.Call("one two three four five six")) as stream:
        seen: list[str] = []
        with pytest.raises((llmkit.ConnectionClosed, llmkit.IncompleteStream)) as caught:
            for part in stream:
                if isinstance(part, llmkit.TextDelta):
                    seen.append(part.delta)
    assert seen
    partial = caught.value.partial
    assert partial is not None and partial.text == "".join(seen)
    assert caught.value.retryable
    assert model.generate(llmkit.Call("after")).text == echo("after")


def test_an_abandoned_stream_never_corrupts_the_next_call(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    server.faults.slow(0.01)
    with model.stream(llmkit.Call("a b c d e f g h i j k l")) as stream:
        for part in stream:
            if isinstance(part, llmkit.TextDelta):
                break
    with pytest.raises(llmkit.UsageError):
        _ = stream.response
    assert model.generate(llmkit.Call("fresh")).text == echo("fresh")
    assert model.generate(llmkit.Call("again")).text == echo("again")


def test_a_stream_never_iterated_sends_nothing_and_holds_nothing(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    streams = [model.stream(llmkit.Call(f"never {i}")) for i in range(6)]
    assert model.generate(llmkit.Call("used")).text == echo("used")
    for stream in streams:
        stream.close()
    assert server.stats.generations == 1


def test_unknown_events_are_ignored(model: llmkit.LanguageModel, server: ResponsesServer) -> None:
    server.faults.unknown_events = True
    assert model.generate(llmkit.Call("future")).text == echo("future")


def test_a_stalled_server_times_out_and_the_next_call_is_correct(
    server: ResponsesServer, transport: str
) -> None:
    with provider(server, transport, timeout=0.3) as p:
        model = p.language_model("scripted")
        server.faults.slow(1.0)
        with pytest.raises(llmkit.Timeout):
            model.generate(llmkit.Call("slow one two"))
        assert model.generate(llmkit.Call("quick")).text == echo("quick")


def test_a_rejected_key_is_an_authentication_error_without_the_key(transport: str) -> None:
    with (
        ResponsesServer(api_key="sk-the-right-key-0000") as server,
        provider(server, transport) as p,
        pytest.raises(llmkit.AuthenticationError) as caught,
    ):
        p.language_model("scripted").generate(llmkit.Call("hi"))
    error = caught.value
    assert error.status_code == 401
    assert not error.retryable
    for text in (str(error), repr(error), error.message, repr(error.body), repr(error.headers)):
        assert API_KEY not in text


def test_the_api_key_never_appears_in_reprs_or_logs(
    model: llmkit.LanguageModel, caplog: pytest.LogCaptureFixture, server: ResponsesServer
) -> None:
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        response = model.generate(llmkit.Call("secret?"))
        server.faults.fail_next()
        with pytest.raises(llmkit.ResponseFailed) as caught:
            model.generate(llmkit.Call("fail"))
    texts = [caplog.text, repr(model), repr(response), str(caught.value), repr(caught.value)]
    assert all(API_KEY not in text for text in texts)


def test_warmup_over_http_is_a_no_op_and_over_websocket_a_chain_head(
    model: llmkit.LanguageModel, server: ResponsesServer, transport: str
) -> None:
    loop = Loop(model, steps=2)
    result = model.warmup(loop.call)
    assert result.transport == wire_transport(transport)
    assert loop.run().text.startswith(loop.expected_answer)
    assert server.stats.generations == 3
    if transport != "websocket":
        assert result == llmkit.WarmupResult(None, llmkit.Usage(), "http")
        assert server.stats.warmups == 0
    else:
        assert result.response_id is not None and result.usage.input_tokens > 0
        assert result.usage.output_tokens == 0
        assert server.stats.warmups == 1
        first = loop.responses[0].metadata
        assert (first.input_mode, first.input_items_sent) == ("incremental", 0)


def test_metadata_shape_is_the_same_on_both_transports(model: llmkit.LanguageModel) -> None:
    metadata = model.generate(llmkit.Call("shape")).metadata
    fields = {f.name for f in dataclasses.fields(metadata)}
    assert fields == {f.name for f in dataclasses.fields(llmkit.ResponseMetadata)}
    assert metadata.model is not None


def test_invalid_calls_raise_usage_error_before_sending(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    with pytest.raises(llmkit.UsageError, match="bogus"):
        model.stream(llmkit.Call("x", provider_options={"openai": {"bogus": 1}}))
    with pytest.raises(llmkit.UsageError):
        model.generate(llmkit.Call("x", tools=[ADD], tool_choice="nope"))
    with pytest.raises(llmkit.UsageError):
        model.warmup(llmkit.Call("x", tools=[ADD], tool_choice="nope"))
    assert server.stats.requests == []


class Cancelled(BaseException):
    """Stands for KeyboardInterrupt or a cancellation raised inside the consumer."""


def test_a_cancelled_consumer_leaves_the_model_usable(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    server.faults.slow(0.01)
    stream = model.stream(llmkit.Call("one two three four five six"))
    with pytest.raises(Cancelled), stream:
        for part in stream:
            if isinstance(part, llmkit.TextDelta):
                raise Cancelled
    assert not stream.finished
    assert model.generate(llmkit.Call("after cancel")).text == echo("after cancel")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_statuses_are_retried_over_real_sockets(
    server: ResponsesServer, transport: str, status: int
) -> None:
    server.faults.reject_requests(n=2, status=status, headers={"retry-after": "0"})
    with provider(server, transport, max_retries=2) as p:
        model = p.language_model("scripted")
        if transport == "websocket":  # HTTP statuses only reach the HTTP path
            server.faults.reject_upgrades()
        response = model.generate(llmkit.Call("retried"))
    assert response.text == echo("retried")
    assert response.metadata.transport == "http"
    assert server.stats.generations == 1


def test_statuses_are_mapped_with_request_ids_over_real_sockets(server: ResponsesServer) -> None:
    server.faults.reject_requests(status=429, code="rate_limit_exceeded", message="slow down")
    with (
        provider(server, "http", max_retries=0) as p,
        pytest.raises(llmkit.RateLimitError) as caught,
    ):
        p.language_model("scripted").generate(llmkit.Call("limited"))
    error = caught.value
    assert (error.status_code, error.code, error.message) == (
        429,
        "rate_limit_exceeded",
        "slow down",
    )
    assert error.request_id is not None and error.request_id.startswith("req_")
    assert error.retryable


def _prompt_with_a_dropped_part(transport: str) -> list[llmkit.Message]:
    if transport == "chat":  # Chat has no input for a provider item
        dropped: llmkit.ProviderItemPart | llmkit.ReasoningPart = llmkit.ProviderItemPart(
            "cmp_1", "compaction", {}
        )
    else:  # Responses cannot replay a reasoning item without an id
        dropped = llmkit.ReasoningPart(None, ("s",), (), "gAAA")
    return [
        llmkit.UserMessage("hi"),
        llmkit.AssistantMessage([dropped]),
        llmkit.UserMessage("again"),
    ]


def test_encoder_warnings_come_first_and_stay_on_the_response(
    model: llmkit.LanguageModel, transport: str
) -> None:
    """A part the API cannot take is left out with a `Warnings` part, on every path."""
    prompt = _prompt_with_a_dropped_part(transport)
    with model.stream(llmkit.Call(prompt)) as stream:
        parts = list(stream)
    assert isinstance(parts[0], llmkit.Warnings) and len(parts[0].warnings) == 1
    assert stream.response.warnings == parts[0].warnings
    assert stream.response.finish_reason is llmkit.FinishReason.STOP
    assert model.generate(llmkit.Call(prompt)).warnings == parts[0].warnings


def test_a_failed_call_keeps_its_warnings_on_the_partial(
    model: llmkit.LanguageModel, server: ResponsesServer, transport: str
) -> None:
    """The partial is the call's one fold, which holds the `Warnings` part too."""
    server.faults.fail_next(code="server_error", message="boom")
    with pytest.raises(llmkit.ResponseFailed) as caught:
        model.generate(llmkit.Call(_prompt_with_a_dropped_part(transport)))
    partial = caught.value.partial
    assert partial is not None and len(partial.warnings) == 1
    assert partial.finish_reason is llmkit.FinishReason.ERROR
