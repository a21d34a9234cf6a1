"""Tier 1: server-side compaction in `ResponsesProtocol` and in the Responses encoder.

A compacting response streams a ``compaction`` output item (PROTOCOL.md §3.3, §8.2):
``output_item.added``, ``response.compaction.compacting``, ``output_item.done`` with the
opaque ``encrypted_content``. The protocol gives one `CompactionStart` per item, however
many of those events came, then the item itself as a `ProviderItemPart`, which the
history replays verbatim.
"""

from __future__ import annotations

import json

import events as ev
import pytest

from llmkit import (
    AssistantMessage,
    Call,
    CompactionStart,
    FinishReason,
    Message,
    ProviderItemPart,
    TextPart,
    ToolCall,
    UsageError,
    UserMessage,
)
from llmkit.openai import ContextManagement, ResponsesOptions
from llmkit.openai._encode import encode_request, render_output
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import StreamPart, TextDelta, TextEnd, TextStart, collect

ITEM = {"id": "cmp_1", "type": "compaction", "encrypted_content": "gAAAA-opaque", "created_by": "x"}


def feed(payloads: list[str]) -> tuple[ResponsesProtocol, list[StreamPart]]:
    protocol = ResponsesProtocol()
    parts: list[StreamPart] = []
    for payload in payloads:
        parts += protocol.receive(payload)
    return protocol, parts


def compacting(item_id: str | None = "cmp_1", output_index: int | None = 0) -> str:
    fields = {"item_id": item_id, "output_index": output_index, "sequence_number": 3}
    return ev.event("response.compaction.compacting", **fields)


def answer(output_index: int = 1) -> list[str]:
    return [
        ev.item_added(ev.message_item("msg_1", [], status="in_progress"), output_index),
        ev.text_delta("msg_1", "Done.", output_index=output_index),
        ev.item_done(ev.message_item("msg_1", "Done."), output_index),
    ]


def test_a_compacting_response_gives_a_start_then_the_item_verbatim() -> None:
    added = {"id": "cmp_1", "type": "compaction"}
    protocol, parts = feed(
        [
            ev.created(),
            ev.item_added(added),
            compacting(),
            ev.item_done(ITEM),
            *answer(),
            ev.completed(output=[ITEM, ev.message_item("msg_1", "Done.")]),
        ]
    )
    assert protocol.done
    assert parts[:2] == [CompactionStart("cmp_1"), ProviderItemPart("cmp_1", "compaction", ITEM)]
    assert [type(p) for p in parts[2:-1]] == [TextStart, TextDelta, TextEnd]
    response = collect(parts)
    assert response.content == (
        ProviderItemPart("cmp_1", "compaction", ITEM),
        TextPart("Done.", id="msg_1"),
    )
    assert response.finish_reason is FinishReason.STOP
    assert response.message.parts[0] == ProviderItemPart("cmp_1", "compaction", ITEM)


@pytest.mark.parametrize(
    ("events", "item_id"),
    [
        pytest.param([compacting()], "cmp_1", id="compacting-only"),
        pytest.param([compacting(), compacting()], "cmp_1", id="compacting-twice"),
        # One id for every part of an item: the first one the stream gave (here none).
        pytest.param([compacting(item_id=None)], None, id="by-output-index"),
        # No output index: the item cannot be placed yet, its ``done`` starts it.
        pytest.param([compacting(output_index=None)], "cmp_1", id="no-output-index"),
        pytest.param(
            [ev.event("response.compaction.in_progress", output_index=0)], None, id="other"
        ),
        pytest.param([ev.item_added({"type": "compaction", "id": "cmp_1"})], "cmp_1", id="added"),
        pytest.param([], "cmp_1", id="done-only"),
    ],
)
def test_one_start_per_compaction_item_whatever_announced_it(
    events: list[str], item_id: str | None
) -> None:
    _, parts = feed([ev.created(), *events, ev.item_done(ITEM), ev.completed(output=[ITEM])])
    assert parts[:2] == [CompactionStart(item_id), ProviderItemPart(item_id, "compaction", ITEM)]
    assert len(parts) == 3


