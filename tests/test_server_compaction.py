"""The local server's server-side compaction (``context_management``) over real sockets.

From the protocol (PROTOCOL.md §3.3) and the API reference: ``[{"type": "compaction",
"compact_threshold": N}]`` with N >= 1000; past N rendered tokens the response begins
with an opaque ``compaction`` item (``output_item.added``, ``response.compaction.
compacting``, ``output_item.done``) that later input carries; the latest one stands for
every item before it, and a chained request continues from the compacted context.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_server_semantics import ADD_TOOL, post, stream, text_of, turn
from websockets.sync.client import connect

from llmkit.testing import ResponsesServer

Item = dict[str, Any]
LONG = "Sum it up [steps=3] " + "padding " * 700  # about 1,400 tokens: past the minimum
COMPACT = [{"type": "compaction", "compact_threshold": 1000}]


def body(input_: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "m", "tools": [ADD_TOOL], "store": False, "input": input_, **fields}


def output_of(events: list[dict[str, Any]]) -> list[Item]:
    output: list[Item] = events[-1]["response"]["output"]
    return output


def tool_output(call: Item) -> Item:
    args = json.loads(call["arguments"])
    return {
        "type": "function_call_output",
        "call_id": call["call_id"],
        "output": str(args["a"] + args["b"]),
    }


def test_past_the_threshold_the_response_begins_with_a_compaction_item(
    server: ResponsesServer,
) -> None:
    events = stream(server, body(LONG, context_management=COMPACT))
    kinds = [e["type"] for e in events[2:5]]
    assert kinds == [
        "response.output_item.added",
        "response.compaction.compacting",
        "response.output_item.done",
    ]
    added, compacting, done = events[2:5]
    assert added["item"] == {"id": done["item"]["id"], "type": "compaction"}
    assert (compacting["item_id"], compacting["output_index"]) == (done["item"]["id"], 0)
    item = done["item"]
    assert set(item) == {"id", "type", "encrypted_content"} and item["id"].startswith("cmp_")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    output = output_of(events)
    assert output[0] == item and output[1]["type"] == "function_call"
    assert output[1]["id"] == events[5]["item"]["id"] and events[5]["output_index"] == 1
    assert server.stats.compactions == 1
    assert [r.compacted for r in server.stats.requests] == [True]


def test_below_the_threshold_or_without_context_management_nothing_is_compacted(
    server: ResponsesServer,
) -> None:
    small = stream(server, body("Sum it up [steps=3]", context_management=COMPACT))
    plain = stream(server, body(LONG))
    high = [{"type": "compaction", "compact_threshold": 100_000}]
    default = stream(server, body(LONG, context_management=[{"type": "compaction"}]))
    higher = stream(server, body(LONG, context_management=high))
    for events in (small, plain, default, higher):
        assert [i["type"] for i in output_of(events)] == ["function_call"]
        assert not any(e["type"].startswith("response.compaction.") for e in events)
    assert server.stats.compactions == 0


def run_loop(server: ResponsesServer, send: Any) -> tuple[str, list[Item]]:
    """A 3-step add loop whose first turn compacts; ``send(history, last_response)``
    gives the next turn's events."""
    events = send([{"type": "message", "role": "user", "content": LONG}], None)
    history: list[Item] = [{"type": "message", "role": "user", "content": LONG}]
    for _ in range(5):
        output = output_of(events)
        history += output
        calls = [i for i in output if i["type"] == "function_call"]
        if not calls:
            return text_of(events), history
        history.append(tool_output(calls[0]))
        events = send(history, events[-1]["response"])
    raise AssertionError("the loop did not finish")


def test_the_item_replayed_in_full_input_carries_the_context(server: ResponsesServer) -> None:
    answer, history = run_loop(
        server, lambda items, _: stream(server, body(items, context_management=COMPACT))
    )
    assert answer == "The answer is 6. [user=1 assistant=0 tool_outputs=3 items=7 compactions=1]"
    assert [i["type"] for i in history].count("compaction") == 1
    assert server.stats.context_violations == 0
    assert server.stats.compactions == 1  # the compacted context is below the threshold


