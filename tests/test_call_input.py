"""What a new user passes: a plain string, OpenAI-style dicts, wrong types.

A string is a `Call`; simple OpenAI text dicts become messages; anything else of the
wrong type is a `UsageError` that says what it got and what was expected, raised where
it was given (not an ``AssertionError`` from deep inside the encoder).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from loop import ADD, TRANSPORTS, Transport, provider

import llmkit
from llmkit.testing import ResponsesServer


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# -- a plain string wherever a Call is taken -------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_string_is_a_call_for_generate_stream_and_warmup(
    server: ResponsesServer, transport: Transport
) -> None:
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        response = model.generate("hello there")
        assert response.text.startswith("Echo: hello there [user=1 ")
        with model.stream("hello again") as stream:
            assert stream.until_done().text.startswith("Echo: hello again [user=1 ")
        warmed = model.warmup("warm")
        assert warmed.transport == ("websocket" if transport == "websocket" else "http")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_anything_else_than_a_call_or_a_string_is_refused_by_the_model(
    server: ResponsesServer, transport: Transport
) -> None:
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        wrong: Any = [llmkit.UserMessage("hi")]
        for method in (model.generate, model.stream, model.warmup):
            with pytest.raises(llmkit.UsageError, match="expected a Call or a str, not a list"):
                method(wrong)
    assert server.stats.requests == []


# -- OpenAI-style dicts ------------------------------------------------------------------


def test_simple_openai_text_dicts_become_messages() -> None:
    call = llmkit.Call(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            llmkit.UserMessage("and you?"),
        ]
    )
    assert call.prompt == (
        llmkit.SystemMessage("Be brief."),
        llmkit.SystemMessage("Answer in English."),
        llmkit.UserMessage("hi"),
        llmkit.AssistantMessage("hello"),
        llmkit.UserMessage("and you?"),
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_openai_text_dicts_reach_the_model_as_messages(
    server: ResponsesServer, transport: Transport
) -> None:
    prompt: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    with provider(server, transport) as p:
        response = p.language_model("scripted").generate(llmkit.Call(prompt))
    assert response.text.startswith("Echo: second [user=2 assistant=1 ")


@pytest.mark.parametrize(
    "item",
    [
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1"}]},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "user", "content": "hi", "name": "ann"},
        {"role": "human", "content": "hi"},
        {"content": "hi"},
    ],
    ids=["tool", "tool-calls", "content-parts", "name", "unknown-role", "no-role"],
)
def test_other_dicts_are_refused_with_a_pointer_to_the_message_classes(
    item: dict[str, Any],
) -> None:
    with pytest.raises(llmkit.UsageError) as caught:
        llmkit.Call([{"role": "user", "content": "hi"}, item])  # type: ignore[list-item]
    message = str(caught.value)
    assert message.startswith("Call.prompt[1] is a dict llmkit cannot convert")
    for name in ("UserMessage", "AssistantMessage", "ToolMessage", "ToolResult"):
        assert name in message
    assert isinstance(caught.value, ValueError)


# -- other wrong types -------------------------------------------------------------------


def _prompts() -> Iterator[tuple[str, Any, str]]:
    yield "list-of-str", ["hi", "there"], r"Call.prompt\[0\] is a str; expected a message"
    yield "number", 42, "Call.prompt is a int; expected a str"
    yield "one-message", llmkit.UserMessage("hi"), "wrap one message in a list"
    yield "dict", {"role": "user", "content": "hi"}, "Call.prompt is a dict"
    yield "bytes", b"hi", "Call.prompt is a bytes"
    yield "none-item", [llmkit.UserMessage("hi"), None], r"Call.prompt\[1\] is a NoneType"


@pytest.mark.parametrize(
    ("prompt", "pattern"), [p[1:] for p in _prompts()], ids=[p[0] for p in _prompts()]
)
def test_a_wrong_prompt_says_what_it_got_and_what_was_expected(prompt: Any, pattern: str) -> None:
    with pytest.raises(llmkit.UsageError, match=pattern) as caught:
        llmkit.Call(prompt)
    assert "SystemMessage, UserMessage, AssistantMessage or ToolMessage" in str(caught.value)


def test_a_list_of_strings_suggests_user_messages() -> None:
    with pytest.raises(llmkit.UsageError, match=r"UserMessage\(text\) for each"):
        llmkit.Call(["hi", "there"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kind", "value", "pattern"),
    [
        (llmkit.UserMessage, ["hi"], r"UserMessage\[0\] is a str; expected TextPart, "),
        (llmkit.UserMessage, 42, "UserMessage takes a str or a sequence of TextPart"),
        (llmkit.AssistantMessage, [1], r"AssistantMessage\[0\] is a int; expected TextPart"),
        (llmkit.ToolMessage, ["3"], r"ToolMessage\[0\] is a str; expected ToolResult"),
        (llmkit.ToolMessage, {"call_id": "c"}, "ToolMessage takes one ToolResult or a"),
    ],
    ids=["user-str-parts", "user-number", "assistant-parts", "tool-results", "tool-dict"],
)
def test_wrong_message_parts_are_refused_where_the_message_is_made(
    kind: Any, value: Any, pattern: str
) -> None:
    with pytest.raises(llmkit.UsageError, match=pattern):
        kind(value)


# -- tools in a Call -----------------------------------------------------------------------


def test_a_python_function_in_call_tools_says_how_to_use_it() -> None:
    for function in (add, llmkit.tool(add)):
        with pytest.raises(llmkit.UsageError) as caught:
            llmkit.Call("hi", tools=[ADD, function])  # type: ignore[list-item]
        message = str(caught.value)
        assert message.startswith("Call.tools[1] is the Python function 'add'")
        assert "ToolLoop(model, [add])" in message
        assert "llmkit.tool(add).spec" in message
    declared = llmkit.Call("hi", tools=[llmkit.tool(add).spec])
    assert declared.tools[0].name == "add"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tools", "pattern"),
    [
        ([{"type": "function", "name": "add"}], r"Call.tools\[0\] is a dict; expected"),
        (ADD, "Call.tools takes a sequence of .*, not a FunctionTool"),
        ("add", "Call.tools takes a sequence of .*, not a str"),
    ],
    ids=["dict", "one-tool", "str"],
)
def test_wrong_tools_are_refused(tools: Any, pattern: str) -> None:
    with pytest.raises(llmkit.UsageError, match=pattern):
        llmkit.Call("hi", tools=tools)


def test_a_wrong_tool_choice_is_refused() -> None:
    with pytest.raises(llmkit.UsageError, match=r"Call\.tool_choice is a FunctionTool"):
        llmkit.Call("hi", tools=[ADD], tool_choice=ADD)  # type: ignore[arg-type]


def test_a_tool_loop_still_rebuilds_its_calls() -> None:
    call = llmkit.Call("hi", tools=[ADD], provider_options={"openai": {"store": True}})
    again = dataclasses.replace(call, prompt=(*call.prompt, llmkit.AssistantMessage("ok")))
    assert again.tools == call.tools and again.provider_options == call.provider_options


# -- provider_options ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["opneai", "OpenAI", "anthropic"])
def test_a_misspelt_provider_in_provider_options_is_refused(name: str) -> None:
    with pytest.raises(llmkit.UsageError) as caught:
        llmkit.Call("hi", provider_options={name: {"store": True}})
    message = str(caught.value)
    assert repr(name) in message
    assert "known providers: 'openai'" in message


def test_provider_options_must_be_a_mapping() -> None:
    with pytest.raises(llmkit.UsageError, match=r"Call\.provider_options is a list"):
        llmkit.Call("hi", provider_options=[("openai", {})])  # type: ignore[arg-type]


# -- tools of a ToolLoop -------------------------------------------------------------------


def _loops() -> Iterator[Any]:
    with llmkit.Provider(api_key="k", base_url="http://127.0.0.1:9/v1") as sync:
        yield lambda tools: llmkit.ToolLoop(sync.language_model("m"), tools)
    aio = llmkit.AsyncProvider(api_key="k", base_url="http://127.0.0.1:9/v1")
    try:
        yield lambda tools: llmkit.AsyncToolLoop(aio.language_model("m"), tools)
    finally:
        asyncio.run(aio.aclose())


@pytest.mark.parametrize(
    ("tools", "pattern"),
    [
        ([add, 42], r"tools\[1\] is not a function: got int 42; expected a function or a "),
        (["add"], r"tools\[0\] is not a function: got str 'add'; expected"),
        ([ADD], r"got FunctionTool .*a FunctionTool only declares a tool"),
        (add, "tools must be a list of functions or CallableTools, not a function"),
    ],
    ids=["number", "str", "function-tool", "not-a-list"],
)
def test_a_tool_loop_says_what_a_wrong_tool_is(tools: Any, pattern: str) -> None:
    for make in _loops():
        with pytest.raises(llmkit.UsageError, match=pattern):
            make(tools)


def test_tool_says_what_it_got_too() -> None:
    with pytest.raises(llmkit.UsageError, match="a tool must be a function: got int 42"):
        llmkit.tool(42)  # type: ignore[call-overload]
