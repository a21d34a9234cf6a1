"""Chat Completions on the local server: validation, the scripted models, faults, fidelity.

Everything goes over real sockets (plain `httpx` for the exact bytes, the pinned `openai`
package for what a real client parses); the pure helpers of `llmkit.testing._chat` are
checked directly where a socket adds nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmkit.testing import (
    ResponsesServer,
    _chat as chat,
    _chat_request as chat_request,
    _models as m,
)
from llmkit.testing._events import ApiError
from llmkit.testing._sse import SseBlock, parse_sse

Chunk = dict[str, Any]
ADD_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
MUL_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "mul",
        "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
    },
}
HELLO: list[Any] = [{"role": "user", "content": "hello there"}]


def url(server: ResponsesServer) -> str:
    return f"{server.base_url}/chat/completions"


def post(server: ResponsesServer, body: Any) -> httpx.Response:
    return httpx.post(url(server), json=body, timeout=10)


def parse_body(raw: bytes) -> list[Any]:
    """Data-only SSE: each event is one `data:` line; [DONE] stays a string."""
    events = raw.decode().split("\n\n")
    assert events[-1] == "", raw[-80:]
    payloads: list[Any] = []
    for event in events[:-1]:
        if event.startswith(":"):  # a keepalive comment
            continue
        assert event.startswith("data: ") and "\n" not in event, event
        data = event[len("data: ") :]
        payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


def stream_raw(server: ResponsesServer, body: Any) -> bytes:
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", url(server), json={**body, "stream": True}) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-request-id"].startswith("req_")
        return r.read()


def stream(server: ResponsesServer, body: Any) -> list[Any]:
    return parse_body(stream_raw(server, body))


def deltas(payloads: list[Any], key: str) -> list[str]:
    return [
        c["choices"][0]["delta"][key]
        for c in payloads
        if isinstance(c, dict) and c.get("choices") and key in c["choices"][0]["delta"]
    ]


def collect(payloads: list[Any]) -> tuple[str, list[tuple[str, str, str]], str | None]:
    """Content, tool calls (id, name, arguments) and finish_reason, accumulated by hand."""
    calls: dict[int, list[str]] = {}
    finish = None
    for c in payloads:
        if not isinstance(c, dict) or not c.get("choices"):
            continue
        choice = c["choices"][0]
        for call in choice["delta"].get("tool_calls") or []:
            slot = calls.setdefault(call["index"], ["", "", ""])
            slot[0] += call.get("id", "")
            slot[1] += call["function"].get("name", "")
            slot[2] += call["function"]["arguments"]
        finish = choice["finish_reason"] or finish
    text = "".join(deltas(payloads, "content"))
    return text, [(i, n, a) for i, n, a in calls.values()], finish


def assistant_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    function = {"name": name, "arguments": arguments}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


@pytest.fixture
def client(server: ResponsesServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        yield c


# -- validation ----------------------------------------------------------------------------------
def _msgs(*messages: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages)}


USER = {"role": "user", "content": "hi"}
CALL = assistant_call("call_1", "add", "{}")
INVALID: list[tuple[Any, str, str | None, str | None]] = [
    ([1], "Invalid body: expected a JSON object.", None, "invalid_type"),
    ({"messages": [USER]}, "you must provide a model parameter", None, None),
    ({"model": "m"}, "Missing required parameter: 'messages'.", "messages", None),
    (
        {"model": "m", "messages": "hi"},
        "Invalid type for 'messages': expected an array of objects.",
        "messages",
        "invalid_type",
    ),
    (
        _msgs(),
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
        "messages",
        "empty_array",
    ),
    (_msgs("hi"), "Invalid type for 'messages[0]': expected an object.", "messages[0]", None),
    (_msgs({"content": "x"}), "Missing required parameter: 'messages[0].role'.", None, None),
    (
        _msgs({"role": "bot", "content": "x"}),
        "Invalid value: 'bot'. Supported values are: 'system', 'developer', 'user', "
        "'assistant' and 'tool'.",
        "messages[0].role",
        "invalid_value",
    ),
    (_msgs({"role": "user"}), "Missing required parameter: 'messages[0].content'.", None, None),
    (
        _msgs(USER, {"role": "assistant", "content": None}),
        "Missing required parameter: 'messages[1].content'.",
        None,
        None,
    ),
    (
        _msgs({"role": "user", "content": 3}),
        "Invalid type for 'messages[0].content': expected one of a string or array of objects.",
        None,
        None,
    ),
    (
        _msgs({"role": "user", "content": [{"text": "x"}]}),
        "Missing required parameter: 'messages[0].content[0].type'.",
        None,
        None,
    ),
    (
        _msgs({"role": "user", "content": [{"type": "text"}]}),
        "Missing required parameter: 'messages[0].content[0].text'.",
        None,
        None,
    ),
    (
        _msgs(USER, {"role": "assistant", "content": None, "tool_calls": []}),
        "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length "
        "1, but got an empty array instead.",
        None,
        "empty_array",
    ),
    (
        _msgs(USER, {"role": "assistant", "content": None, "tool_calls": {}}),
        "Invalid type for 'messages[1].tool_calls': expected an array of objects.",
        None,
        None,
    ),
    (
        _msgs(USER, {"role": "assistant", "tool_calls": ["x"]}),
        "Invalid type for 'messages[1].tool_calls[0]': expected an object.",
        None,
        None,
    ),
    (
        _msgs(USER, {"role": "assistant", "tool_calls": [{"type": "function"}]}),
        "Missing required parameter: 'messages[1].tool_calls[0].id'.",
        None,
        None,
    ),
    (
        _msgs(USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "web"}]}),
        "Invalid value: 'web'. Supported values are: 'function' and 'custom'.",
        "messages[1].tool_calls[0].type",
        None,
    ),
    (
        _msgs(USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}),
        "Missing required parameter: 'messages[1].tool_calls[0].function'.",
        None,
        None,
    ),
    (
        _msgs(
            USER,
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {}}]},
        ),
        "Missing required parameter: 'messages[1].tool_calls[0].function.name'.",
        None,
        None,
    ),
    (
        _msgs(
            USER,
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "grep"}}],
            },
        ),
        "Missing required parameter: 'messages[1].tool_calls[0].custom.input'.",
        None,
        None,
    ),
    (
        _msgs(USER, CALL, {"role": "tool", "content": "1"}),
        "Missing required parameter: 'messages[2].tool_call_id'.",
        None,
        None,
    ),
    (
        _msgs(USER, {"role": "tool", "tool_call_id": "call_1", "content": "1"}),
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
        "message with 'tool_calls'.",
        "messages.[1].role",
        None,
    ),
    (
        _msgs(USER, CALL, {"role": "tool", "tool_call_id": "call_9", "content": "1"}),
        "Invalid parameter: 'tool_call_id' of 'call_9' not found in 'tool_calls' of previous "
        "message.",
        "messages.[2].tool_call_id",
        None,
    ),
    (
        _msgs(USER, CALL),
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        "call_1",
        "messages",
        None,
    ),
    (
        _msgs(USER, CALL, USER),
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        "call_1",
        "messages.[2].role",
        None,
    ),
    (
        {**_msgs(USER), "stream_options": {"include_usage": True}},
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
        None,
    ),
    (
        {**_msgs(USER), "stream": True, "stream_options": True},
        "Invalid type for 'stream_options': expected an object.",
        "stream_options",
        "invalid_type",
    ),
    (
        {**_msgs(USER), "n": 2},
        "Invalid 'n': this server generates one choice (n=1), but got 2 instead.",
        "n",
        "unsupported_value",
    ),
    ({**_msgs(USER), "n": "1"}, "Invalid type for 'n': expected an integer.", "n", None),
    (
        {**_msgs(USER), "max_completion_tokens": 0},
        "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, "
        "but got 0 instead.",
        "max_completion_tokens",
        "integer_below_min_value",
    ),
    (
        {**_msgs(USER), "max_tokens": True},
        "Invalid type for 'max_tokens': expected an integer.",
        "max_tokens",
        None,
    ),
    (
        {**_msgs(USER), "tools": {}},
        "Invalid type for 'tools': expected an array of objects.",
        "tools",
        None,
    ),
    ({**_msgs(USER), "tools": ["add"]}, "Missing required parameter: 'tools[0].type'.", None, None),
    (
        {**_msgs(USER), "tools": [{"type": "web_search"}]},
        "Invalid value: 'web_search'. Supported values are: 'function' and 'custom'.",
        "tools[0].type",
        None,
    ),
    (  # the Responses tool shape on the chat endpoint
        {**_msgs(USER), "tools": [{"type": "function", "name": "add"}]},
        "Missing required parameter: 'tools[0].function'.",
        "tools[0].function",
        "missing_required_parameter",
    ),
    (
        {**_msgs(USER), "tools": [{"type": "custom", "custom": {"name": ""}}]},
        "Missing required parameter: 'tools[0].custom.name'.",
        None,
        None,
    ),
]


@pytest.mark.parametrize(("body", "message", "param", "code"), INVALID)
def test_invalid_requests_get_the_real_400(
    server: ResponsesServer, body: Any, message: str, param: str | None, code: str | None
) -> None:
    r = post(server, body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] == message
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    (record,) = server.stats.requests
    assert record.endpoint == "chat" and record.status == (error["code"] or "invalid_request_error")
    assert server.stats.generations == 0


@pytest.mark.parametrize("name", chat_request.RESPONSES_ONLY)
def test_responses_only_parameters_are_unrecognized(server: ResponsesServer, name: str) -> None:
    r = post(server, {**_msgs(USER), name: None})
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "message": f"Unrecognized request argument supplied: {name}",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_unparsable_json_and_unknown_routes(server: ResponsesServer) -> None:
    r = httpx.post(url(server), content=b"{", timeout=5)
    assert r.status_code == 400 and "could not parse the JSON body" in r.json()["error"]["message"]
    assert server.stats.requests[0].endpoint == "chat"
    assert server.stats.requests[0].input_items == 0
    r = httpx.get(url(server), timeout=5)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (GET /v1/chat/completions)"


def test_auth_is_required_like_on_the_other_routes(server: ResponsesServer) -> None:
    server.api_key = "sk-test"
    assert post(server, _msgs(USER)).status_code == 401
    headers = {"authorization": "Bearer sk-test"}
    r = httpx.post(url(server), json=_msgs(USER), headers=headers, timeout=5)
    assert r.status_code == 200


# -- the scripted models ----------------------------------------------------------------------
def test_echo_answer_counts_the_whole_history(server: ResponsesServer) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Echo: first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    r = post(server, {"model": "gpt-test", "messages": messages})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert len(body["id"]) == len("chatcmpl-") + 29
    assert body["model"] == "gpt-test"
    assert body["system_fingerprint"] == "fp_llmkit" and body["service_tier"] == "default"
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    text = "Echo: second [user=2 assistant=1 tool_outputs=0 items=4]"
    assert choice["message"] == {"role": "assistant", "content": text, "refusal": None}
    items = chat_request.to_items(messages)
    assert body["usage"] == chat.usage_object(
        m.input_tokens(items, None), len(m.split_tokens(text)), 0
    )
    (record,) = server.stats.requests
    assert (record.endpoint, record.input_items, record.status) == ("chat", 4, "completed")
    assert record.response_id == body["id"] and record.previous_response_id is None
    assert server.stats.generations == 1


def test_three_step_add_loop_over_chat_messages(server: ResponsesServer) -> None:
    messages: list[Any] = [{"role": "user", "content": "Add it up [steps=3]"}]
    arguments: list[Any] = []
    for _ in range(3):
        text, calls, finish = collect(
            stream(server, {"model": "m", "messages": messages, "tools": [ADD_TOOL]})
        )
        assert (text, finish) == ("", "tool_calls")
        ((call_id, name, args),) = calls
        assert name == "add" and call_id.startswith("call_")
        parsed = json.loads(args)
        arguments.append(parsed)
        messages.append(assistant_call(call_id, name, args))
        messages.append(
            {"role": "tool", "tool_call_id": call_id, "content": str(parsed["a"] + parsed["b"])}
        )
    assert arguments == [{"a": 0, "b": 1}, {"a": 1, "b": 2}, {"a": 3, "b": 3}]
    text, calls, finish = collect(
        stream(server, {"model": "m", "messages": messages, "tools": [ADD_TOOL]})
    )
    assert text == "The answer is 6. [user=1 assistant=0 tool_outputs=3 items=7]"
    assert (calls, finish) == ([], "stop")
    assert [r.input_items for r in server.stats.requests] == [1, 3, 5, 7]
    assert server.stats.generations == 4 and server.stats.context_violations == 0


def test_tool_call_ids_are_deterministic_and_tool_choice_forces(server: ResponsesServer) -> None:
    body = {"model": "m", "messages": HELLO, "tools": [ADD_TOOL, MUL_TOOL]}
    first = post(server, body).json()["choices"][0]["message"]["tool_calls"]
    assert post(server, body).json()["choices"][0]["message"]["tool_calls"] == first
    forced = {**body, "tool_choice": {"type": "function", "function": {"name": "mul"}}}
    message = post(server, forced).json()["choices"][0]["message"]
    assert message["content"] is None
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["mul"]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"x": 1}
    none = post(server, {**body, "tool_choice": "none"}).json()["choices"][0]
    assert none["finish_reason"] == "stop" and "tool_calls" not in none["message"]


def test_duplicated_tool_call_and_result_are_violations(server: ResponsesServer) -> None:
    call = assistant_call("call_1", "add", '{"a":0,"b":1}')
    result = {"role": "tool", "tool_call_id": "call_1", "content": "1"}
    messages = [{"role": "user", "content": "go [steps=2]"}, call, result, call, result]
    r = post(server, {"model": "m", "messages": messages, "tools": [ADD_TOOL]})
    text = r.json()["choices"][0]["message"]["content"]
    assert text == "The answer is 1. [user=1 assistant=0 tool_outputs=2 items=5 violations=2]"
    assert server.stats.context_violations == 2
    assert server.stats.requests[0].violations == 2


def test_custom_tools_and_assistant_text_convert(server: ResponsesServer) -> None:
    custom = {"id": "ct_1", "type": "custom", "custom": {"name": "grep", "input": "x"}}
    messages = [
        USER,
        {"role": "assistant", "content": "Searching.", "tool_calls": [custom]},
        {"role": "tool", "tool_call_id": "ct_1", "content": [{"type": "text", "text": "hit"}]},
        {"role": "developer", "content": "Answer now."},
        {"role": "user", "content": "and?"},
    ]
    tools = [{"type": "custom", "custom": {"name": "grep"}}]
    r = post(server, {"model": "m", "messages": messages, "tools": tools})
    text = r.json()["choices"][0]["message"]["content"]
    assert text == "Echo: and? [user=2 assistant=1 tool_outputs=0 items=6]"


def test_reasoning_content_streams_first(server: ResponsesServer) -> None:
    body = {
        "model": "m",
        "messages": HELLO,
        "reasoning_effort": "low",
        "stream_options": {"include_usage": True},
    }
    payloads = stream(server, body)
    kinds = [
        next(iter(c["choices"][0]["delta"]), "")
        for c in payloads
        if isinstance(c, dict) and c["choices"]
    ]
    first_content = kinds.index("content")
    assert kinds[0] == "role" and set(kinds[1:first_content]) == {"reasoning_content"}
    reasoning = deltas(payloads, "reasoning_content")
    assert "".join(reasoning).startswith("**Planning**\n\nThe conversation has 1 items")
    usage = payloads[-2]["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == len(reasoning)
    assert usage["completion_tokens"] == len(reasoning) + len(deltas(payloads, "content")) - 1
    json_body = post(server, {"model": "my-reasoner", "messages": HELLO}).json()
    message = json_body["choices"][0]["message"]
    assert message["reasoning_content"].startswith("**Planning**")
    assert json_body["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


# -- stream framing --------------------------------------------------------------------------------
def test_include_usage_chunk_and_done(server: ResponsesServer) -> None:
    body = {"model": "m", "messages": HELLO, "stream_options": {"include_usage": True}}
    payloads = stream(server, body)
    assert payloads[-1] == "[DONE]"
    *chunks, usage_chunk, _ = payloads
    ids = {c["id"] for c in payloads[:-1]}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    for c in chunks:
        assert list(c) == [
            "id",
            "object",
            "created",
            "model",
            "service_tier",
            "system_fingerprint",
            "choices",
            "usage",
        ]
        assert c["object"] == "chat.completion.chunk" and c["usage"] is None
        (choice,) = c["choices"]
        assert list(choice) == ["index", "delta", "logprobs", "finish_reason"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert usage_chunk["choices"] == []
    content = deltas(chunks, "content")[1:]
    text = "Echo: hello there [user=1 assistant=0 tool_outputs=0 items=1]"
    assert "".join(content) == text and content == m.split_tokens(text)
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == len(content)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}


def test_no_usage_chunk_without_include_usage(server: ResponsesServer) -> None:
    raw = stream_raw(server, {"model": "m", "messages": HELLO})
    assert b"event:" not in raw and raw.endswith(b"data: [DONE]\n\n")
    payloads = parse_body(raw)
    assert all("usage" not in c and c["choices"] for c in payloads[:-1])
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"


def test_tool_call_chunks(server: ResponsesServer) -> None:
    payloads = stream(server, {"model": "m", "messages": HELLO, "tools": [ADD_TOOL]})
    tool_deltas = [c["choices"][0]["delta"] for c in payloads[1:-2]]
    head, *pieces = tool_deltas
    assert head == {
        "tool_calls": [
            {
                "index": 0,
                "id": head["tool_calls"][0]["id"],
                "type": "function",
                "function": {"name": "add", "arguments": ""},
            }
        ]
    }
    arguments = [d["tool_calls"][0]["function"]["arguments"] for d in pieces]
    assert all(d["tool_calls"][0]["index"] == 0 and len(d["tool_calls"][0]) == 2 for d in pieces)
    assert arguments == m.split_chunks('{"a":0,"b":1}')
    assert payloads[-2]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("name", ["max_completion_tokens", "max_tokens"])
def test_token_budget_cuts_with_length(server: ResponsesServer, name: str) -> None:
    body = {"model": "m", "messages": HELLO, name: 3, "stream_options": {"include_usage": True}}
    payloads = stream(server, body)
    assert deltas(payloads, "content") == ["", "Echo:", " hello", " there"]
    assert payloads[-3]["choices"][0]["finish_reason"] == "length"
    assert payloads[-2]["usage"]["completion_tokens"] == 3
    assert server.stats.requests[0].status == "incomplete"
    choice = post(server, {"model": "m", "messages": HELLO, name: 3}).json()["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == (
        "length",
        "Echo: hello there",
    )


def test_budget_used_up_by_reasoning_gives_no_content(server: ResponsesServer) -> None:
    body = {"model": "m-reason", "messages": HELLO, "max_completion_tokens": 2}
    choice = post(server, body).json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] is None
    assert choice["message"]["reasoning_content"] == "**Planning**\n\nThe"


# -- faults ---------------------------------------------------------------------------------------
def test_reject_requests_answers_with_the_status(server: ResponsesServer) -> None:
    server.faults.reject_requests(status=429, headers={"retry-after": "2"}, code="rate_limit")
    r = post(server, _msgs(USER))
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "rate_limit"
    assert post(server, _msgs(USER)).status_code == 200
    assert [(q.endpoint, q.status) for q in server.stats.requests] == [
        ("chat", "429"),
        ("chat", "completed"),
    ]
    assert server.stats.generations == 1


def test_drop_after_cuts_the_stream_without_done(server: ResponsesServer) -> None:
    server.faults.drop_after(3)
    seen: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.Client(timeout=10) as client,
        client.stream("POST", url(server), json={**_msgs(USER), "stream": True}) as r,
    ):
        seen.extend(line for line in r.iter_lines() if line.startswith("data: "))
    assert len(seen) == 3 and "data: [DONE]" not in seen
    server.faults.drop_after(0)
    with pytest.raises(httpx.RemoteProtocolError):
        post(server, _msgs(USER))
    assert [r.status for r in server.stats.requests] == ["dropped", "dropped"]
    assert server.stats.generations == 2


def test_fail_next_sends_an_error_chunk_mid_stream(server: ResponsesServer) -> None:
    server.faults.fail_next(code="overloaded", message="Try later.", n=2)
    raw = stream_raw(server, _msgs(USER))
    role, error = parse_body(raw)
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert error == {
        "error": {
            "message": "Try later.",
            "type": "server_error",
            "param": None,
            "code": "overloaded",
        }
    }
    assert b"[DONE]" not in raw
    r = post(server, _msgs(USER))
    assert r.status_code == 500 and r.json() == error
    assert [q.status for q in server.stats.requests] == ["failed", "failed"]
    assert server.stats.generations == 2
    assert all(
        q.response_id and q.response_id.startswith("chatcmpl-") for q in server.stats.requests
    )


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_error_next_replaces_the_completion(server: ResponsesServer, shape: Any) -> None:
    server.faults.error_next(
        code="rate_limit_exceeded", message="Too many.", status=429, shape=shape, n=2
    )
    raw = stream_raw(server, _msgs(USER))
    (payload,) = parse_body(raw)
    if shape == "nested":
        assert payload == {
            "error": {
                "message": "Too many.",
                "type": "invalid_request_error",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    else:
        assert payload == {
            "object": "error",
            "message": "Too many.",
            "type": "invalid_request_error",
            "param": None,
            "code": 429,
        }
    r = post(server, _msgs(USER))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert server.stats.generations == 0
    assert [q.status for q in server.stats.requests] == ["rate_limit_exceeded"] * 2


def test_slow_delays_every_delta_of_the_next_completion(server: ResponsesServer) -> None:
    server.faults.slow(0.02)
    body = _msgs({"role": "user", "content": "one two three"})
    start = time.monotonic()
    payloads = stream(server, body)
    slow_time = time.monotonic() - start
    assert slow_time >= 0.02 * len(deltas(payloads, "content")[1:]) * 0.9
    start = time.monotonic()
    stream(server, body)
    assert time.monotonic() - start < slow_time


def test_ttft_with_keepalive_comments(server: ResponsesServer, client: openai.OpenAI) -> None:
    server.ttft = 0.12
    server.keepalive_interval = 0.03
    start = time.monotonic()
    raw = stream_raw(server, _msgs(USER))
    assert time.monotonic() - start >= 0.12 * 0.9
    assert raw.startswith(b": keepalive\n\n") and raw.count(b": keepalive\n\n") >= 2
    assert parse_body(raw)[-1] == "[DONE]"
    chunks = list(client.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)


def test_unknown_events_add_choiceless_chunks(
    server: ResponsesServer, client: openai.OpenAI
) -> None:
    server.faults.unknown_events = True
    payloads = stream(server, {**_msgs(USER), "stream_options": {"include_usage": True}})
    unknown = [c for c in payloads[:-1] if "llmkit_future_field" in c]
    real = [c for c in payloads[:-1] if "llmkit_future_field" not in c]
    assert all(c["choices"] == [] and c["usage"] is None for c in unknown)
    assert len(unknown) == len(real) - 2  # none after the finish and the usage chunk
    assert "llmkit_future_field" not in payloads[-3] and payloads[-2]["usage"] is not None
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="m", messages=HELLO, stream=True)
        if c.choices
    )
    assert text == "Echo: hello there [user=1 assistant=0 tool_outputs=0 items=1]"


def _recorded(*deltas_: dict[str, Any], finish: str = "stop") -> bytes:
    """A vLLM-style recorded stream (no service_tier/system_fingerprint, no usage)."""
    base = {"id": "chatcmpl-rec", "object": "chat.completion.chunk", "created": 1, "model": "rec"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas_
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def test_replay_is_verbatim_and_json_mode_adds_it_up(server: ResponsesServer) -> None:
    recorded = _recorded({"role": "assistant", "content": ""}, {"content": "Hi"}, {"content": "!"})
    server.replay_next(recorded, n=2)
    assert stream_raw(server, _msgs(USER)) == recorded
    body = post(server, _msgs(USER)).json()
    assert body["id"] == "chatcmpl-rec" and body["choices"][0]["message"]["content"] == "Hi!"
    assert [(q.status, q.response_id) for q in server.stats.requests] == [
        ("completed", "chatcmpl-rec"),
        ("completed", "chatcmpl-rec"),
    ]
    assert server.stats.generations == 2


def test_replay_of_a_cut_or_foreign_stream_is_an_error(server: ResponsesServer) -> None:
    cut = _recorded({"content": "Hi"}).replace(b"data: [DONE]\n\n", b"")
    server.replay_next(cut)
    assert stream_raw(server, _msgs(USER)) == cut
    server.replay_next(b'event: response.created\ndata: {"type":"response.created"}\n\n')
    assert post(server, _msgs(USER)).json() == {}
    assert [q.status for q in server.stats.requests] == ["error", "error"]


# -- fidelity with the official client ----------------------------------------------------------
def test_openai_stream_parses_every_chunk_typed(
    server: ResponsesServer, client: openai.OpenAI
) -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "sum [steps=1]"}],
        "tools": [ADD_TOOL],
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for raw in stream(server, body)[:-1]:
        chunk = ChatCompletionChunk.model_validate(raw)
        assert not chunk.model_extra
        for choice in chunk.choices:
            assert set(choice.delta.model_extra or {}) <= {"reasoning_content"}
    chunks = list(client.chat.completions.create(**body))
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert calls[0].function is not None and calls[0].function.name == "add"
    arguments = "".join(t.function.arguments or "" for t in calls if t.function is not None)
    assert json.loads(arguments) == {"a": 0, "b": 1}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == usage.completion_tokens - 2


def test_openai_stream_helper_accumulates(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="m-reason", messages=HELLO, tools=[ADD_TOOL], stream_options={"include_usage": True}
    ) as s:
        final = s.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.type == "function" and json.loads(call.function.arguments) == {"a": 0, "b": 1}
    assert final.usage is not None and final.usage.completion_tokens > 2


def test_openai_non_streaming_parses(server: ResponsesServer, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="m", messages=HELLO, tools=[ADD_TOOL])
    assert isinstance(completion, ChatCompletion)
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "add"
    assert completion.usage is not None and completion.usage.completion_tokens == 2
    raw = post(server, {"model": "m", "messages": HELLO}).json()
    assert ChatCompletion.model_validate(raw).choices[0].message.content == (
        "Echo: hello there [user=1 assistant=0 tool_outputs=0 items=1]"
    )


def test_openai_raises_on_errors(server: ResponsesServer, client: openai.OpenAI) -> None:
    server.faults.fail_next(message="Boom.")
    with pytest.raises(openai.APIError, match=r"Boom\.") as info:
        list(client.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "server_error"
    server.faults.error_next(code="rate_limit_exceeded", status=429)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=HELLO)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="m", messages=[])
    assert bad.value.code == "empty_array"


# -- pure helpers ----------------------------------------------------------------------------------
def test_to_items_and_to_request() -> None:
    custom = {"id": "ct", "type": "custom", "custom": {"name": "grep", "input": "q"}}
    messages: list[Any] = [
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "", "tool_calls": [CALL["tool_calls"][0], custom]},
        {"role": "tool", "tool_call_id": "call_1", "content": "1"},
        {"role": "tool", "tool_call_id": "ct", "content": [{"type": "text", "text": "hit"}]},
        {"role": "assistant", "content": "done"},
    ]
    assert chat_request.to_items(messages) == [
        {"type": "message", "role": "system", "content": "s"},
        {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": "{}"},
        {"type": "custom_tool_call", "call_id": "ct", "name": "grep", "input": "q"},
        {"type": "function_call_output", "call_id": "call_1", "output": "1"},
        {"type": "custom_tool_call_output", "call_id": "ct", "output": "hit"},
        {"type": "message", "role": "assistant", "content": "done"},
    ]
    strict = {"type": "function", "function": {"name": "f", "strict": True}}
    body = {
        "model": "m",
        "tools": [strict, {"type": "custom", "custom": {"name": "g"}}, {"type": "x"}, "junk"],
        "tool_choice": {"type": "custom", "custom": {"name": "g"}},
        "reasoning_effort": "high",
    }
    assert chat_request.to_request(body) == {
        "model": "m",
        "tools": [
            {
                "type": "function",
                "name": "f",
                "description": None,
                "parameters": None,
                "strict": True,
            },
            {"name": "g", "type": "custom"},
            {"type": "x"},
        ],
        "tool_choice": {"type": "custom", "name": "g"},
        "reasoning": {"effort": "high"},
    }
    assert (
        chat_request.to_request({"model": "m", "tool_choice": "required"})["tool_choice"]
        == "required"
    )
    bad_choice = {"type": "function", "function": "add"}
    assert (
        chat_request.to_request({"model": "m", "tool_choice": bad_choice})["tool_choice"]
        == bad_choice
    )
    assert chat_request.budget({"max_tokens": 5, "max_completion_tokens": 7}) == 7
    assert chat_request.budget({"max_tokens": 5}) == 5 and chat_request.budget({}) is None
    assert (
        chat_request.message_count(None) == 0 and chat_request.message_count({"messages": "x"}) == 0
    )


def test_meta_echoes_the_service_tier_and_usage_option() -> None:
    meta = chat.ChatMeta.for_request(
        {
            "model": "m",
            "service_tier": "flex",
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert (meta.service_tier, meta.include_usage) == ("flex", True)
    plain = chat.ChatMeta.for_request({"model": "m", "stream_options": {"include_usage": True}})
    assert (plain.service_tier, plain.include_usage) == ("default", False)
    assert "usage" not in plain.unknown()


def test_accumulate_and_replay_outcome_edge_cases() -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "r"}

    def call(delta: dict[str, Any]) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]}

    two_calls: list[Any] = [
        call({"index": 1, "function": {"name": "b", "arguments": "{}"}}),
        call({"index": 0, "id": "x", "function": {"name": "a"}}),
        {"object": "something.else"},
    ]
    message = chat.accumulate(two_calls)["choices"][0]["message"]
    assert [(c["id"], c["function"]["name"]) for c in message["tool_calls"]] == [
        ("x", "a"),
        (None, "b"),
    ]
    assert chat.accumulate([])["id"] is None
    blocks = parse_sse(_recorded({"content": "a"}, finish="length"))
    assert chat.replay_outcome(blocks)[0] == "incomplete"
    error = SseBlock(b'data: {"error": {}}\n\n', '{"error": {}}', None)
    junk = SseBlock(b"data: nope\n\n", "nope", None)
    listed = SseBlock(b"data: [1]\n\n", "[1]", None)
    status, completion = chat.replay_outcome([*blocks[:-1], junk, listed, error])
    assert status == "error" and completion is not None
    assert chat.error_block(ApiError(500, "x"), "flat").data == (
        '{"object":"error","message":"x","type":"invalid_request_error","param":null,"code":500}'
    )