def test_items_before_the_latest_compaction_item_may_be_pruned(server: ResponsesServer) -> None:
    """The compaction guide's latency tip: the item carries everything before it."""

    def pruned(items: list[Item], _: Any) -> list[dict[str, Any]]:
        kinds = [i["type"] for i in items]
        start = len(kinds) - 1 - kinds[::-1].index("compaction") if "compaction" in kinds else 0
        return stream(server, body(items[start:], context_management=COMPACT))

    answer, _ = run_loop(server, pruned)
    assert answer == "The answer is 6. [user=1 assistant=0 tool_outputs=3 items=7 compactions=1]"


def test_a_chained_turn_continues_the_compacted_context(server: ResponsesServer) -> None:
    with connect(server.ws_url, open_timeout=5) as ws:

        def chained(items: list[Item], previous: Item | None) -> list[dict[str, Any]]:
            if previous is None:
                return turn(ws, body(items, context_management=COMPACT))
            fields = {"context_management": COMPACT, "previous_response_id": previous["id"]}
            return turn(ws, body(items[-1:], **fields))

        answer, _ = run_loop(server, chained)
    assert answer == "The answer is 6. [user=1 assistant=0 tool_outputs=3 items=7 compactions=1]"
    assert [r.input_items for r in server.stats.requests] == [1, 1, 1, 1]
    assert [r.compacted for r in server.stats.requests] == [True, False, False, False]
    assert server.stats.context_violations == 0


def test_a_history_without_its_item_is_compacted_again(server: ResponsesServer) -> None:
    """The answer is still right (the items are all there), but every turn pays for a
    compaction pass, and the count in the answer never goes past the turn's own."""

    def dropped(items: list[Item], _: Any) -> list[dict[str, Any]]:
        kept = [i for i in items if i["type"] != "compaction"]
        return stream(server, body(kept, context_management=COMPACT))

    answer, _ = run_loop(server, dropped)
    assert answer == "The answer is 6. [user=1 assistant=0 tool_outputs=3 items=7 compactions=1]"
    assert [r.compacted for r in server.stats.requests] == [True, True, True, True]


def test_the_count_in_the_answer_is_the_compactions_the_context_went_through(
    server: ResponsesServer,
) -> None:
    first = output_of(stream(server, body(LONG, context_management=COMPACT)))
    history = [{"type": "message", "role": "user", "content": LONG}, *first, tool_output(first[1])]
    # The carried context (a tenth of 1,400 tokens) and 1,000 more user tokens: compacts again.
    more = {"type": "message", "role": "user", "content": "Again " + "pad " * 1000}
    again = stream(server, body([*history, more], context_management=COMPACT, tool_choice="none"))
    assert [i["type"] for i in output_of(again)] == ["compaction", "message"]
    assert text_of(again).endswith("[user=2 assistant=0 tool_outputs=1 items=4 compactions=2]")


def test_the_item_twice_is_a_context_violation(server: ResponsesServer) -> None:
    item, call = output_of(stream(server, body(LONG, context_management=COMPACT)))
    history = [{"type": "message", "role": "user", "content": LONG}, item, call, tool_output(call)]
    events = stream(server, body([*history, item]))
    assert events[-1]["type"] == "response.completed"
    assert [r.violations for r in server.stats.requests] == [0, 1]


def test_content_the_server_did_not_make_is_refused(server: ResponsesServer) -> None:
    forged = {"type": "compaction", "id": "cmp_x", "encrypted_content": "gAAAAACnot-ours"}
    response = post(server, body([forged]))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_encrypted_content"
    missing = post(server, body([{"type": "compaction", "id": "cmp_x"}]))
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "input[0].encrypted_content"


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        ({"type": "compaction"}, "context_management", "invalid_type"),
        ([{"type": "truncate"}], "context_management[0].type", "invalid_value"),
        (["compaction"], "context_management[0].type", "invalid_value"),
        ([{"type": "compaction", "compact_threshold": "2k"}], None, "invalid_type"),
        ([{"type": "compaction", "compact_threshold": True}], None, "invalid_type"),
        ([{"type": "compaction", "compact_threshold": 999}], None, "integer_below_min_value"),
    ],
)
def test_malformed_context_management_is_a_400(
    server: ResponsesServer, value: Any, param: str | None, code: str
) -> None:
    response = post(server, body("hi", context_management=value))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == (param or "context_management[0].compact_threshold")
