"""Tier 1: `encode_request`, the pure `Call` → Responses request body encoder, and options."""

from __future__ import annotations

import json
from typing import Any

import events as ev
import pytest

from llmkit.exceptions import UsageError
from llmkit.messages import (
    AssistantMessage,
    Call,
    FilePart,
    FunctionTool,
    ImagePart,
    Message,
    ProviderItemPart,
    ProviderTool,
    ReasoningPart,
    Response,
    SourcePart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    ToolResult,
    UserMessage,
)
from llmkit.openai import ContextManagement, ResponsesOptions, ResponsesProtocol
from llmkit.openai._encode import EncodedRequest, encode_request, render_output
from llmkit.openai.options import responses_options
from llmkit.stream import StreamPart, collect

JSON = dict[str, Any]
DROPPED_REASONING = (
    "a reasoning item without encrypted_content was left out of the input: "
    "with store=false the server cannot resolve it "
    "(request include=['reasoning.encrypted_content'] to keep reasoning)"
)


def user(text: str) -> JSON:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(*content: JSON, phase: str | None = None) -> JSON:
    item: JSON = {"type": "message", "role": "assistant", "content": list(content)}
    if phase is not None:
        item["phase"] = phase
    return item


def out_text(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": []}


def encode(prompt: str | list[Message], options: Any = None, **call: Any) -> EncodedRequest:
    provider_options = None if options is None else {"openai": options}
    return encode_request("gpt-5", Call(prompt, provider_options=provider_options, **call))


def input_of(prompt: list[Message], options: Any = None) -> list[JSON]:
    return list(encode(prompt, options).body["input"])


def streamed_response() -> Response:
    """A recorded-like turn: reasoning, commentary, a refusal, a function and a custom call."""
    payloads = [
        ev.created(),
        *ev.reasoning_events("rs_1", [["Need ", "math."], ["Then."]], encrypted_content="gAAA"),
        *ev.message_events(
            "msg_1",
            ["Let me ", "add."],
            output_index=1,
            phase="commentary",
            annotations=[ev.url_citation("https://math.test", "Math")],
        ),
        ev.item_done(ev.message_item("msg_2", [ev.refusal_part("Not that.")]), 2),
        *ev.function_call_events("fc_1", "call_1", "add", ['{"a":', "1}"], output_index=3),
        ev.item_done(ev.custom_tool_call_item("ctc_1", "call_2", "grep", "x|y"), 4),
        ev.item_done({"type": "web_search_call", "id": "ws_1", "status": "completed"}, 5),
        ev.completed(),
    ]
    protocol = ResponsesProtocol()
    parts: list[StreamPart] = []
    for payload in payloads:
        parts += protocol.receive(payload)
    assert protocol.done
    return collect(parts)


# --------------------------------------------------------------------------- messages


def test_string_prompt() -> None:
    request = encode("What is 2+2?")
    assert request.body == {"model": "gpt-5", "input": [user("What is 2+2?")], "store": False}
    assert request.warnings == ()


def test_system_and_user_parts() -> None:
    prompt: list[Message] = [
        SystemMessage("Be terse."),
        UserMessage(
            [
                TextPart("Look:"),
                ImagePart(url="https://img.test/a.png", detail="high"),
                ImagePart(file_id="file_img"),
                ImagePart(url="data:image/png;base64,AAAA", detail="low"),
                FilePart(data="JVBERi0=", filename="a.pdf"),
                FilePart(url="https://files.test/b.pdf"),
                FilePart(file_id="file_c"),
            ]
        ),
    ]
    assert input_of(prompt) == [
        {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "Be terse."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look:"},
                {"type": "input_image", "detail": "high", "image_url": "https://img.test/a.png"},
                {"type": "input_image", "detail": "auto", "file_id": "file_img"},
                {"type": "input_image", "detail": "low", "image_url": "data:image/png;base64,AAAA"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "JVBERi0="},
                {"type": "input_file", "file_url": "https://files.test/b.pdf"},
                {"type": "input_file", "file_id": "file_c"},
            ],
        },
    ]


