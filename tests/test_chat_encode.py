"""Encoding a `Call` as a Chat Completions body (pure)."""

from __future__ import annotations

from typing import Any

import pytest

import llmkit
from llmkit.messages import UserPart
from llmkit.openai import ChatOptions, ResponsesOptions
from llmkit.openai.chat._encode import encode_chat_request

ADD = llmkit.FunctionTool(
    "add", "Add.", {"type": "object", "properties": {"a": {"type": "integer"}}}, strict=True
)


def body(call: llmkit.Call) -> dict[str, Any]:
    return encode_chat_request("gpt-test", call).body


def test_a_plain_prompt_streams_with_usage() -> None:
    assert body(llmkit.Call("hi")) == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_a_tool_loop_history() -> None:
    call = llmkit.ToolCall("call_1", "add", '{"a":1}')
    custom = llmkit.ToolCall("call_2", "sh", "ls", kind="custom")
    history: list[llmkit.Message] = [
        llmkit.SystemMessage("Be terse."),
        llmkit.UserMessage("sum"),
        llmkit.AssistantMessage(
            [
                llmkit.ReasoningPart("rs_1", summary=("plan",), encrypted_content="gAAA"),
                llmkit.TextPart("Calling."),
                call,
                custom,
            ]
        ),
        llmkit.ToolMessage(
            [llmkit.ToolResult("call_1", "1"), llmkit.ToolResult("call_2", "a b", is_error=True)]
        ),
        llmkit.AssistantMessage([llmkit.ReasoningPart("rs_2", summary=("only reasoning",))]),
    ]
    assert body(llmkit.Call(history, tools=[ADD], tool_choice="add"))["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "sum"},
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a":1}'},
                },
                {"id": "call_2", "type": "custom", "custom": {"name": "sh", "input": "ls"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "1"},
        {"role": "tool", "tool_call_id": "call_2", "content": "a b"},
    ]


def test_tools_and_tool_choice() -> None:
    web = llmkit.ProviderTool({"type": "custom", "custom": {"name": "sh"}})
    encoded = body(llmkit.Call("x", tools=[ADD, web], tool_choice="add"))
    assert encoded["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
                "description": "Add.",
                "strict": True,
            },
        },
        {"type": "custom", "custom": {"name": "sh"}},
    ]
    assert encoded["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert body(llmkit.Call("x", tools=[ADD], tool_choice="required"))["tool_choice"] == "required"
    with pytest.raises(llmkit.UsageError, match="nope"):
        body(llmkit.Call("x", tools=[ADD], tool_choice="nope"))


def test_sampling_and_token_limits() -> None:
    call = llmkit.Call("x", max_output_tokens=50, temperature=0.2, top_p=0.9)
    encoded = body(call)
    assert (encoded["max_completion_tokens"], encoded["temperature"], encoded["top_p"]) == (
        50,
        0.2,
        0.9,
    )
    legacy = ChatOptions(max_tokens_field="max_tokens", include_usage=False)
    encoded = body(llmkit.Call("x", max_output_tokens=50, provider_options={"openai": legacy}))
    assert encoded["max_tokens"] == 50 and "max_completion_tokens" not in encoded
    assert "stream_options" not in encoded


def test_user_parts() -> None:
    parts: list[UserPart] = [
        llmkit.TextPart("look"),
        llmkit.ImagePart(url="https://example.invalid/cat.png", detail="low"),
        llmkit.FilePart(data="data:application/pdf;base64,AAAA", filename="a.pdf"),
        llmkit.FilePart(file_id="file_1"),
    ]
    assert body(llmkit.Call([llmkit.UserMessage(parts)]))["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.invalid/cat.png", "detail": "low"},
        },
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"},
        },
        {"type": "file", "file": {"file_id": "file_1"}},
    ]


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (
            llmkit.ImagePart(file_id="file_1"),
            "Chat Completions takes images by URL (https: or data:), not by file_id",
        ),
        (
            llmkit.FilePart(url="https://example.invalid/a.pdf"),
            "Chat Completions takes files as data or file_id, not by URL "
            "(the Responses API accepts file URLs)",
        ),
    ],
)
def test_content_chat_cannot_carry_is_a_usage_error(part: UserPart, message: str) -> None:
    with pytest.raises(llmkit.UsageError) as caught:
        body(llmkit.Call([llmkit.UserMessage([part])]))
    assert str(caught.value) == message


