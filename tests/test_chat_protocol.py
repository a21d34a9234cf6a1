"""`ChatProtocol` edge cases, payload by payload (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import llmkit
from llmkit.openai import ChatProtocol
from llmkit.openai.chat import wire
from llmkit.openai.protocol import State


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    body.update(extra)
    return json.dumps(body)


def tool(index: int | None, id: str | None = None, name: str | None = None, args: str = "") -> str:
    call: dict[str, Any] = {"function": {"arguments": args}}
    if index is not None:
        call["index"] = index
    if id is not None:
        call["id"] = id
    if name is not None:
        call["function"]["name"] = name
    return chunk({"tool_calls": [call]})


def run(*payloads: str) -> tuple[list[llmkit.StreamPart], ChatProtocol]:
    protocol = ChatProtocol()
    parts: list[llmkit.StreamPart] = []
    for payload in payloads:
        parts += protocol.receive(payload)
    return parts + protocol.finish(), protocol


def test_the_finish_part_waits_for_the_usage_chunk_and_done() -> None:
    protocol = ChatProtocol()
    assert protocol.receive(chunk({"content": "hi"})) == [
        llmkit.TextStart(None),
        llmkit.TextDelta(None, "hi"),
    ]
    assert protocol.receive(chunk({}, "stop")) == [llmkit.TextEnd(None, "hi")]
    assert protocol.state is State.STREAMING  # not done: usage may follow
    usage = {"prompt_tokens": 3, "completion_tokens": 1}
    assert protocol.receive(json.dumps({"id": "chatcmpl-1", "choices": [], "usage": usage})) == []
    parts = protocol.receive(b"[DONE]")
    assert protocol.done
    assert parts == [
        llmkit.Finish(
            llmkit.FinishReason.STOP,
            llmkit.Usage(input_tokens=3, output_tokens=1, total_tokens=4),
            llmkit.ResponseMetadata(response_id="chatcmpl-1", model="m"),
        )
    ]
    assert protocol.receive(chunk({"content": "late"})) == []
    assert protocol.finish() == []


def test_eof_after_a_finish_reason_finishes() -> None:
    parts, protocol = run(chunk({"content": "x"}, "length"))
    assert isinstance(parts[-1], llmkit.Finish)
    assert parts[-1].finish_reason is llmkit.FinishReason.LENGTH
    assert protocol.done


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", llmkit.FinishReason.STOP),
        ("eos", llmkit.FinishReason.STOP),
        ("length", llmkit.FinishReason.LENGTH),
        ("max_tokens", llmkit.FinishReason.LENGTH),
        ("tool_calls", llmkit.FinishReason.TOOL_CALLS),
        ("function_call", llmkit.FinishReason.TOOL_CALLS),
        ("content_filter", llmkit.FinishReason.CONTENT_FILTER),
        ("something_new", llmkit.FinishReason.OTHER),
    ],
)
def test_finish_reasons(reason: str, expected: llmkit.FinishReason) -> None:
    parts, _ = run(chunk({"content": "x"}), chunk({}, reason))
    assert llmkit.collect(parts).finish_reason is expected


def test_eof_without_a_finish_reason_is_incomplete_with_the_partial() -> None:
    protocol = ChatProtocol()
    protocol.receive(chunk({"content": "half"}))
    with pytest.raises(llmkit.IncompleteStream) as caught:
        protocol.finish()
    assert caught.value.partial is not None and caught.value.partial.text == "half"
    assert caught.value.retryable
    assert protocol.done


def test_an_empty_stream_is_incomplete() -> None:
    with pytest.raises(llmkit.IncompleteStream):
        ChatProtocol().finish()


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", '{"choices": "no"}'])
def test_malformed_payloads_are_protocol_errors_with_the_partial(payload: str) -> None:
    protocol = ChatProtocol()
    protocol.receive(chunk({"content": "kept"}))
    with pytest.raises(llmkit.ProtocolError) as caught:
        protocol.receive(payload)
    assert caught.value.partial is not None and caught.value.partial.text == "kept"
    assert protocol.done
    assert protocol.receive(chunk({"content": "more"})) == []


@pytest.mark.parametrize(
    ("payload", "error", "code", "retryable"),
    [
        ({"error": {"message": "slow down", "code": 429}}, llmkit.RateLimitError, "429", True),
        ({"object": "error", "message": "bad", "code": 400}, llmkit.BadRequestError, "400", False),
        ({"error": {"message": "m", "code": 503}}, llmkit.InternalServerError, "503", True),
        ({"error": {"message": "m", "type": "server_error"}}, llmkit.ResponseFailed, None, True),
        ({"error": {"message": "m", "code": "server_error"}}, llmkit.ResponseFailed, "x", True),
        ({"error": {"message": "m", "code": "invalid_prompt"}}, llmkit.ResponseFailed, "x", False),
    ],
)
def test_error_payloads_are_typed_like_the_responses_path(
    payload: dict[str, Any], error: type[llmkit.APIError], code: str | None, retryable: bool
) -> None:
    protocol = ChatProtocol()
    protocol.receive(chunk({"content": "so far"}))
    with pytest.raises(llmkit.APIError) as caught:
        protocol.receive(json.dumps(payload))
    assert type(caught.value) is error
    if code != "x":
        assert caught.value.code == code
    assert caught.value.retryable is retryable
    partial = caught.value.partial
    assert partial is not None and partial.text == "so far"
    assert partial.finish_reason is llmkit.FinishReason.ERROR
    assert protocol.done


def test_an_error_without_a_message_still_says_something() -> None:
    with pytest.raises(llmkit.ResponseFailed, match="code: boom"):
        ChatProtocol().receive(json.dumps({"error": {"code": "boom"}}))


def test_finish_reason_error_without_an_error_object_fails() -> None:
    protocol = ChatProtocol()
    with pytest.raises(llmkit.ResponseFailed) as caught:
        protocol.receive(chunk({"content": "bye"}, "error"))
    assert caught.value.partial is not None and caught.value.partial.text == "bye"


def test_reasoning_then_text_closes_the_reasoning_part() -> None:
    parts, _ = run(
        chunk({"reasoning_content": "think "}),
        chunk({"reasoning": "more"}),
        chunk({"content": "answer"}),
        chunk({}, "stop"),
    )
    assert [type(p) for p in parts[:5]] == [
        llmkit.ReasoningStart,
        llmkit.ReasoningDelta,
        llmkit.ReasoningDelta,
        llmkit.ReasoningEnd,
        llmkit.TextStart,
    ]
    response = llmkit.collect(parts)
    assert response.reasoning[0].content == ("think more",)
    assert response.text == "answer"


def test_a_refusal_after_text_is_its_own_part() -> None:
    parts, _ = run(chunk({"content": "a"}), chunk({"refusal": "no"}), chunk({}, "stop"))
    response = llmkit.collect(parts)
    assert (response.text, response.refusal) == ("a", "no")


def test_tool_call_input_streams_under_its_call_id() -> None:
    parts, _ = run(
        tool(0, "call_a", "add", '{"a":'),
        tool(0, args="1}"),
        chunk({}, "tool_calls"),
    )
    assert parts[:3] == [
        llmkit.ToolInputStart("call_a", "call_a", "add"),
        llmkit.ToolInputDelta("call_a", '{"a":'),
        llmkit.ToolInputDelta("call_a", "1}"),
    ]
    assert parts[3:5] == [
        llmkit.ToolInputEnd("call_a"),
        llmkit.ToolCall("call_a", "add", '{"a":1}'),
    ]


def test_arguments_before_the_name_are_held_until_the_call_starts() -> None:
    parts, _ = run(tool(0, "call_a", args='{"x":'), tool(0, name="f", args="1}"), chunk({}, "stop"))
    assert parts[:2] == [
        llmkit.ToolInputStart("call_a", "call_a", "f"),
        llmkit.ToolInputDelta("call_a", '{"x":1}'),
    ]
    assert llmkit.collect(parts).finish_reason is llmkit.FinishReason.TOOL_CALLS


def test_a_call_without_an_id_gets_one_and_deltas_without_index_continue_it() -> None:
    parts, _ = run(tool(None, name="f", args="{"), tool(None, args="}"), chunk({}, "tool_calls"))
    (call,) = llmkit.collect(parts).tool_calls
    assert (call.call_id, call.name, call.arguments) == ("call_0", "f", "{}")


def test_a_known_id_without_index_continues_that_call() -> None:
    parts, _ = run(
        tool(None, "call_a", "f", "{"),
        tool(None, "call_b", "g", "{}"),
        tool(None, "call_a", args="}"),
        chunk({}, "tool_calls"),
    )
    calls = [(c.call_id, c.arguments) for c in llmkit.collect(parts).tool_calls]
    assert calls == [("call_a", "{}"), ("call_b", "{}")]


def test_a_call_that_never_got_a_name_is_a_protocol_error() -> None:
    protocol = ChatProtocol()
    protocol.receive(tool(0, "call_a", args="{}"))
    with pytest.raises(llmkit.ProtocolError, match="without a name"):
        protocol.receive(chunk({}, "tool_calls"))


def test_custom_tool_calls() -> None:
    delta = {"tool_calls": [{"index": 0, "id": "c", "type": "custom", "custom": {"name": "sh"}}]}
    more = {"tool_calls": [{"index": 0, "custom": {"input": "ls -la"}}]}
    parts, _ = run(chunk(delta), chunk(more), chunk({}, "tool_calls"))
    (call,) = llmkit.collect(parts).tool_calls
    assert (call.kind, call.name, call.arguments) == ("custom", "sh", "ls -la")


def test_other_choices_are_ignored() -> None:
    other = json.dumps(
        {"choices": [{"index": 1, "delta": {"content": "B"}, "finish_reason": None}]}
    )
    parts, _ = run(chunk({"content": "A"}), other, chunk({}, "stop"))
    assert llmkit.collect(parts).text == "A"


def test_usage_details_and_missing_totals() -> None:
    usage = wire.ChatUsage.model_validate(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 6},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    parts, _ = run(chunk({}, "stop", usage=usage.model_dump()))
    assert llmkit.collect(parts).usage == llmkit.Usage(10, 5, 15, 2, 4, 6)


def test_the_first_non_empty_id_and_model_win() -> None:
    azure_first = json.dumps({"id": "", "model": "", "choices": [], "prompt_filter_results": []})
    parts, _ = run(azure_first, chunk({}, "stop", id="chatcmpl-9", model="gpt-x"))
    metadata = llmkit.collect(parts).metadata
    assert (metadata.response_id, metadata.model) == ("chatcmpl-9", "gpt-x")


def test_a_tool_delta_with_neither_function_nor_custom_is_harmless() -> None:
    bare = chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function"}]})
    protocol = ChatProtocol()
    assert protocol.receive(bare) == []
    parts = protocol.receive(tool(0, name="f", args="{}"))
    assert parts == [
        llmkit.ToolInputStart("call_a", "call_a", "f"),
        llmkit.ToolInputDelta("call_a", "{}"),
    ]
    parts += protocol.receive(chunk({}, "tool_calls")) + protocol.finish()
    (call,) = llmkit.collect(parts).tool_calls
    assert (call.call_id, call.name, call.arguments) == ("call_a", "f", "{}")


def test_an_empty_name_waits_for_a_real_one_and_the_first_name_stays() -> None:
    parts, _ = run(
        tool(0, "call_a", "", '{"x":'),
        tool(0, name="f", args="1"),
        tool(0, name="g", args="}"),  # servers that repeat (or garble) the name later
        chunk({}, "tool_calls"),
    )
    assert parts[0] == llmkit.ToolInputStart("call_a", "call_a", "f")
    (call,) = llmkit.collect(parts).tool_calls
    assert (call.name, call.arguments) == ("f", '{"x":1}')


def test_a_new_index_without_an_id_is_a_new_call() -> None:
    parts, _ = run(
        tool(0, "call_a", "f", "{}"),
        tool(1, name="g", args="{"),
        tool(1, args="}"),
        chunk({}, "tool_calls"),
    )
    calls = [(c.call_id, c.name, c.arguments) for c in llmkit.collect(parts).tool_calls]
    assert calls == [("call_a", "f", "{}"), ("call_1", "g", "{}")]


def test_tool_deltas_after_the_finish_reason_never_extend_a_finished_call() -> None:
    protocol = ChatProtocol()
    parts = protocol.receive(tool(0, "call_a", "f", "{}"))
    parts += protocol.receive(chunk({}, "tool_calls"))
    assert parts[-2:] == [llmkit.ToolInputEnd("call_a"), llmkit.ToolCall("call_a", "f", "{}")]
    assert protocol.receive(tool(None, args="late")) == []  # no index: "the latest call"
    assert protocol.receive(tool(0, args="late")) == []  # the same index
    parts += protocol.receive(b"[DONE]")
    (call,) = llmkit.collect(parts).tool_calls
    assert call.arguments == "{}"


def test_usage_without_token_counts_counts_zero() -> None:
    only_total = json.dumps({"id": "chatcmpl-1", "choices": [], "usage": {"total_tokens": 7}})
    parts, _ = run(chunk({}, "stop"), only_total)
    assert llmkit.collect(parts).usage == llmkit.Usage(0, 0, 7)
    only_prompt = json.dumps({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3}})
    parts, _ = run(chunk({}, "stop"), only_prompt)
    assert llmkit.collect(parts).usage == llmkit.Usage(3, 0, 3)
    only_output = json.dumps({"choices": [], "usage": {"completion_tokens": 2}})
    parts, _ = run(chunk({}, "stop"), only_output)
    assert llmkit.collect(parts).usage == llmkit.Usage(0, 2, 2)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (399, llmkit.ResponseFailed),
        (400, llmkit.BadRequestError),
        (599, llmkit.InternalServerError),
        (600, llmkit.ResponseFailed),
    ],
)
def test_only_numeric_codes_400_to_599_are_http_statuses(
    code: int, error: type[llmkit.APIError]
) -> None:
    with pytest.raises(llmkit.APIError) as caught:
        ChatProtocol().receive(json.dumps({"error": {"message": "m", "code": code}}))
    assert type(caught.value) is error
    assert caught.value.code == str(code)


def test_reasoning_deltas_are_raw_text_of_part_zero() -> None:
    protocol = ChatProtocol()
    assert protocol.receive(chunk({"reasoning_content": "think"})) == [
        llmkit.ReasoningStart(None),
        llmkit.ReasoningDelta(None, "think", "text", 0),
    ]


def test_error_payloads_keep_param_type_and_body() -> None:
    for code, error in ((400, llmkit.BadRequestError), ("invalid_prompt", llmkit.ResponseFailed)):
        detail = {"message": "m", "code": code, "param": "messages", "type": "invalid_request"}
        with pytest.raises(error) as caught:
            ChatProtocol().receive(json.dumps({"error": detail}))
        assert (caught.value.param, caught.value.error_type) == ("messages", "invalid_request")
        assert caught.value.body == detail


def test_a_fresh_protocol_is_waiting_with_no_ids() -> None:
    protocol = ChatProtocol()
    assert protocol.state is State.WAITING and not protocol.done
    assert protocol.partial().metadata == llmkit.ResponseMetadata()
    with pytest.raises(llmkit.ResponseFailed) as caught:
        protocol.receive(json.dumps({"error": {"message": "at once"}}))
    assert caught.value.partial is not None
    assert caught.value.partial.metadata == llmkit.ResponseMetadata()


def test_the_partial_of_a_failure_keeps_ids_and_the_usage_so_far() -> None:
    protocol = ChatProtocol()
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    protocol.receive(chunk({"content": "so far"}, usage=usage))
    with pytest.raises(llmkit.ResponseFailed) as caught:
        protocol.receive(chunk({}, "error"))
    assert str(caught.value) == "the server ended the response with an error"
    partial = caught.value.partial
    assert partial is not None
    assert partial.usage == llmkit.Usage(3, 1, 4)
    assert (partial.metadata.response_id, partial.metadata.model) == ("chatcmpl-1", "m")


@pytest.mark.parametrize(
    ("payloads", "where"),
    [([chunk({"content": "half"})], "the end of the stream"), ([b"[DONE]"], "[DONE]")],
)
def test_an_incomplete_stream_says_where_it_ended_and_keeps_the_ids(
    payloads: list[str | bytes], where: str
) -> None:
    protocol = ChatProtocol()
    protocol.receive(chunk({"content": "x"}))
    with pytest.raises(llmkit.IncompleteStream) as caught:
        for payload in payloads:
            protocol.receive(payload)
        protocol.finish()
    assert str(caught.value) == f"the stream reached {where} before a finish_reason"
    partial = caught.value.partial
    assert partial is not None and partial.metadata.response_id == "chatcmpl-1"
    assert partial.metadata.model == "m"


def test_the_reasoning_end_carries_the_whole_reasoning_text() -> None:
    parts, _ = run(
        chunk({"reasoning_content": "think "}), chunk({"reasoning": "more"}), chunk({}, "stop")
    )
    assert llmkit.ReasoningEnd(None, content=("think more",)) in parts


def test_a_chunk_with_the_last_text_and_the_finish_reason_keeps_the_text() -> None:
    protocol = ChatProtocol()
    assert protocol.receive(chunk({"content": "bye"}, "stop")) == [
        llmkit.TextStart(None),
        llmkit.TextDelta(None, "bye"),
        llmkit.TextEnd(None, "bye"),
    ]


def test_one_delta_with_reasoning_text_refusal_and_two_tool_calls_keeps_them_all() -> None:
    calls = [
        {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{}"}},
        {"index": 1, "id": "call_b", "type": "custom", "custom": {"name": "sh", "input": "ls"}},
    ]
    delta = {"reasoning_content": "r", "content": "t", "refusal": "n", "tool_calls": calls}
    parts, _ = run(chunk(delta), chunk({}, "tool_calls"))
    assert parts[:11] == [
        llmkit.ReasoningStart(None),
        llmkit.ReasoningDelta(None, "r", "text", 0),
        llmkit.ReasoningEnd(None, content=("r",)),
        llmkit.TextStart(None),
        llmkit.TextDelta(None, "t"),
        llmkit.TextEnd(None, "t"),
        llmkit.TextStart(None, refusal=True),
        llmkit.TextDelta(None, "n"),
        llmkit.ToolInputStart("call_a", "call_a", "f"),
        llmkit.ToolInputDelta("call_a", "{}"),
        llmkit.ToolInputStart("call_b", "call_b", "sh", "custom"),
    ]


def test_choice_zero_is_found_whatever_its_place_and_every_entry_of_it_counts() -> None:
    body = {
        "id": "chatcmpl-1",
        "choices": [
            {"index": 1, "delta": {"content": "B"}, "finish_reason": None},
            {"index": 0, "delta": {"content": "A"}, "finish_reason": None},
            {"index": 0, "delta": {"content": "a"}, "finish_reason": None},
        ],
    }
    protocol = ChatProtocol()
    assert protocol.receive(json.dumps(body)) == [
        llmkit.TextStart(None),
        llmkit.TextDelta(None, "A"),
        llmkit.TextDelta(None, "a"),
    ]