def test_a_streamed_response_replays_as_the_servers_items() -> None:
    response = streamed_response()
    results = ToolMessage([ToolResult("call_1", "2"), ToolResult("call_2", "found", is_error=True)])
    request = encode([UserMessage("Add 1+1"), response.message, results])
    assert request.body["input"] == [
        user("Add 1+1"),
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [
                {"type": "summary_text", "text": "Need math."},
                {"type": "summary_text", "text": "Then."},
            ],
            "encrypted_content": "gAAA",
        },
        assistant(out_text("Let me add."), phase="commentary"),
        assistant({"type": "refusal", "refusal": "Not that."}),
        {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": '{"a":1}'},
        {"type": "custom_tool_call", "call_id": "call_2", "name": "grep", "input": "x|y"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": "2"},
        {"type": "custom_tool_call_output", "call_id": "call_2", "output": "found"},
    ]
    assert request.warnings == ()


@pytest.mark.parametrize("store", [True, False])
def test_render_output_is_the_messages_input_items(store: bool) -> None:
    message = streamed_response().message
    history = encode([UserMessage("u"), message], {"store": store}).body["input"]
    assert render_output(message, store=store) == history[1:]
    without_state = AssistantMessage([ReasoningPart("rs_1", ("s",)), TextPart("t")])
    rendered = render_output(without_state, store=store)
    assert [item["type"] for item in rendered] == (
        ["reasoning", "message"] if store else ["message"]
    )


def test_encoding_is_deterministic() -> None:
    def render() -> str:
        response = streamed_response()
        call = Call(
            [SystemMessage("s"), UserMessage("u"), response.message],
            tools=[FunctionTool(name="add", description="Add", strict=True)],
            tool_choice="add",
            provider_options={"openai": {"reasoning_effort": "low", "metadata": {"a": "1"}}},
        )
        return json.dumps(encode_request("gpt-5", call).body)

    assert render() == render()


def test_assistant_text_parts_group_into_messages_by_item() -> None:
    message = AssistantMessage(
        [
            TextPart("a", id="msg_1"),
            SourcePart("msg_1", source_type="url_citation", url="https://a.test"),
            TextPart("b", id="msg_1"),
            TextPart("c", id="msg_2", phase="final_answer"),
            TextPart("d"),
            TextPart("e"),
            ToolCall("call_1", "f", "{}", id="fc_1"),
            TextPart("f", id="msg_2"),
        ]
    )
    assert input_of([message]) == [
        assistant(out_text("a"), out_text("b")),
        assistant(out_text("c"), phase="final_answer"),
        assistant(out_text("d")),
        assistant(out_text("e")),
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        assistant(out_text("f")),
    ]


def test_text_of_one_item_on_both_sides_of_another_item_stays_in_order() -> None:
    message = AssistantMessage(
        [TextPart("a", id="msg_1"), ToolCall("call_1", "f", "{}"), TextPart("b", id="msg_1")]
    )
    assert input_of([message]) == [
        assistant(out_text("a")),
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        assistant(out_text("b")),
    ]


def test_a_plain_assistant_string() -> None:
    assert input_of([AssistantMessage("Hello")]) == [assistant(out_text("Hello"))]


def test_tool_results_match_custom_calls_by_call_id() -> None:
    prompt: list[Message] = [
        AssistantMessage([ToolCall("c1", "grep", "x", kind="custom"), ToolCall("c2", "f", "{}")]),
        ToolMessage([ToolResult("c2", "r2"), ToolResult("c1", "r1"), ToolResult("c3", "r3")]),
    ]
    assert input_of(prompt)[2:] == [
        {"type": "function_call_output", "call_id": "c2", "output": "r2"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "r1"},
        {"type": "function_call_output", "call_id": "c3", "output": "r3"},
    ]


def test_a_custom_result_before_its_call_is_a_function_output() -> None:
    prompt: list[Message] = [
        ToolMessage(ToolResult("c1", "early")),
        AssistantMessage([ToolCall("c1", "grep", "x", kind="custom")]),
    ]
    assert input_of(prompt)[0] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": "early",
    }


# --------------------------------------------------------------------------- reasoning


def test_reasoning_with_encrypted_content_and_raw_text() -> None:
    part = ReasoningPart("rs_1", ("s",), ("raw 1", "raw 2"), "gAAA")
    assert input_of([AssistantMessage([part])]) == [
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "s"}],
            "content": [
                {"type": "reasoning_text", "text": "raw 1"},
                {"type": "reasoning_text", "text": "raw 2"},
            ],
            "encrypted_content": "gAAA",
        }
    ]


def test_reasoning_without_encrypted_content_is_dropped_under_store_false() -> None:
    message = AssistantMessage([ReasoningPart("rs_1", ("s",)), TextPart("Hi", id="msg_1")])
    request = encode([message])
    assert request.body["input"] == [assistant(out_text("Hi"))]
    assert request.warnings == (DROPPED_REASONING,)


def test_reasoning_without_encrypted_content_is_kept_by_id_under_store_true() -> None:
    message = AssistantMessage([ReasoningPart("rs_1", ("s",))])
    request = encode([message], {"store": True})
    assert request.body["input"] == [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "s"}]}
    ]
    assert request.warnings == ()