def test_an_item_only_in_the_final_output_gets_its_start_too() -> None:
    _, parts = feed([ev.created(), ev.completed(output=[ITEM])])
    assert parts[:2] == [CompactionStart("cmp_1"), ProviderItemPart("cmp_1", "compaction", ITEM)]


def test_a_compaction_event_naming_no_item_gives_nothing() -> None:
    protocol, parts = feed([ev.created(), ev.event("response.compaction.completed", item_id="c")])
    assert parts == []
    assert not protocol.done


def test_a_started_compaction_that_never_finishes_leaves_no_item() -> None:
    _, parts = feed([ev.created(), compacting(), *answer(), ev.completed()])
    assert parts[0] == CompactionStart("cmp_1")
    assert collect(parts).content == (TextPart("Done.", id="msg_1"),)


def test_compaction_events_are_not_unknown_events_of_another_item() -> None:
    """A compaction at output index 1 after a function call at 0 leaves the call alone."""
    call = ev.function_call_item("fc_1", "call_1", "add", '{"a":1}')
    item = {**ITEM, "id": "cmp_2"}
    _, parts = feed(
        [
            ev.created(),
            ev.item_done(call, 0),
            compacting("cmp_2", 1),
            ev.item_done(item, 1),
            ev.completed(output=[call, item]),
        ]
    )
    response = collect(parts)
    assert response.tool_calls == [ToolCall("call_1", "add", '{"a":1}', id="fc_1")]
    assert response.content[-1] == ProviderItemPart("cmp_2", "compaction", item)
    assert CompactionStart("cmp_2") in parts


# --------------------------------------------------------------------------- replay


def test_the_item_replays_byte_for_byte_in_its_place() -> None:
    """Input is the history as the server gave it: the item's JSON text unchanged."""
    raw = '{"id":"cmp_1","type":"compaction","encrypted_content":"gAAAA\\u00e9+/=","z":[1,2.5]}'
    _, parts = feed([ev.created(), ev.event("response.output_item.done", item=json.loads(raw))])
    message = AssistantMessage([*collect(parts).message.parts, TextPart("after", id="msg_2")])
    history: list[Message] = [UserMessage("go"), message, UserMessage("next")]
    body = encode_request("m", Call(history)).body
    replayed = body["input"][1]
    assert json.dumps(replayed, separators=(",", ":")) == raw
    assert [item.get("type") for item in body["input"]] == [
        "message",
        "compaction",
        "message",
        "message",
    ]
    assert render_output(message, store=False)[0] == json.loads(raw)


# --------------------------------------------------------------------------- options


def test_context_management_is_encoded_in_the_api_shape() -> None:
    options = {"context_management": [{"type": "compaction", "compact_threshold": 20000}]}
    body = encode_request("m", Call("hi", provider_options={"openai": options})).body
    assert body["context_management"] == [{"type": "compaction", "compact_threshold": 20000}]
    typed = ResponsesOptions(context_management=(ContextManagement(),))
    body = encode_request("m", Call("hi", provider_options={"openai": typed})).body
    assert body["context_management"] == [{"type": "compaction"}]
    assert "context_management" not in encode_request("m", Call("hi")).body


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"type": "compaction", "compact_threshold": 999}, "greater than or equal to 1000"),
        ({"type": "truncate"}, "context_management.0.type"),
        ({"type": "compaction", "threshold": 5000}, "threshold"),
    ],
)
def test_bad_context_management_is_a_usage_error(entry: dict[str, object], match: str) -> None:
    call = Call("hi", provider_options={"openai": {"context_management": [entry]}})
    with pytest.raises(UsageError, match=match):
        encode_request("m", call)
