"""The scripted models and event builders as pure functions (no sockets)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, strategies as st

from llmkit.testing import _models as m
from llmkit.testing._events import (
    Accounting,
    ResponseMeta,
    render_generation,
)
from llmkit.testing._sse import final_response, parse_sse

Item = dict[str, Any]


def user(text: str) -> Item:
    return {"role": "user", "content": text}


def call(call_id: str) -> Item:
    return {"type": "function_call", "call_id": call_id, "name": "f", "arguments": "{}"}


def output(call_id: str, value: Any) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": value}


def test_text_answer_quotes_the_last_user_message_and_counts() -> None:
    conversation = m.normalize_input([user("a"), {"role": "assistant", "content": "b"}, user("c")])
    (answer,) = m.plan({"model": "x"}, conversation, violations=0)
    assert answer == m.MessageOut("Echo: c [user=2 assistant=1 tool_outputs=0 items=3]")
    (empty,) = m.plan({"model": "x"}, [], violations=2)
    assert empty == m.MessageOut("Echo:  [user=0 assistant=0 tool_outputs=0 items=0 violations=2]")


def test_tool_choice_none_answers_in_text() -> None:
    request = {"model": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": "none"}
    (answer,) = m.plan(request, m.normalize_input("hi"), violations=0)
    assert isinstance(answer, m.MessageOut)


def test_tools_round_robin_and_forced_choice() -> None:
    tools = [
        {"type": "function", "name": "first"},
        {"type": "function", "name": "second"},
        {"type": "web_search"},
    ]
    convo: list[Item] = [user("go [steps=3]")]
    names = []
    for step in range(3):
        (spec,) = m.plan({"model": "x", "tools": tools}, convo, violations=0)
        assert isinstance(spec, m.FunctionCallOut)
        names.append(spec.name)
        convo += [call(spec.call_id), output(spec.call_id, str(step))]
    assert names == ["first", "second", "first"]
    (final,) = m.plan({"model": "x", "tools": tools}, convo, violations=0)
    assert final == m.MessageOut("The answer is 2. [user=1 assistant=0 tool_outputs=3 items=7]")
    forced = {"model": "x", "tools": tools, "tool_choice": {"type": "function", "name": "second"}}
    (spec,) = m.plan(forced, [user("go")], violations=0)
    assert isinstance(spec, m.FunctionCallOut) and spec.name == "second"
    required = {"model": "x", "tools": tools, "tool_choice": "required"}
    (again,) = m.plan(required, convo, violations=0)
    assert isinstance(again, m.FunctionCallOut)


def test_call_ids_are_deterministic_and_unique() -> None:
    tools = [{"type": "function", "name": "f"}]
    (a,) = m.plan({"model": "x", "tools": tools}, [user("q")], 0)
    (b,) = m.plan({"model": "x", "tools": tools}, [user("q")], 0)
    (c,) = m.plan({"model": "x", "tools": tools}, [user("other")], 0)
    assert isinstance(a, m.FunctionCallOut) and isinstance(b, m.FunctionCallOut)
    assert isinstance(c, m.FunctionCallOut)
    assert a.call_id == b.call_id != c.call_id
    assert a.call_id.startswith("call_")


def test_arguments_follow_the_schema() -> None:
    tool = {
        "type": "function",
        "name": "t",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": ["integer", "null"]},
                "exact": {"type": "boolean"},
                "tags": {"type": "array"},
                "opts": {"type": "object"},
                "free": {},
            },
        },
    }
    args = m.build_arguments(tool, 2, "7", "Paris")
    assert args == {
        "city": "Paris",
        "unit": "c",
        "days": 2,
        "exact": True,
        "tags": [],
        "opts": {},
        "free": "Paris",
    }
    assert m.build_arguments({"name": "none"}, 1, "", "") == {}


def test_add_tool_reads_the_last_output_as_a_number() -> None:
    tool = {"parameters": {"properties": {"a": {"type": "number"}, "b": {"type": "integer"}}}}
    assert m.build_arguments(tool, 3, " 41 ", "") == {"a": 41, "b": 3}
    assert m.build_arguments(tool, 1, "2.5", "") == {"a": 2.5, "b": 1}
    assert m.build_arguments(tool, 1, "nan", "") == {"a": 0, "b": 1}
    assert m.build_arguments(tool, 1, "not a number", "") == {"a": 0, "b": 1}


def test_tool_output_content_parts_are_read_as_text() -> None:
    convo = [user("q"), call("c1"), output("c1", [{"type": "input_text", "text": "42"}])]
    assert m.last_tool_output(convo) == "42"
    assert m.content_text(None) == ""
    assert m.content_text([{"type": "refusal", "refusal": "no"}, "junk"]) == "no"


def test_violations_detect_repeated_calls_outputs_and_assistant_messages() -> None:
    prefix = [user("q"), call("c1"), output("c1", "1"), {"role": "assistant", "content": "hi"}]
    assert m.count_violations(prefix, [user("q")]) == 0
    assert m.count_violations(prefix, [call("c1")]) == 1
    assert m.count_violations(prefix, [output("c1", "2"), output("c1", "2")]) == 2
    assert (
        m.count_violations(
            prefix,
            [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "hi"}],
                }
            ],
        )
        == 1
    )
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": []}
    assert m.count_violations([reasoning], [{**reasoning, "id": "rs_2"}]) == 1


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=8))
def test_duplicating_any_tool_output_is_counted(ids: list[str]) -> None:
    items = [output(i, "x") for i in dict.fromkeys(ids)]
    assert m.count_violations([], items) == 0
    assert m.count_violations(items, items) == len(items)
    assert m.count_violations([], [output(i, "x") for i in ids]) == len(ids) - len(set(ids))


@given(st.text())
def test_split_tokens_round_trips(text: str) -> None:
    assert "".join(m.split_tokens(text)) == text
    assert "".join(m.split_chunks(text)) == text


def test_encrypted_reasoning_verifies_and_rejects_forgeries() -> None:
    token = m.encrypt_reasoning("rs_1", "summary")
    assert m.verify_reasoning(token)
    assert not m.verify_reasoning(token[:-4] + "AAAA")
    assert not m.verify_reasoning("gAAAAAB!!!")
    assert not m.verify_reasoning("gAAAAABx")
    assert not m.verify_reasoning("other")
    assert not m.verify_reasoning(None)


def test_reasoning_model_by_name() -> None:
    specs = m.plan({"model": "my-reasoner"}, [user("x")], 0)
    assert [type(s) for s in specs] == [m.ReasoningOut, m.MessageOut]


def test_budget_cut_inside_reasoning_is_incomplete() -> None:
    meta = ResponseMeta("resp_1", 0, {"model": "m"})
    specs: list[m.OutputSpec] = [m.ReasoningOut(" ".join(["w"] * 20)), m.MessageOut("never")]
    acct = Accounting(10, 0, include_encrypted=False, obfuscate=False, max_output_tokens=16)
    rendered = render_generation(meta, specs, acct)
    assert rendered.status == "incomplete"
    assert [i["type"] for i in rendered.output] == ["reasoning"]
    assert rendered.response["usage"]["output_tokens_details"]["reasoning_tokens"] == 16
    exact: list[m.OutputSpec] = [m.ReasoningOut(" ".join(["w"] * 16)), m.MessageOut("late")]
    assert render_generation(meta, exact, acct).status == "incomplete"


def test_parse_sse_keeps_raw_blocks() -> None:
    body = (
        b'event: response.created\r\ndata: {"type":"response.created"}\r\n\r\n'
        b"data: not json\n\n: comment only\n\n"
        b'data: {"type":"response.completed","response":{"id":"r","status":"completed"}}\n\n'
        b"data: [DONE]\n\n"
    )
    blocks = parse_sse(body)
    assert [b.type for b in blocks] == ["response.created", None, None, "response.completed", None]
    assert blocks[0].raw.startswith(b"event: response.created\n")
    assert final_response(blocks) == {"id": "r", "status": "completed"}
    assert final_response(parse_sse(b'data: {"type":"response.failed","response":3}\n\n')) is None
    assert final_response([]) is None
    assert json.loads(blocks[3].data or "")["response"]["id"] == "r"