@pytest.mark.parametrize("store", [True, False])
def test_reasoning_without_id_is_dropped(store: bool) -> None:
    request = encode(
        [AssistantMessage([ReasoningPart(None, ("s",), (), "gAAA")])], {"store": store}
    )
    assert request.body["input"] == []
    assert request.warnings == ("a reasoning item without an id was left out of the input",)


def test_provider_items_replay_verbatim() -> None:
    item = {"type": "compaction", "id": "cmp_1", "encrypted_content": "opaque", "extra": [1, 2]}
    request = encode([AssistantMessage([ProviderItemPart("cmp_1", "compaction", item)])])
    assert request.body["input"] == [item]
    assert request.body["input"][0] is not item  # a copy: the history is never shared


# --------------------------------------------------------------------------- tools


def test_tools() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    request = encode(
        "hi",
        tools=[
            FunctionTool(name="add", description="Add ints", parameters=schema, strict=True),
            FunctionTool(name="noop"),
            FunctionTool(name="lax", strict=False),
            ProviderTool({"type": "web_search", "search_context_size": "low"}),
        ],
    )
    assert request.body["tools"] == [
        {
            "type": "function",
            "name": "add",
            "parameters": schema,
            "description": "Add ints",
            "strict": True,
        },
        {"type": "function", "name": "noop", "parameters": {"type": "object", "properties": {}}},
        {
            "type": "function",
            "name": "lax",
            "parameters": {"type": "object", "properties": {}},
            "strict": False,
        },
        {"type": "web_search", "search_context_size": "low"},
    ]
    assert "tool_choice" not in request.body


def test_no_tools_no_tools_key() -> None:
    assert "tools" not in encode("hi").body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("add", {"type": "function", "name": "add"}),
    ],
)
def test_tool_choice(choice: str, expected: str | JSON) -> None:
    request = encode("hi", tools=[FunctionTool(name="add")], tool_choice=choice)
    assert request.body["tool_choice"] == expected


@pytest.mark.parametrize(
    ("choice", "tools"),
    [
        ("sub", [FunctionTool(name="add")]),
        ("add", []),
        ("web_search", [ProviderTool({"type": "web_search", "name": "web_search"})]),
        ("AUTO", [FunctionTool(name="add")]),
    ],
)
def test_tool_choice_naming_no_tool_is_a_usage_error(choice: str, tools: list[Any]) -> None:
    with pytest.raises(UsageError, match=f"tool_choice '{choice}' is neither"):
        encode("hi", tools=tools, tool_choice=choice)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"max_output_tokens": 256}, {"max_output_tokens": 256}),
        ({"temperature": 0.0}, {"temperature": 0.0}),
        ({"top_p": 0.5}, {"top_p": 0.5}),
        (
            {"max_output_tokens": 1, "temperature": 1.5, "top_p": 1.0},
            {"max_output_tokens": 1, "temperature": 1.5, "top_p": 1.0},
        ),
    ],
)
def test_sampling_settings(settings: dict[str, Any], expected: JSON) -> None:
    body = encode("hi", **settings).body
    assert {k: v for k, v in body.items() if k not in ("model", "input", "store")} == expected


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"store": False}),
        ({"store": True}, {"store": True}),
        ({"previous_response_id": "resp_0"}, {"store": False, "previous_response_id": "resp_0"}),
        ({"instructions": "Be kind."}, {"store": False, "instructions": "Be kind."}),
        ({"parallel_tool_calls": False}, {"store": False, "parallel_tool_calls": False}),
        ({"prompt_cache_key": "k1"}, {"store": False, "prompt_cache_key": "k1"}),
        ({"service_tier": "priority"}, {"store": False, "service_tier": "priority"}),
        ({"user": "u1"}, {"store": False, "user": "u1"}),
        ({"metadata": {"run": "7"}}, {"store": False, "metadata": {"run": "7"}}),
        ({"max_tool_calls": 3}, {"store": False, "max_tool_calls": 3}),
        ({"safety_identifier": "hash"}, {"store": False, "safety_identifier": "hash"}),
        ({"truncation": "auto"}, {"store": False, "truncation": "auto"}),
        ({"text_verbosity": "low"}, {"store": False, "text": {"verbosity": "low"}}),
        (
            {"include": ["message.output_text.logprobs"]},
            {"store": False, "include": ["message.output_text.logprobs"]},
        ),
        (
            {"reasoning_effort": "high"},
            {
                "store": False,
                "reasoning": {"effort": "high"},
                "include": ["reasoning.encrypted_content"],
            },
        ),
        (
            {"reasoning_summary": "auto"},
            {
                "store": False,
                "reasoning": {"summary": "auto"},
                "include": ["reasoning.encrypted_content"],
            },
        ),
        (
            {"reasoning_effort": "minimal", "reasoning_summary": "detailed", "store": True},
            {"store": True, "reasoning": {"effort": "minimal", "summary": "detailed"}},
        ),
        (
            {"reasoning_effort": "low", "include": ["file_search_call.results"]},
            {
                "store": False,
                "reasoning": {"effort": "low"},
                "include": ["file_search_call.results", "reasoning.encrypted_content"],
            },
        ),
        (
            {"reasoning_effort": "low", "include": ["reasoning.encrypted_content"]},
            {
                "store": False,
                "reasoning": {"effort": "low"},
                "include": ["reasoning.encrypted_content"],
            },
        ),
        (
            {"reasoning_effort": "none", "store": True, "include": []},
            {"store": True, "reasoning": {"effort": "none"}},
        ),
    ],
)
def test_options_map_to_body_keys(options: dict[str, Any], expected: JSON) -> None:
    body = encode("hi", options).body
    assert {k: v for k, v in body.items() if k not in ("model", "input")} == expected
    # The model form encodes identically.
    assert encode("hi", ResponsesOptions(**options)).body == body