def test_assistant_refusals_several_texts_and_provider_items() -> None:
    message = llmkit.AssistantMessage(
        [
            llmkit.TextPart("a", id="msg_1"),
            llmkit.TextPart("b", id="msg_2"),
            llmkit.TextPart("no", refusal=True),
            llmkit.SourcePart(None, source_type="url_citation", url="https://example.invalid"),
            llmkit.ProviderItemPart("ws_1", "web_search_call", {"type": "web_search_call"}),
        ]
    )
    encoded = encode_chat_request("m", llmkit.Call([llmkit.UserMessage("q"), message]))
    assert encoded.body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "refusal": "no",
    }
    assert encoded.warnings == (
        "a 'web_search_call' output item was left out of the messages: "
        "Chat Completions has no input for it",
    )


def test_an_assistant_message_of_text_only_or_refusals_only_is_sent() -> None:
    text_only = llmkit.AssistantMessage([llmkit.TextPart("hello")])
    refusals = llmkit.AssistantMessage(
        [llmkit.TextPart("I can", refusal=True), llmkit.TextPart("not.", refusal=True)]
    )
    history: list[llmkit.Message] = [llmkit.UserMessage("q"), text_only, refusals]
    assert body(llmkit.Call(history))["messages"][1:] == [
        {"role": "assistant", "content": "hello"},
        {"role": "assistant", "content": None, "refusal": "I cannot."},
    ]


def test_shared_options_pass_and_chat_options_are_sent() -> None:
    options = ChatOptions(
        store=True,
        reasoning_effort="low",
        text_verbosity="high",
        seed=7,
        stop=("END", "STOP"),
        response_format={"type": "json_object"},
        metadata={"k": "v"},
    )
    encoded = body(llmkit.Call("x", provider_options={"openai": options}))
    assert {k: encoded[k] for k in ("store", "reasoning_effort", "verbosity", "seed", "stop")} == {
        "store": True,
        "reasoning_effort": "low",
        "verbosity": "high",
        "seed": 7,
        "stop": ["END", "STOP"],
    }
    assert encoded["response_format"] == {"type": "json_object"}
    assert body(llmkit.Call("x", provider_options={"openai": {"stop": "END"}}))["stop"] == "END"


def test_responses_options_that_chat_shares_are_accepted() -> None:
    options = ResponsesOptions(store=True, parallel_tool_calls=False, prompt_cache_key="k")
    encoded = body(llmkit.Call("x", provider_options={"openai": options}))
    assert (encoded["store"], encoded["parallel_tool_calls"], encoded["prompt_cache_key"]) == (
        True,
        False,
        "k",
    )
    assert "store" not in body(llmkit.Call("x", provider_options={"openai": ResponsesOptions()}))


@pytest.mark.parametrize(
    "options",
    [
        {"previous_response_id": "resp_1"},
        {"instructions": "be nice"},
        {"include": ["reasoning.encrypted_content"]},
        ResponsesOptions(reasoning_summary="auto"),
        ResponsesOptions(max_tool_calls=3, truncation="auto"),
    ],
)
def test_responses_only_options_are_usage_errors(options: Any) -> None:
    with pytest.raises(llmkit.UsageError, match="Responses API only"):
        body(llmkit.Call("x", provider_options={"openai": options}))


@pytest.mark.parametrize(
    ("options", "match"),
    [({"bogus": 1}, "bogus"), ({"seed": "x"}, "seed"), (42, "ChatOptions")],
)
def test_bad_options_are_usage_errors(options: Any, match: str) -> None:
    with pytest.raises(llmkit.UsageError, match=match):
        body(llmkit.Call("x", provider_options={"openai": options}))


def test_chat_options_on_the_responses_path_are_a_usage_error() -> None:
    from llmkit.openai._encode import encode_request

    with pytest.raises(llmkit.UsageError, match="ResponsesOptions"):
        encode_request("m", llmkit.Call("x", provider_options={"openai": ChatOptions()}))
