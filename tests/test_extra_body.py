"""`extra_body`: raw request fields, merged into the body as given, on every path.

Tier 1 for the merge rule (after llmkit's fields; a key llmkit set for this request, or a
delivery field, is a `UsageError`), tier 3 for what reaches the local server, which
records the bodies it received (``record_bodies``), and for the WebSocket chain: a turn
whose ``extra_body`` changed is another request and goes out in full.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from loop import ADD, RESPONSES_TRANSPORTS, TRANSPORTS, Transport, provider, run_tool

import llmkit
from llmkit.openai import ChatOptions, ResponsesOptions
from llmkit.openai._chain import Chain, continuation
from llmkit.openai._encode import encode_request
from llmkit.openai.chat._encode import encode_chat_request
from llmkit.testing import ResponsesServer


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# Fields llmkit does not model, with values whose JSON is easy to get subtly wrong:
# non-ASCII text, a float, a nested null and false, a large integer, key order.
EXTRA: dict[str, Any] = {
    "prompt_cache_retention": "24h",
    "x_vendor": {"z": [1, 2.5, "ü\u2028", None, False], "a": {"nested": 12345678901234567890}},
}


def call(extra: dict[str, Any] | None = None, **options: Any) -> llmkit.Call:
    return llmkit.Call("hi", provider_options={"openai": {"extra_body": extra, **options}})


@pytest.mark.parametrize("encode", [encode_request, encode_chat_request], ids=["responses", "chat"])
def test_merged_after_llmkits_own_fields_as_given(encode: Any) -> None:
    body = encode("m", call(EXTRA)).body
    assert list(body)[-2:] == list(EXTRA)
    assert {key: body[key] for key in EXTRA} == EXTRA
    assert json.dumps(body["x_vendor"]) == json.dumps(EXTRA["x_vendor"])


@pytest.mark.parametrize(
    ("encode", "options", "taken"),
    [
        (encode_request, {}, "'input', 'model'"),
        (encode_request, {"extra": {"store": True}}, "'store'"),
        (encode_request, {"extra": {"stream": False}}, "'stream'"),
        (
            encode_request,
            {"extra": {"stream_id": "a", "generate": False}},
            "'generate', 'stream_id'",
        ),
        (encode_request, {"extra": {"type": "x"}}, "'type'"),
        (encode_request, {"extra": {"reasoning": {}}, "reasoning_effort": "low"}, "'reasoning'"),
        (encode_chat_request, {"extra": {"stream": False}}, "'stream'"),
        (encode_chat_request, {"extra": {"stream_options": {}}}, "'stream_options'"),
        (encode_chat_request, {"extra": {"messages": []}}, "'messages'"),
    ],
)
def test_a_field_llmkit_sets_for_the_request_is_a_usage_error(
    encode: Any, options: dict[str, Any], taken: str
) -> None:
    extra = options.pop("extra", {"model": "x", "input": []})
    with pytest.raises(llmkit.UsageError, match=f"extra_body sets {taken}, which llmkit sets"):
        encode("m", call(extra, **options))


def test_a_field_an_option_could_set_is_the_callers_when_the_option_is_unset() -> None:
    """Like openai-python's ``extra_body``: anything llmkit does not send this time,
    a new sub-field of ``reasoning`` say, is the caller's to send."""
    reasoning = {"effort": "low", "context": "all_turns"}
    body = encode_request("m", call({"reasoning": reasoning, "text": {"verbosity": "low"}})).body
    assert (body["reasoning"], body["text"]) == (reasoning, {"verbosity": "low"})
    chat = encode_chat_request(
        "m", call({"stream_options": {"include_usage": False}}, include_usage=False)
    )
    assert chat.body["stream_options"] == {"include_usage": False}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"x": float("nan")}, "must be JSON data"),
        ({"x": object()}, "must be JSON data"),
        ({1: "x"}, "extra_body"),
        ("x", "extra_body"),
    ],
)
def test_extra_body_must_be_a_json_object(value: Any, match: str) -> None:
    with pytest.raises(llmkit.UsageError, match=match):
        encode_request("m", call(value))


@pytest.mark.parametrize("options", [ResponsesOptions, ChatOptions])
def test_a_value_changed_in_place_later_does_not_change_an_earlier_body(options: Any) -> None:
    """The chain compares a request with the body an earlier one sent: that body owns its
    values, whatever the caller does to the dict or the options afterwards."""
    nested = {"v": 1}
    given = options(extra_body={"x": nested})
    encode = encode_request if options is ResponsesOptions else encode_chat_request
    body = encode("m", llmkit.Call("hi", provider_options={"openai": given})).body
    nested["v"] = 2
    given.extra_body["x"]["v"] = 3
    assert body["x"] == {"v": 1}


