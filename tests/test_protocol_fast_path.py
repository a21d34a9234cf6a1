"""The text-delta fast path of `ResponsesProtocol` accepts and yields what the validated
path does, for every shape of delta event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

import llmkit
from llmkit.openai import ResponsesProtocol, wire
from llmkit.stream import StreamPart


class ValidatedOnly(ResponsesProtocol):
    """The protocol with the fast path switched off."""

    def _text_delta(self, data: Any) -> None:
        return None


def run(protocol: ResponsesProtocol, payloads: list[str]) -> tuple[list[Any], Any]:
    parts: list[Any] = []
    try:
        for payload in payloads:
            parts += protocol.receive(payload)
        parts += protocol.finish()
    except llmkit.LLMKitError as exc:
        return parts, (type(exc), exc.partial)
    return parts, None


START = [
    {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
    {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"id": "msg_1", "type": "message", "role": "assistant", "content": []},
    },
]
value = st.one_of(
    st.none(),
    st.integers(-1, 2),
    st.sampled_from(["0", "msg_1", "msg_2", "", " w"]),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
)
delta_event = st.fixed_dictionaries(
    {"type": st.just("response.output_text.delta")},
    optional={
        "delta": st.one_of(st.sampled_from([" w", "x ", "é"]), st.text(max_size=3), value),
        "item_id": st.one_of(st.just("msg_1"), value),
        "output_index": st.one_of(st.just(0), value),
        "content_index": st.one_of(st.just(0), value),
        "sequence_number": value,
        "text": value,
        "refusal": value,
        "logprobs": value,
    },
)
other = st.sampled_from(
    [
        {
            "type": "response.content_part.added",
            "output_index": 0,
            "item_id": "msg_1",
            "content_index": 0,
            "part": {"type": "output_text", "text": ""},
        },
        {
            "type": "response.output_text.done",
            "output_index": 0,
            "item_id": "msg_1",
            "content_index": 0,
            "text": "final",
        },
        {"type": "response.completed", "response": {"id": "resp_1", "status": "completed"}},
    ]
)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.lists(st.one_of(delta_event, other), max_size=12))
def test_fast_and_validated_paths_agree(events: list[dict[str, Any]]) -> None:
    payloads = [json.dumps(e) for e in [*START, *events]]
    assert run(ResponsesProtocol(), payloads) == run(ValidatedOnly(), payloads)


class FastOnly(ResponsesProtocol):
    """The protocol whose validated path refuses text events."""

    def _on_text(self, event: wire.TextEvent) -> list[StreamPart]:
        raise AssertionError(f"{event.type} took the validated path")


def test_receive_takes_the_fast_path_for_deltas_of_the_open_part() -> None:
    protocol = FastOnly()
    for event in START:
        protocol.receive(json.dumps(event))
    opened = {"output_index": 0, "item_id": "msg_1", "content_index": 0}
    part = {"type": "output_text", "text": ""}
    protocol.receive(json.dumps({"type": "response.content_part.added", **opened, "part": part}))
    payload = json.dumps({"type": "response.output_text.delta", **opened, "delta": "a"})
    assert protocol.receive(payload) == [llmkit.TextDelta("msg_1", "a")]
    assert protocol.partial().text == "a"


def test_the_fast_path_is_taken_for_plain_deltas() -> None:
    protocol = ResponsesProtocol()
    delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0}
    for event in [*START, {**delta, "item_id": "msg_1", "delta": "a"}]:
        protocol.receive(json.dumps(event))
    taken = protocol._text_delta({**delta, "item_id": "msg_1", "delta": " b "})
    assert taken == llmkit.TextDelta("msg_1", " b ")


OPEN = [
    *START,
    {
        "type": "response.content_part.added",
        "output_index": 0,
        "item_id": "msg_1",
        "content_index": 0,
        "part": {"type": "output_text", "text": ""},
    },
]
DELTA = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0}


@pytest.mark.parametrize(
    "events",
    [
        [*OPEN, {**DELTA, "item_id": 5, "delta": "a"}],
        [*OPEN, {**DELTA, "item_id": "msg_1", "text": 5, "delta": "a"}],
        [*OPEN, {**DELTA, "item_id": "msg_1", "refusal": 5, "delta": "a"}],
        [*OPEN, {**DELTA, "item_id": "msg_1", "content_index": [], "delta": "a"}],
        [*OPEN, {**DELTA, "item_id": "msg_1", "output_index": [], "delta": "a"}],
        # Without output_index the item id is the key: no id is not the item of id "m".
        [
            START[0],
            {"type": "response.output_text.delta", "delta": "a"},
            {"type": "response.output_text.delta", "item_id": "m", "delta": "b"},
        ],
    ],
    ids=["item_id", "text", "refusal", "content_index", "output_index", "key"],
)
def test_the_paths_agree_on_deltas_the_fast_path_must_refuse(events: list[dict[str, Any]]) -> None:
    payloads = [json.dumps(e) for e in events]
    assert run(ResponsesProtocol(), payloads) == run(ValidatedOnly(), payloads)