def test_every_option_field_is_encoded() -> None:
    options = ResponsesOptions(
        previous_response_id="resp_0",
        store=True,
        instructions="i",
        include=("x",),
        reasoning_effort="medium",
        reasoning_summary="concise",
        parallel_tool_calls=True,
        prompt_cache_key="k",
        service_tier="flex",
        text_verbosity="high",
        user="u",
        metadata={"a": "b"},
        max_tool_calls=2,
        safety_identifier="s",
        truncation="disabled",
        context_management=(ContextManagement(compact_threshold=2000),),
        extra_body={"z": 1},
    )
    assert set(ResponsesOptions.model_fields) == {
        "previous_response_id",
        "store",
        "instructions",
        "include",
        "reasoning_effort",
        "reasoning_summary",
        "parallel_tool_calls",
        "prompt_cache_key",
        "service_tier",
        "text_verbosity",
        "user",
        "metadata",
        "max_tool_calls",
        "safety_identifier",
        "truncation",
        "context_management",
        "extra_body",
    }
    body = encode("hi", options).body
    del body["input"]
    assert body == {
        "model": "gpt-5",
        "store": True,
        "previous_response_id": "resp_0",
        "instructions": "i",
        "parallel_tool_calls": True,
        "prompt_cache_key": "k",
        "service_tier": "flex",
        "user": "u",
        "metadata": {"a": "b"},
        "max_tool_calls": 2,
        "safety_identifier": "s",
        "truncation": "disabled",
        "reasoning": {"effort": "medium", "summary": "concise"},
        "include": ["x"],
        "text": {"verbosity": "high"},
        "context_management": [{"type": "compaction", "compact_threshold": 2000}],
        "z": 1,
    }


def test_options_of_a_provider_llmkit_does_not_know_are_refused() -> None:
    # A misspelt name ("opneai") must not drop the options silently (test_call_input.py).
    with pytest.raises(UsageError, match="known providers: 'openai'"):
        Call("hi", provider_options={"anthropic": {"x": 1}})


def test_responses_options_helper() -> None:
    assert responses_options(None) == ResponsesOptions()
    assert responses_options({}) == ResponsesOptions()
    model = ResponsesOptions(store=True)
    assert responses_options({"openai": model}) is model
    assert responses_options({"openai": {"include": ["a", "b"]}}).include == ("a", "b")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"bogus": 1}, r"invalid OpenAI Responses options: bogus: Extra inputs are not permitted"),
        ({"store": True, "temprature": 0.2}, r"temprature"),
        ({"store": "perhaps"}, r"store: "),
        ({"reasoning_effort": "extreme"}, r"reasoning_effort: "),
        ({"metadata": {"a": 1}}, r"metadata\.a: "),
        ({"max_tool_calls": "many"}, r"max_tool_calls: "),
    ],
)
def test_bad_options_are_usage_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        encode("hi", options)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("options", "name"),
    [(5, "int"), ("store", "str"), (["store"], "list"), (ResponsesOptions, "ModelMetaclass")],
)
def test_options_of_the_wrong_type_are_usage_errors(options: Any, name: str) -> None:
    with pytest.raises(UsageError, match=f"must be a ResponsesOptions or a dict, not {name}$"):
        encode("hi", options)


def test_options_are_frozen() -> None:
    options = ResponsesOptions()
    assert options.store is False
    with pytest.raises(ValueError, match="frozen"):
        options.store = True