def test_a_changed_extra_body_does_not_continue_a_chain() -> None:
    first = encode_request("m", call({"x": 1})).body
    chain = Chain("resp_1", {k: v for k, v in first.items() if k != "input"}, tuple(first["input"]))
    assert continuation(encode_request("m", call({"x": 1})).body, chain) is not None
    assert continuation(encode_request("m", call({"x": 2})).body, chain) is None
    assert continuation(encode_request("m", call()).body, chain) is None


def test_responses_options_with_extra_body_run_on_chat_unchanged() -> None:
    options = ResponsesOptions(extra_body={"top_k": 3})
    body = encode_chat_request("m", llmkit.Call("hi", provider_options={"openai": options})).body
    assert body["top_k"] == 3


# --------------------------------------------------------------------------- loopback


def received(server: ResponsesServer) -> list[dict[str, Any]]:
    bodies = [record.body for record in server.stats.requests]
    assert all(body is not None for body in bodies)
    return [body for body in bodies if body is not None]


@pytest.fixture
def recording(server: ResponsesServer) -> ResponsesServer:
    server.record_bodies = True
    return server


def add_results(response: llmkit.Response) -> llmkit.ToolMessage:
    return llmkit.ToolMessage([run_tool(c) for c in response.tool_calls])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_extra_body_reaches_the_server_as_given(
    recording: ResponsesServer, transport: Transport
) -> None:
    """Every path, every turn of a tool loop: the fields arrive with the same JSON."""
    options = {"openai": {"extra_body": EXTRA}}
    with provider(recording, transport) as p:
        loop = llmkit.ToolLoop(p.language_model("gpt-test"), [add])
        call = llmkit.Call("Sum 1..3 with add [steps=3]", provider_options=options)
        result = loop.run(call)
    assert result.text.startswith("The answer is 6.")
    bodies = received(recording)
    assert len(bodies) == 4
    for body in bodies:
        assert {key: body[key] for key in EXTRA} == EXTRA
        assert json.dumps(body["x_vendor"]) == json.dumps(EXTRA["x_vendor"])
    if transport == "websocket":
        assert [b.get("previous_response_id") is not None for b in bodies] == [False] + [True] * 3


@pytest.mark.parametrize("transport", [t for t in RESPONSES_TRANSPORTS if t == "websocket"])
def test_an_incremental_turn_with_extra_body_changed_goes_out_in_full(
    recording: ResponsesServer, transport: Transport
) -> None:
    """Same conversation, same connection: turn 2 repeats turn 1's extra_body and chains;
    turn 3 changes it and goes out in full, without previous_response_id."""
    with provider(recording, transport) as p:
        model = p.language_model("gpt-test")
        history: list[llmkit.Message] = [llmkit.UserMessage("Sum 1..5 with add [steps=5]")]
        modes = []
        for extra in ({"x_vendor": 1}, {"x_vendor": 1}, {"x_vendor": 2}, {"x_vendor": 2}, None):
            response = model.generate(
                llmkit.Call(
                    history, tools=[ADD], provider_options={"openai": {"extra_body": extra}}
                )
            )
            modes.append(response.metadata.input_mode)
            history += [response.message, add_results(response)]
    assert modes == ["full", "incremental", "full", "incremental", "full"]
    bodies = received(recording)
    assert [b.get("x_vendor") for b in bodies] == [1, 1, 2, 2, None]
    assert [b.get("previous_response_id") is None for b in bodies] == [
        True,
        False,
        True,
        False,
        True,
    ]
    assert [len(b["input"]) for b in bodies] == [1, 1, 5, 1, 9]
    assert recording.stats.context_violations == 0


def test_the_server_records_bodies_only_when_asked(server: ResponsesServer) -> None:
    with provider(server, "http") as p:
        p.language_model("gpt-test").generate(call(EXTRA))
        server.record_bodies = True
        p.language_model("gpt-test").generate(call(EXTRA))
    first, second = server.stats.requests
    assert first.body is None
    assert second.body is not None and second.body["x_vendor"] == EXTRA["x_vendor"]
    assert second.body["stream"] is True
    with ResponsesServer(record_bodies=True) as other:
        assert other.record_bodies
