"""Tier 1: `ResponsesProtocol` fed scripted event sequences (no sockets).

Each test states the exact parts a sequence must produce and the `Response` they fold
to. The property tests at the end generate whole responses and cut them short.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import events as ev
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from llmkit.exceptions import (
    APIStatusError,
    BadRequestError,
    IncompleteStream,
    InternalServerError,
    ProtocolError,
    RateLimitError,
    ResponseFailed,
)
from llmkit.messages import (
    FinishReason,
    ProviderItemPart,
    ReasoningPart,
    Response,
    ResponseMetadata,
    SourcePart,
    TextPart,
    ToolCall,
    Usage,
)
from llmkit.openai import wire
from llmkit.openai.protocol import ResponsesProtocol, State, usage_from_wire
from llmkit.stream import (
    Collector,
    Finish,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    StreamPart,
    TextDelta,
    TextEnd,
    TextStart,
    ToolInputDelta,
    ToolInputEnd,
    ToolInputStart,
    collect,
)

RECORDED = Path(__file__).parent / "data" / "recorded"
META = ResponseMetadata(response_id="resp_1", model="gpt-test")


def feed(
    payloads: Iterable[str | bytes], protocol: ResponsesProtocol | None = None
) -> tuple[ResponsesProtocol, list[StreamPart]]:
    protocol = protocol or ResponsesProtocol()
    parts: list[StreamPart] = []
    for payload in payloads:
        parts += protocol.receive(payload)
    return protocol, parts


def run(payloads: Iterable[str | bytes]) -> list[StreamPart]:
    """Feed a whole response; it must end with a terminal event."""
    protocol, parts = feed(payloads)
    assert protocol.done
    assert protocol.finish() == []
    assert protocol.partial() == collect(parts)
    return parts


def run_partial(payloads: Iterable[str]) -> list[StreamPart]:
    """Feed part of a response, without a terminal event."""
    return feed(payloads)[1]


def finish(reason: FinishReason = FinishReason.STOP, usage: Usage | None = None) -> Finish:
    return Finish(reason, usage or Usage(), META)


def text_deltas(parts: Sequence[StreamPart], item_id: str | None = None) -> str:
    return "".join(
        p.delta for p in parts if isinstance(p, TextDelta) and (item_id is None or p.id == item_id)
    )


def tool_deltas(parts: Sequence[StreamPart], item_id: str) -> str:
    return "".join(p.delta for p in parts if isinstance(p, ToolInputDelta) and p.id == item_id)


def recorded_payloads(name: str) -> list[str]:
    text = (RECORDED / name).read_text(encoding="utf-8")
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


# --------------------------------------------------------------------------- text


def test_text_message() -> None:
    parts = run(
        [
            ev.created(),
            ev.in_progress(),
            *ev.message_events("msg_1", ["Hel", "lo"]),
            ev.completed(output=[ev.message_item("msg_1", "Hello")], usage=ev.usage(5, 2)),
        ]
    )
    usage = Usage(input_tokens=5, output_tokens=2, total_tokens=7)
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "Hel"),
        TextDelta("msg_1", "lo"),
        TextEnd("msg_1", "Hello"),
        finish(usage=usage),
    ]
    response = collect(parts)
    assert response == Response(
        content=(TextPart("Hello", id="msg_1"),),
        finish_reason=FinishReason.STOP,
        usage=usage,
        metadata=META,
    )
    assert response.text == "Hello"
    assert response.refusal is None
    assert response.id == "resp_1"


def test_text_end_carries_the_servers_final_text() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "Hel"),
            ev.text_done("msg_1", "Hello!"),
            ev.completed(output=[ev.message_item("msg_1", "Hello!")]),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "Hel"),
        TextEnd("msg_1", "Hello!"),
        finish(),
    ]
    assert collect(parts).text == "Hello!"


def test_refusal_is_kept_out_of_the_text() -> None:
    item = ev.message_item("msg_1", [ev.refusal_part("I can't help.")])
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.message_item("msg_1", [], status="in_progress")),
            ev.content_part_added("msg_1", ev.refusal_part()),
            ev.refusal_delta("msg_1", "I can't"),
            ev.refusal_delta("msg_1", " help."),
            ev.refusal_done("msg_1", "I can't help."),
            ev.content_part_done("msg_1", ev.refusal_part("I can't help.")),
            ev.item_done(item),
            ev.completed(output=[item]),
        ]
    )
    assert parts == [
        TextStart("msg_1", refusal=True),
        TextDelta("msg_1", "I can't"),
        TextDelta("msg_1", " help."),
        TextEnd("msg_1", "I can't help."),
        finish(),
    ]
    response = collect(parts)
    assert response.content == (TextPart("I can't help.", id="msg_1", refusal=True),)
    assert response.text == ""
    assert response.refusal == "I can't help."


@pytest.mark.parametrize(("delta", "final"), [("No.", "No."), ("I can", "I can't.")])
def test_refusal_delta_without_added_opens_a_refusal_part_ending_with_the_servers_text(
    delta: str, final: str
) -> None:
    parts = run(
        [
            ev.created(),
            ev.refusal_delta("msg_1", delta),
            ev.refusal_done("msg_1", final),
            ev.completed(),
        ]
    )
    assert parts == [
        TextStart("msg_1", refusal=True),
        TextDelta("msg_1", delta),
        TextEnd("msg_1", final),
        finish(),
    ]


def test_refusal_only_in_the_final_item_is_synthesised() -> None:
    item = ev.message_item("msg_1", [ev.refusal_part("No.")])
    parts = run([ev.created(), ev.item_done(item), ev.completed(output=[item])])
    assert parts == [
        TextStart("msg_1", refusal=True),
        TextDelta("msg_1", "No."),
        TextEnd("msg_1", "No."),
        finish(),
    ]


@pytest.mark.parametrize("phase", ["commentary", "final_answer"])
def test_message_phase_is_carried(phase: str) -> None:
    parts = run(
        [
            ev.created(),
            *ev.message_events("msg_1", ["Hi"], phase=phase),
            ev.completed(output=[ev.message_item("msg_1", "Hi", phase=phase)]),
        ]
    )
    assert parts[0] == TextStart("msg_1", phase=phase)
    assert collect(parts).content == (TextPart("Hi", id="msg_1", phase=phase),)


def test_several_content_parts_in_one_message() -> None:
    final = ev.message_item("msg_1", [ev.output_text("One. "), ev.output_text("Two.")])
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.message_item("msg_1", [], status="in_progress")),
            ev.content_part_added("msg_1", content_index=0),
            ev.text_delta("msg_1", "One. ", content_index=0),
            ev.content_part_done("msg_1", ev.output_text("One. "), content_index=0),
            ev.content_part_added("msg_1", content_index=1),
            ev.text_delta("msg_1", "Two.", content_index=1),
            ev.content_part_done("msg_1", ev.output_text("Two."), content_index=1),
            ev.item_done(final),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "One. "),
        TextEnd("msg_1", "One. "),
        TextStart("msg_1"),
        TextDelta("msg_1", "Two."),
        TextEnd("msg_1", "Two."),
        finish(),
    ]
    response = collect(parts)
    assert response.content == (TextPart("One. ", id="msg_1"), TextPart("Two.", id="msg_1"))
    assert response.text == "One. Two."


def test_a_delta_for_the_next_content_index_closes_the_open_part() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "A", content_index=0),
            ev.text_delta("msg_1", "B", content_index=1),
            ev.completed(),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "A"),
        TextEnd("msg_1", "A"),
        TextStart("msg_1"),
        TextDelta("msg_1", "B"),
        TextEnd("msg_1", "B"),
        finish(),
    ]


def test_an_item_done_that_omits_the_open_text_part_still_ends_it() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "Hi"),
            ev.item_done(ev.message_item("msg_1", [])),
            ev.completed(),
        ]
    )
    assert parts == [TextStart("msg_1"), TextDelta("msg_1", "Hi"), TextEnd("msg_1", "Hi"), finish()]


def test_content_part_done_of_the_second_part_keeps_its_final_text() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "One", content_index=0),
            ev.content_part_done("msg_1", ev.output_text("One."), content_index=0),
            ev.text_delta("msg_1", "Tw", content_index=1),
            ev.content_part_done("msg_1", ev.output_text("Two."), content_index=1),
            ev.completed(),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "One"),
        TextEnd("msg_1", "One."),
        TextStart("msg_1"),
        TextDelta("msg_1", "Tw"),
        TextEnd("msg_1", "Two."),
        finish(),
    ]
    assert collect(parts).text == "One.Two."


def test_a_content_part_done_for_a_part_that_is_not_open_is_ignored() -> None:
    # Part 1 is open; a late done for part 0 must not close part 1 with part 0's text.
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "B", content_index=1),
            ev.content_part_done("msg_1", ev.output_text("A"), content_index=0),
            ev.text_delta("msg_1", "!", content_index=1),
            ev.completed(),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "B"),
        TextDelta("msg_1", "!"),
        TextEnd("msg_1", "B!"),
        finish(),
    ]


def test_an_item_done_listing_parts_before_the_open_one_closes_it_first() -> None:
    # Part 1 streamed first; the final item also has part 0, never streamed: part 1 is
    # ended with what arrived, then part 0 is opened and ended with its final text.
    final = ev.message_item("msg_1", [ev.output_text("A"), ev.output_text("B")])
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "B", content_index=1),
            ev.item_done(final),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "B"),
        TextEnd("msg_1", "B"),
        TextStart("msg_1"),
        TextDelta("msg_1", "A"),
        TextEnd("msg_1", "A"),
        finish(),
    ]


def test_several_parts_only_in_the_final_item() -> None:
    final = ev.message_item(
        "msg_1",
        [
            ev.output_text("A"),
            {"type": "output_audio", "data": "..."},
            ev.output_text(""),
            ev.refusal_part("R"),
        ],
    )
    parts = run([ev.created(), ev.item_done(final), ev.completed(output=[final])])
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "A"),
        TextEnd("msg_1", "A"),
        TextStart("msg_1"),
        TextEnd("msg_1", ""),
        TextStart("msg_1", refusal=True),
        TextDelta("msg_1", "R"),
        TextEnd("msg_1", "R"),
        finish(),
    ]
    assert collect(parts).text == "A"
    assert collect(parts).refusal == "R"


def test_content_part_events_of_other_kinds_and_repeats_are_ignored() -> None:
    protocol, parts = feed(
        [
            ev.created(),
            ev.content_part_added("rs_1", {"type": "reasoning_text", "text": ""}),
            ev.content_part_added("msg_1", output_index=1),
            ev.content_part_added("msg_1", output_index=1),  # already open
            ev.text_delta("msg_1", "Hi", output_index=1),
            ev.content_part_done("msg_1", ev.output_text("Hi"), output_index=1),
            ev.content_part_added("msg_1", output_index=1),  # already streamed
            ev.content_part_done("msg_1", ev.output_text("Hi"), output_index=1),  # not open
            ev.text_done("msg_1", "Hi", output_index=1),  # not open
        ]
    )
    assert parts == [TextStart("msg_1"), TextDelta("msg_1", "Hi"), TextEnd("msg_1", "Hi")]
    assert not protocol.done


@pytest.mark.parametrize("text", [None, 5, ["Hi!"]])
def test_content_part_done_without_text_keeps_the_joined_deltas(text: object) -> None:
    parts = run(
        [
            ev.created(),
            ev.content_part_added("msg_1"),
            ev.text_delta("msg_1", "H"),
            ev.text_delta("msg_1", "i"),
            ev.content_part_done("msg_1", {"type": "output_text", "text": text}),
            ev.completed(),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "H"),
        TextDelta("msg_1", "i"),
        TextEnd("msg_1", "Hi"),
        finish(),
    ]


@pytest.mark.parametrize(
    ("part", "refusal"), [(ev.output_text("Hi"), False), (ev.refusal_part("Hi"), True)]
)
def test_a_part_given_only_by_content_part_events_keeps_its_text(
    part: dict[str, Any], refusal: bool
) -> None:
    # No deltas, no output_item.done, and the terminal output omits the message: the
    # content_part events alone carry the part.
    empty = {**part, "text" if not refusal else "refusal": ""}
    parts = run(
        [
            ev.created(),
            ev.content_part_added("msg_1", empty, content_index=1),
            ev.content_part_done("msg_1", part, content_index=1),
            ev.completed(),
        ]
    )
    assert parts == [
        TextStart("msg_1", refusal=refusal),
        TextDelta("msg_1", "Hi"),
        TextEnd("msg_1", "Hi"),
        finish(),
    ]


def test_a_refusal_content_part_done_closes_with_the_refusal() -> None:
    parts = run(
        [
            ev.created(),
            ev.content_part_added("msg_1", ev.refusal_part()),
            ev.refusal_delta("msg_1", "N"),
            ev.content_part_done("msg_1", ev.refusal_part("No")),
            ev.completed(),
        ]
    )
    assert parts == [
        TextStart("msg_1", refusal=True),
        TextDelta("msg_1", "N"),
        TextEnd("msg_1", "No"),
        finish(),
    ]


def test_a_text_delta_without_its_delta_field_adds_nothing() -> None:
    parts = run([ev.created(), ev.event("response.output_text.delta", item_id="m"), ev.completed()])
    assert parts == [TextStart("m"), TextDelta("m", ""), TextEnd("m", ""), finish()]


# --------------------------------------------------------------------------- sources


URL = ev.url_citation("https://example.test/a", "Example", 3, 9)
FILE = ev.file_citation("file_1", "notes.pdf", 2)
URL_SOURCE = SourcePart(
    "msg_1",
    source_type="url_citation",
    url="https://example.test/a",
    title="Example",
    start_index=3,
    end_index=9,
)
FILE_SOURCE = SourcePart(
    "msg_1", source_type="file_citation", file_id="file_1", filename="notes.pdf"
)


def test_streamed_annotations_become_sources_once() -> None:
    final = ev.message_item("msg_1", [ev.output_text("Hi", [URL, FILE])])
    parts = run(
        [
            ev.created(),
            *ev.message_events("msg_1", ["Hi"], annotations=[URL, FILE]),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "Hi"),
        URL_SOURCE,
        FILE_SOURCE,
        TextEnd("msg_1", "Hi"),
        finish(),
    ]
    assert collect(parts).content == (TextPart("Hi", id="msg_1"), URL_SOURCE, FILE_SOURCE)


def test_annotations_only_in_the_final_item_become_sources() -> None:
    final = ev.message_item("msg_1", [ev.output_text("Hi", [URL, FILE])])
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "Hi"),
            ev.item_done(final),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "Hi"),
        TextEnd("msg_1", "Hi"),
        URL_SOURCE,
        FILE_SOURCE,
        finish(),
    ]


def test_an_annotation_event_without_annotation_adds_no_source() -> None:
    final = ev.message_item("msg_1", [ev.output_text("Hi", [URL])])
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "Hi"),
            ev.annotation_added("msg_1", None),
            ev.item_done(final),
            ev.completed(),
        ]
    )
    assert not any(isinstance(p, SourcePart) for p in parts)


def test_odd_annotation_fields_are_dropped_not_fatal() -> None:
    annotation = {"url": 5, "title": "T", "start_index": "3", "end_index": 4}
    parts = run([ev.created(), ev.annotation_added("msg_1", annotation), ev.completed()])
    assert parts == [
        SourcePart("msg_1", source_type="unknown", title="T", end_index=4),
        finish(),
    ]


# --------------------------------------------------------------------------- reasoning


def test_reasoning_summaries() -> None:
    final = ev.reasoning_item("rs_1", ["ab", "c"], encrypted_content="enc")
    parts = run(
        [
            ev.created(),
            *ev.reasoning_events("rs_1", [["a", "b"], ["c"]], encrypted_content="enc"),
            ev.completed(output=[final], usage=ev.usage(1, 9, reasoning_tokens=8)),
        ]
    )
    usage = Usage(input_tokens=1, output_tokens=9, total_tokens=10, reasoning_tokens=8)
    assert parts == [
        ReasoningStart("rs_1"),
        ReasoningDelta("rs_1", "a", "summary", 0),
        ReasoningDelta("rs_1", "b", "summary", 0),
        ReasoningDelta("rs_1", "c", "summary", 1),
        ReasoningEnd("rs_1", ("ab", "c"), (), "enc"),
        finish(usage=usage),
    ]
    response = collect(parts)
    assert response.reasoning == [ReasoningPart("rs_1", ("ab", "c"), (), "enc")]
    assert response.reasoning[0].text == "ab\n\nc"
    assert response.text == ""


def test_raw_reasoning_text() -> None:
    final = ev.reasoning_item("rs_1", [], content=["xy", "z"])
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.reasoning_item("rs_1")),
            ev.reasoning_text_delta("rs_1", "x"),
            ev.reasoning_text_delta("rs_1", "y"),
            ev.reasoning_text_done("rs_1", "xy"),
            ev.reasoning_text_delta("rs_1", "z", content_index=1),
            ev.item_done(final),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        ReasoningStart("rs_1"),
        ReasoningDelta("rs_1", "x", "text", 0),
        ReasoningDelta("rs_1", "y", "text", 0),
        ReasoningDelta("rs_1", "z", "text", 1),
        ReasoningEnd("rs_1", (), ("xy", "z"), None),
        finish(),
    ]
    part = collect(parts).reasoning[0]
    assert part == ReasoningPart("rs_1", (), ("xy", "z"))
    assert part.text == "xy\n\nz"


def test_reasoning_only_in_the_final_item_is_synthesised_with_id_and_state() -> None:
    final = ev.reasoning_item("rs_1", ["s", "s2"], content=["t", "t2"], encrypted_content="gAAA")
    parts = run_partial(
        [ev.created(), ev.item_added(ev.reasoning_item("rs_1")), ev.item_done(final)]
    )
    assert parts == [
        ReasoningStart("rs_1"),
        ReasoningDelta("rs_1", "s", "summary", 0),
        ReasoningDelta("rs_1", "s2", "summary", 1),
        ReasoningDelta("rs_1", "t", "text", 0),
        ReasoningDelta("rs_1", "t2", "text", 1),
        ReasoningEnd("rs_1", ("s", "s2"), ("t", "t2"), "gAAA"),
    ]


def test_empty_reasoning_item() -> None:
    item = ev.reasoning_item("rs_1")
    parts = run_partial([ev.created(), ev.item_added(item), ev.item_done(item)])
    assert parts == [ReasoningStart("rs_1"), ReasoningEnd("rs_1")]
    assert collect(parts).content == (ReasoningPart("rs_1"),)


def test_reasoning_deltas_without_added_event() -> None:
    parts = run_partial([ev.created(), ev.summary_delta("rs_1", "a"), ev.summary_done("rs_1", "a")])
    assert parts == [ReasoningStart("rs_1"), ReasoningDelta("rs_1", "a", "summary", 0)]


def test_reasoning_never_finished_is_closed_at_the_terminal_event() -> None:
    parts = run([ev.created(), ev.summary_delta("rs_1", "a"), ev.completed()])
    assert parts == [
        ReasoningStart("rs_1"),
        ReasoningDelta("rs_1", "a", "summary", 0),
        ReasoningEnd("rs_1"),
        finish(),
    ]
    assert collect(parts).reasoning == [ReasoningPart("rs_1", ("a",))]


def test_the_final_reasoning_item_wins_over_the_deltas() -> None:
    parts = run(
        [
            ev.created(),
            ev.summary_delta("rs_1", "draft"),
            ev.item_done(ev.reasoning_item("rs_1", ["final"], encrypted_content="e")),
            ev.completed(),
        ]
    )
    assert parts[-2] == ReasoningEnd("rs_1", ("final",), (), "e")
    assert collect(parts).reasoning == [ReasoningPart("rs_1", ("final",), (), "e")]


# --------------------------------------------------------------------------- tools


def test_function_call_with_streamed_arguments() -> None:
    call = ev.function_call_item("fc_1", "call_1", "add", '{"a":1}')
    parts = run(
        [
            ev.created(),
            *ev.function_call_events("fc_1", "call_1", "add", ['{"a"', ":1}"]),
            ev.completed(output=[call]),
        ]
    )
    assert parts == [
        ToolInputStart("fc_1", "call_1", "add", "function"),
        ToolInputDelta("fc_1", '{"a"'),
        ToolInputDelta("fc_1", ":1}"),
        ToolInputEnd("fc_1"),
        ToolCall("call_1", "add", '{"a":1}', id="fc_1"),
        finish(FinishReason.TOOL_CALLS),
    ]
    response = collect(parts)
    assert response.tool_calls == [ToolCall("call_1", "add", '{"a":1}', id="fc_1")]
    assert response.finish_reason is FinishReason.TOOL_CALLS


def test_call_id_comes_from_the_item_not_the_deltas() -> None:
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.function_call_item("fc_1", "call_X", "f", status="in_progress")),
            ev.event(
                "response.function_call_arguments.delta",
                item_id="fc_1",
                output_index=0,
                delta="{}",
                call_id="call_WRONG",
            ),
            ev.item_done(ev.function_call_item("fc_1", "call_X", "f", "{}")),
            ev.completed(),
        ]
    )
    assert collect(parts).tool_calls == [ToolCall("call_X", "f", "{}", id="fc_1")]


def test_arguments_missing_from_the_final_item_are_the_joined_deltas() -> None:
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.function_call_item("fc_1", "call_1", "f", status="in_progress")),
            ev.args_delta("fc_1", '{"x"'),
            ev.args_delta("fc_1", ":2}"),
            ev.item_done(ev.function_call_item("fc_1", "call_1", "f", "")),
            ev.completed(),
        ]
    )
    assert collect(parts).tool_calls == [ToolCall("call_1", "f", '{"x":2}', id="fc_1")]


def test_custom_tool_call() -> None:
    item = ev.custom_tool_call_item("ctc_1", "call_9", "grep", "foo|bar")
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.custom_tool_call_item("ctc_1", "call_9", "grep")),
            ev.custom_input_delta("ctc_1", "foo"),
            ev.custom_input_delta("ctc_1", "|bar"),
            ev.custom_input_done("ctc_1", "foo|bar"),
            ev.item_done(item),
            ev.completed(output=[item]),
        ]
    )
    assert parts == [
        ToolInputStart("ctc_1", "call_9", "grep", "custom"),
        ToolInputDelta("ctc_1", "foo"),
        ToolInputDelta("ctc_1", "|bar"),
        ToolInputEnd("ctc_1"),
        ToolCall("call_9", "grep", "foo|bar", id="ctc_1", kind="custom"),
        finish(FinishReason.TOOL_CALLS),
    ]


def test_parallel_calls_keep_their_order_and_ids() -> None:
    parts = run(
        [
            ev.created(),
            *ev.function_call_events("fc_1", "call_1", "a", ["{}"], output_index=0),
            *ev.function_call_events("fc_2", "call_2", "b", ['{"', 'k":1}'], output_index=1),
            ev.completed(),
        ]
    )
    assert collect(parts).tool_calls == [
        ToolCall("call_1", "a", "{}", id="fc_1"),
        ToolCall("call_2", "b", '{"k":1}', id="fc_2"),
    ]
    assert tool_deltas(parts, "fc_2") == '{"k":1}'


def test_repeated_added_and_done_events_are_idempotent() -> None:
    added = ev.item_added(ev.function_call_item("fc_1", "call_1", "f", status="in_progress"))
    done = ev.item_done(ev.function_call_item("fc_1", "call_1", "f", "{}"))
    parts = run(
        [ev.created(), added, added, ev.args_delta("fc_1", "{}"), done, done, ev.completed()]
    )
    assert parts == [
        ToolInputStart("fc_1", "call_1", "f", "function"),
        ToolInputDelta("fc_1", "{}"),
        ToolInputEnd("fc_1"),
        ToolCall("call_1", "f", "{}", id="fc_1"),
        finish(FinishReason.TOOL_CALLS),
    ]


def test_a_call_started_but_never_finished_produces_no_tool_call() -> None:
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.function_call_item("fc_1", "call_1", "f", status="in_progress")),
            ev.args_delta("fc_1", "{"),
            ev.completed(),
        ]
    )
    assert parts == [
        ToolInputStart("fc_1", "call_1", "f", "function"),
        ToolInputDelta("fc_1", "{"),
        finish(),
    ]


def test_hosted_tool_items_become_provider_items() -> None:
    item = {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "weather"},
    }
    parts = run(
        [
            ev.created(),
            ev.item_added({"type": "web_search_call", "id": "ws_1", "status": "in_progress"}),
            ev.event("response.web_search_call.in_progress", item_id="ws_1", output_index=0),
            ev.event("response.web_search_call.searching", item_id="ws_1", output_index=0),
            ev.event("response.web_search_call.completed", item_id="ws_1", output_index=0),
            ev.item_done(item),
            *ev.message_events("msg_1", ["Sunny."], output_index=1),
            ev.completed(output=[item, ev.message_item("msg_1", "Sunny.")]),
        ]
    )
    assert parts[0] == ProviderItemPart("ws_1", "web_search_call", item)
    assert parts[-1] == finish()  # a hosted call is not a client tool call
    response = collect(parts)
    assert response.content == (
        ProviderItemPart("ws_1", "web_search_call", item),
        TextPart("Sunny.", id="msg_1"),
    )
    assert response.tool_calls == []


def test_unknown_item_only_in_the_final_output() -> None:
    item = {"type": "local_shell_call", "id": "lsh_1", "action": {"command": ["ls"]}}
    parts = run([ev.created(), ev.completed(output=[item])])
    assert parts == [ProviderItemPart("lsh_1", "local_shell_call", item), finish()]


def test_provider_item_without_id_is_kept_verbatim() -> None:
    item = {"type": "image_generation_call", "status": "completed", "result": "b64"}
    parts = run([ev.created(), ev.item_done(item), ev.completed()])
    assert parts[0] == ProviderItemPart(None, "image_generation_call", item)


# --------------------------------------------------------------------------- untidy streams


def test_items_never_streamed_are_synthesised_from_the_final_output() -> None:
    output = [
        ev.reasoning_item("rs_1", ["think"], encrypted_content="enc"),
        ev.message_item("msg_1", "Hello", phase="final_answer"),
        ev.function_call_item("fc_1", "call_1", "f", '{"a":1}'),
        ev.custom_tool_call_item("ctc_1", "call_2", "g", "raw"),
    ]
    parts = run([ev.created(), ev.completed(output=output)])
    assert parts == [
        ReasoningStart("rs_1"),
        ReasoningDelta("rs_1", "think", "summary", 0),
        ReasoningEnd("rs_1", ("think",), (), "enc"),
        TextStart("msg_1", phase=None),
        TextDelta("msg_1", "Hello"),
        TextEnd("msg_1", "Hello"),
        ToolInputStart("fc_1", "call_1", "f", "function"),
        ToolInputDelta("fc_1", '{"a":1}'),
        ToolInputEnd("fc_1"),
        ToolCall("call_1", "f", '{"a":1}', id="fc_1"),
        ToolInputStart("ctc_1", "call_2", "g", "custom"),
        ToolInputDelta("ctc_1", "raw"),
        ToolInputEnd("ctc_1"),
        ToolCall("call_2", "g", "raw", id="ctc_1", kind="custom"),
        finish(FinishReason.TOOL_CALLS),
    ]
    assert text_deltas(parts) == collect(parts).text == "Hello"


def test_items_done_without_any_deltas() -> None:
    message = ev.message_item("msg_1", "Hi")
    call = ev.function_call_item("fc_1", "call_1", "f", "{}")
    parts = run([ev.created(), ev.item_done(message, 0), ev.item_done(call, 1), ev.completed()])
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "Hi"),
        TextEnd("msg_1", "Hi"),
        ToolInputStart("fc_1", "call_1", "f", "function"),
        ToolInputDelta("fc_1", "{}"),
        ToolInputEnd("fc_1"),
        ToolCall("call_1", "f", "{}", id="fc_1"),
        finish(FinishReason.TOOL_CALLS),
    ]


def test_a_call_done_without_deltas_or_arguments() -> None:
    call = ev.function_call_item("fc_1", "call_1", "ping", "")
    parts = run([ev.created(), ev.item_done(call), ev.completed()])
    assert parts == [
        ToolInputStart("fc_1", "call_1", "ping", "function"),
        ToolInputEnd("fc_1"),
        ToolCall("call_1", "ping", "", id="fc_1"),
        finish(FinishReason.TOOL_CALLS),
    ]


def test_a_part_opened_but_never_streamed_still_yields_its_text_as_a_delta() -> None:
    final = ev.message_item("msg_1", "Hi")
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.message_item("msg_1", [], status="in_progress")),
            ev.content_part_added("msg_1"),
            ev.content_part_done("msg_1", ev.output_text("Hi")),
            ev.item_done(final),
            ev.completed(output=[final]),
        ]
    )
    assert text_deltas(parts) == collect(parts).text == "Hi"


def test_text_deltas_without_added_events() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "Hi"),
            ev.text_delta("msg_1", "!"),
            ev.completed(output=[ev.message_item("msg_1", "Hi!")]),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "Hi"),
        TextDelta("msg_1", "!"),
        TextEnd("msg_1", "Hi!"),
        finish(),
    ]


def test_text_never_finished_and_absent_from_the_output_keeps_its_deltas() -> None:
    parts = run([ev.created(), ev.text_delta("msg_1", "Hi"), ev.completed()])
    assert parts == [TextStart("msg_1"), TextDelta("msg_1", "Hi"), TextEnd("msg_1", "Hi"), finish()]


def test_tool_deltas_without_added_event_are_not_repeated() -> None:
    call = ev.function_call_item("fc_1", "call_1", "f", '{"a":1}')
    parts = run(
        [
            ev.created(),
            ev.args_delta("fc_1", '{"a"'),
            ev.args_delta("fc_1", ":1}"),
            ev.item_done(call),
            ev.completed(output=[call]),
        ]
    )
    assert collect(parts).tool_calls == [ToolCall("call_1", "f", '{"a":1}', id="fc_1")]
    assert tool_deltas(parts, "fc_1") == '{"a":1}'


def test_rotating_item_ids_with_a_stable_output_index() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_a", "Hel"),
            ev.text_delta("msg_b", "lo"),
            ev.item_done(ev.message_item("msg_c", "Hello")),
            ev.completed(output=[ev.message_item("msg_d", "Hello")]),
        ]
    )
    assert parts == [
        TextStart("msg_a"),
        TextDelta("msg_a", "Hel"),
        TextDelta("msg_a", "lo"),
        TextEnd("msg_a", "Hello"),
        finish(),
    ]


def test_text_deltas_without_item_id_merge_with_the_item_done_later() -> None:
    # The id arrives only with output_item.done: the part already open at that output
    # index is the same item, so its text is there once, under the id its parts carry.
    final = ev.message_item("msg_1", "Hi")
    parts = run(
        [
            ev.created(),
            ev.text_delta(None, "H"),
            ev.text_delta(None, "i"),
            ev.item_done(final),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        TextStart(None),
        TextDelta(None, "H"),
        TextDelta(None, "i"),
        TextEnd(None, "Hi"),
        finish(),
    ]
    response = collect(parts)
    assert response.text == "Hi"
    assert response.content == (TextPart("Hi"),)


def test_a_text_item_whose_id_appears_mid_stream_keeps_one_id() -> None:
    final = ev.message_item("msg_1", "Hi")
    parts = run(
        [
            ev.created(),
            ev.text_delta(None, "H"),
            ev.text_delta("msg_1", "i"),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        TextStart(None),
        TextDelta(None, "H"),
        TextDelta(None, "i"),
        TextEnd(None, "Hi"),
        finish(),
    ]
    assert collect(parts).content == (TextPart("Hi"),)


def test_reasoning_deltas_without_item_id_merge_with_the_item_done_later() -> None:
    final = ev.reasoning_item("rs_1", ["Think"], encrypted_content="enc")
    parts = run(
        [
            ev.created(),
            ev.summary_delta(None, "Thi"),
            ev.summary_delta(None, "nk"),
            ev.item_done(final),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        ReasoningStart(None),
        ReasoningDelta(None, "Thi"),
        ReasoningDelta(None, "nk"),
        ReasoningEnd(None, ("Think",), (), "enc"),
        finish(),
    ]
    assert collect(parts).content == (ReasoningPart(None, ("Think",), (), "enc"),)


def test_tool_input_deltas_without_item_id_merge_with_the_call_done_later() -> None:
    call = ev.function_call_item("fc_1", "call_1", "f", '{"a":1}')
    parts = run(
        [
            ev.created(),
            ev.args_delta(None, '{"a"'),
            ev.args_delta(None, ":1}"),
            ev.item_done(call),
            ev.completed(output=[call]),
        ]
    )
    assert parts == [
        ToolInputDelta(None, '{"a"'),
        ToolInputDelta(None, ":1}"),
        ToolInputStart(None, "call_1", "f"),
        ToolInputEnd(None),
        ToolCall("call_1", "f", '{"a":1}'),
        finish(FinishReason.TOOL_CALLS),
    ]
    assert collect(parts).tool_calls == [ToolCall("call_1", "f", '{"a":1}')]


@pytest.mark.parametrize("kind", ["function", "custom"])
def test_tool_input_without_item_id_matches_the_terminal_output_by_position(
    kind: Literal["function", "custom"],
) -> None:
    # No output_item.done: the call in response.completed is the streamed one (same
    # position, same kind), so its input is not streamed a second time.
    if kind == "function":
        call = ev.function_call_item("fc_1", "call_1", "f", "{}")
        delta = ev.args_delta(None, "{}")
    else:
        call = ev.custom_tool_call_item("ct_1", "call_1", "f", "{}")
        delta = ev.custom_input_delta(None, "{}")
    parts = run([ev.created(), delta, ev.completed(output=[call])])
    assert parts == [
        ToolInputDelta(None, "{}"),
        ToolInputStart(None, "call_1", "f", kind),
        ToolInputEnd(None),
        ToolCall("call_1", "f", "{}", kind=kind),
        finish(FinishReason.TOOL_CALLS),
    ]


def test_an_id_learned_before_any_part_went_out_is_the_items_id() -> None:
    # output_item.added for a message emits nothing: the id of the first delta is kept.
    final = ev.message_item("msg_1", "Hi")
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.message_item(None, [], status="in_progress")),
            ev.text_delta("msg_1", "Hi"),
            ev.item_done(final),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [TextStart("msg_1"), TextDelta("msg_1", "Hi"), TextEnd("msg_1", "Hi"), finish()]


def test_final_output_items_match_streamed_items_by_id() -> None:
    # The final output lists the items in another order: ids, not positions, match.
    message = ev.message_item("msg_1", "Hi")
    call = ev.function_call_item("fc_1", "call_1", "f", "{}")
    parts = run(
        [
            ev.created(),
            *ev.message_events("msg_1", ["Hi"], output_index=0),
            *ev.function_call_events("fc_1", "call_1", "f", ["{}"], output_index=1),
            ev.completed(output=[call, message]),
        ]
    )
    response = collect(parts)
    assert response.content == (
        TextPart("Hi", id="msg_1"),
        ToolCall("call_1", "f", "{}", id="fc_1"),
    )


def test_final_output_items_without_ids_match_by_position() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta(None, "Hel"),
            ev.completed(output=[ev.message_item(None, "Hello")]),
        ]
    )
    assert parts == [TextStart(None), TextDelta(None, "Hel"), TextEnd(None, "Hello"), finish()]


def test_an_item_first_seen_in_a_content_part_event_matches_the_output_by_position() -> None:
    # Rotating ids, no output_item.done: the message in response.completed is the one
    # at that position, since content_part events name a message.
    parts = run(
        [
            ev.created(),
            ev.content_part_added("msg_a"),
            ev.text_delta("msg_b", "Hi"),
            ev.completed(output=[ev.message_item("msg_c", "Hi!")]),
        ]
    )
    assert parts == [
        TextStart("msg_a"),
        TextDelta("msg_a", "Hi"),
        TextEnd("msg_a", "Hi!"),
        finish(),
    ]


def test_an_item_first_seen_in_an_annotation_event_matches_the_output_by_position() -> None:
    final = ev.message_item("msg_c", [ev.output_text("Hi", [URL])])
    parts = run(
        [
            ev.created(),
            ev.annotation_added("msg_1", URL),
            ev.text_delta("msg_b", "Hi"),
            ev.completed(output=[final]),
        ]
    )
    assert parts == [
        URL_SOURCE,
        TextStart("msg_1"),
        TextDelta("msg_1", "Hi"),
        TextEnd("msg_1", "Hi"),
        finish(),
    ]


def test_an_item_first_seen_in_output_item_added_matches_the_output_by_position() -> None:
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.function_call_item("fc_a", "call_1", "f", "")),
            ev.args_delta("fc_b", "{}"),
            ev.completed(output=[ev.function_call_item("fc_c", "call_1", "f", "{}")]),
        ]
    )
    assert parts == [
        ToolInputStart("fc_a", "call_1", "f"),
        ToolInputDelta("fc_a", "{}"),
        ToolInputEnd("fc_a"),
        ToolCall("call_1", "f", "{}", id="fc_a"),
        finish(FinishReason.TOOL_CALLS),
    ]


def test_an_id_first_given_by_the_terminal_output_is_the_items_id() -> None:
    # output_item.added without an id emits nothing: the final output's id is kept.
    parts = run(
        [
            ev.created(),
            ev.item_added(ev.message_item(None, [], status="in_progress")),
            ev.completed(output=[ev.message_item("msg_1", "Hi")]),
        ]
    )
    assert parts == [TextStart("msg_1"), TextDelta("msg_1", "Hi"), TextEnd("msg_1", "Hi"), finish()]


def test_an_id_after_an_ended_part_without_one_is_not_adopted() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta(None, "A"),
            ev.content_part_done(None, ev.output_text("A")),
            ev.text_delta("msg_1", "B", content_index=1),
            ev.completed(),
        ]
    )
    assert parts == [
        TextStart(None),
        TextDelta(None, "A"),
        TextEnd(None, "A"),
        TextStart(None),
        TextDelta(None, "B"),
        TextEnd(None, "B"),
        finish(),
    ]


def test_terminal_output_items_and_unfinished_streamed_items_are_all_closed() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "Hi"),
            ev.completed(output=[ev.function_call_item("fc_1", "call_1", "f", "{}")]),
        ]
    )
    assert parts == [
        TextStart("msg_1"),
        TextDelta("msg_1", "Hi"),
        ToolInputStart("fc_1", "call_1", "f"),
        ToolInputDelta("fc_1", "{}"),
        ToolInputEnd("fc_1"),
        ToolCall("call_1", "f", "{}", id="fc_1"),
        TextEnd("msg_1", "Hi"),
        finish(FinishReason.TOOL_CALLS),
    ]


def test_final_output_that_omits_a_streamed_item_keeps_the_other_items() -> None:
    parts = run(
        [
            ev.created(),
            *ev.message_events("msg_1", ["Hi"], output_index=0),
            ev.completed(output=[ev.function_call_item("fc_1", "call_1", "f", "{}")]),
        ]
    )
    response = collect(parts)
    assert response.tool_calls == [ToolCall("call_1", "f", "{}", id="fc_1")]
    assert response.finish_reason is FinishReason.TOOL_CALLS


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, Usage()),
        ({}, Usage()),
        (ev.usage(10, 5), Usage(10, 5, 15)),
        (ev.usage(10, 5, total_tokens=99), Usage(10, 5, 99)),
        (
            ev.usage(100, 20, cached_tokens=64, cache_write_tokens=16, reasoning_tokens=12),
            Usage(100, 20, 120, reasoning_tokens=12, cache_read_tokens=64, cache_write_tokens=16),
        ),
        (ev.usage(100, 20, cached_tokens=64), Usage(100, 20, 120, cache_read_tokens=64)),
        (
            {
                "input_tokens": None,
                "output_tokens": 3,
                "input_tokens_details": {"cached_tokens": None, "cache_write_tokens": None},
                "output_tokens_details": {"reasoning_tokens": None},
            },
            Usage(0, 3, 3),
        ),
    ],
)
def test_usage(raw: dict[str, Any] | None, expected: Usage) -> None:
    parts = run([ev.created(), ev.completed(usage=raw)])
    assert parts == [finish(usage=expected)]
    assert collect(parts).usage == expected
    wire_usage = None if raw is None else wire.ResponseUsage.model_validate(raw)
    assert usage_from_wire(wire_usage) == expected


# --------------------------------------------------------------------------- finish reasons


@pytest.mark.parametrize(
    ("terminal", "expected"),
    [
        (ev.completed(), FinishReason.STOP),
        (ev.event("response.completed", response={"id": "resp_1"}), FinishReason.STOP),
        (ev.incomplete("max_output_tokens"), FinishReason.LENGTH),
        (ev.incomplete("content_filter"), FinishReason.CONTENT_FILTER),
        (ev.incomplete("steered"), FinishReason.OTHER),
        (ev.incomplete(None), FinishReason.OTHER),
        (ev.event("response.incomplete", response={"id": "resp_1"}), FinishReason.OTHER),
        (ev.response_done(status="completed"), FinishReason.STOP),
        (ev.response_done(status="incomplete"), FinishReason.OTHER),
        (ev.event("response.done", response={"id": "resp_1"}), FinishReason.UNKNOWN),
    ],
)
def test_finish_reasons(terminal: str, expected: FinishReason) -> None:
    protocol, parts = feed([ev.created(), ev.text_delta("msg_1", "x"), terminal])
    assert protocol.done
    assert protocol.state is State.DONE
    assert isinstance(parts[-1], Finish)
    assert parts[-1].finish_reason is expected
    assert parts[-1].metadata.response_id == "resp_1"
    assert collect(parts).finish_reason is expected


def test_completed_with_a_tool_call_is_tool_calls() -> None:
    parts = run(
        [
            ev.created(),
            *ev.message_events("msg_1", ["Let me check."]),
            *ev.function_call_events("fc_1", "call_1", "f", ["{}"], output_index=1),
            ev.completed(),
        ]
    )
    assert collect(parts).finish_reason is FinishReason.TOOL_CALLS


def test_incomplete_keeps_the_text() -> None:
    parts = run(
        [
            ev.created(),
            ev.text_delta("msg_1", "Once upon"),
            ev.incomplete("max_output_tokens", output=[ev.message_item("msg_1", "Once upon")]),
        ]
    )
    response = collect(parts)
    assert (response.text, response.finish_reason) == ("Once upon", FinishReason.LENGTH)


def test_response_done_is_terminal_and_takes_the_response_id() -> None:
    protocol, parts = feed(
        [ev.created(id=None), ev.text_delta("msg_1", "Hi"), ev.response_done("resp_d")]
    )
    assert protocol.done
    assert protocol.response_id == "resp_d"
    assert collect(parts).id == "resp_d"
    assert protocol.receive(ev.text_delta("msg_1", "late")) == []


def test_response_id_and_model_are_kept_when_later_events_omit_them() -> None:
    protocol, parts = feed(
        [
            ev.created("resp_1", model="gpt-x"),
            ev.in_progress(None, model=None),
            ev.completed(None, model=None),
        ]
    )
    assert (protocol.response_id, protocol.model) == ("resp_1", "gpt-x")
    assert parts[-1] == Finish(
        FinishReason.STOP, Usage(), ResponseMetadata(response_id="resp_1", model="gpt-x")
    )


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("server_error", True),
        ("rate_limit_exceeded", True),
        ("server_is_overloaded", True),
        ("vector_store_timeout", True),
        ("invalid_prompt", False),
        (None, False),
    ],
)
def test_response_failed(code: str | None, retryable: bool) -> None:
    protocol, _ = feed([ev.created(), ev.text_delta("msg_1", "Hal")])
    with pytest.raises(ResponseFailed) as info:
        protocol.receive(ev.failed(code, "it broke"))
    error = info.value
    assert (error.code, error.message, error.retryable) == (code, "it broke", retryable)
    assert isinstance(error.body, dict)
    assert error.body["status"] == "failed"
    assert "output" not in error.body
    assert error.partial is not None
    assert error.partial.text == "Hal"
    assert error.partial.content == (TextPart("Hal", id="msg_1"),)
    assert error.partial.finish_reason is FinishReason.ERROR
    assert error.partial.id == "resp_1"
    assert protocol.done
    assert protocol.state is State.DONE
    assert protocol.receive(ev.completed()) == []
    assert protocol.finish() == []


def test_response_failed_without_an_error_object() -> None:
    protocol, _ = feed([ev.created()])
    with pytest.raises(ResponseFailed, match=r"^the response failed \(code: None\)$"):
        protocol.receive(ev.event("response.failed", response={"id": "resp_1"}))


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_a_cancelled_or_failed_status_is_a_failure(status: str) -> None:
    # response.done (some backends) says how the response ended only by its status.
    protocol, _ = feed([ev.created()])
    with pytest.raises(ResponseFailed, match=rf"\(code: {status}\)") as info:
        protocol.receive(ev.response_done(status=status, error={"code": status}))
    assert info.value.partial is not None
    assert info.value.partial.finish_reason is FinishReason.ERROR


def test_response_failed_partial_includes_the_final_output() -> None:
    protocol, _ = feed([ev.created(), ev.text_delta("msg_1", "Hal")])
    with pytest.raises(ResponseFailed) as info:
        protocol.receive(
            ev.failed(
                "server_error",
                "boom",
                output=[
                    ev.message_item("msg_1", "Half"),
                    ev.function_call_item("fc_1", "c", "f", "{}"),
                ],
            )
        )
    assert info.value.partial is not None
    assert info.value.partial.content == (
        TextPart("Half", id="msg_1"),
        ToolCall("c", "f", "{}", id="fc_1"),
    )


@pytest.mark.parametrize(
    "payload",
    [
        ev.error_flat("server_error", "Sorry, something went wrong.", "p"),
        ev.error_nested("server_error", "Sorry, something went wrong.", param="p"),
    ],
    ids=["flat", "nested"],
)
def test_error_event_without_status_is_response_failed(payload: str) -> None:
    protocol, _ = feed([ev.created(), ev.text_delta("msg_1", "Par")])
    with pytest.raises(ResponseFailed) as info:
        protocol.receive(payload)
    error = info.value
    assert type(error) is ResponseFailed
    assert (error.code, error.message, error.param) == (
        "server_error",
        "Sorry, something went wrong.",
        "p",
    )
    assert error.retryable is True
    assert error.body == json.loads(payload)
    assert error.partial is not None
    assert error.partial.text == "Par"
    assert error.partial.finish_reason is FinishReason.ERROR
    assert error.partial.usage == Usage()
    assert error.partial.id == "resp_1"
    assert protocol.state is State.DONE


def test_error_event_body_and_type() -> None:
    protocol = ResponsesProtocol()
    with pytest.raises(ResponseFailed) as info:
        protocol.receive(ev.error_nested("insufficient_quota", "quota", error_type="quota"))
    assert info.value.error_type == "quota"
    assert info.value.retryable is False
    assert info.value.body == {  # the frame as it arrived, nulls included
        "type": "error",
        "error": {"type": "quota", "code": "insufficient_quota", "message": "quota", "param": None},
    }
    assert info.value.partial is not None
    assert info.value.partial.content == ()
    assert info.value.partial.id is None  # no response.created came


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, BadRequestError, False),
        (429, RateLimitError, True),
        (500, InternalServerError, True),
        (503, InternalServerError, True),
        (418, APIStatusError, False),
    ],
)
def test_error_event_with_status_is_a_status_error(
    status: int, cls: type[APIStatusError], retryable: bool
) -> None:
    protocol, _ = feed([ev.created(), ev.text_delta("msg_1", "So far")])
    with pytest.raises(APIStatusError) as info:
        protocol.receive(
            ev.error_nested(
                "some_code", "went wrong", status=status, headers={"x-request-id": "req_1"}
            )
        )
    error = info.value
    assert type(error) is cls
    assert (error.status_code, error.code, error.message) == (status, "some_code", "went wrong")
    assert error.retryable is retryable
    assert error.headers == {"x-request-id": "req_1"}
    assert error.error_type == "invalid_request_error"
    assert error.partial is not None
    assert error.partial.text == "So far"
    assert error.partial.finish_reason is FinishReason.ERROR
    assert protocol.done


def test_error_event_status_code_alias_and_header_override() -> None:
    protocol = ResponsesProtocol()
    with pytest.raises(InternalServerError) as info:
        protocol.receive(
            ev.error_nested("x", "y", status_code=502, headers={"x-should-retry": "false"})
        )
    assert info.value.status_code == 502
    assert info.value.retryable is False


def test_previous_response_not_found_before_any_created() -> None:
    protocol = ResponsesProtocol()
    with pytest.raises(BadRequestError) as info:
        protocol.receive(
            ev.error_nested(
                "previous_response_not_found",
                "Previous response with id 'resp_abc' not found.",
                status=400,
                param="previous_response_id",
            )
        )
    assert info.value.code == "previous_response_not_found"
    assert info.value.param == "previous_response_id"
    assert protocol.done


# --------------------------------------------------------------------------- lifecycle


def test_state_transitions() -> None:
    protocol = ResponsesProtocol()
    observed = [(protocol.state, protocol.done)]
    for payload in [
        ev.keepalive(),
        ev.event("response.queued", response=ev.response_object(status="queued")),
        ev.created(),
        ev.text_delta("msg_1", "x"),
        ev.completed(),
    ]:
        protocol.receive(payload)
        observed.append((protocol.state, protocol.done))
    assert observed == [
        (State.WAITING, False),
        (State.WAITING, False),
        (State.STREAMING, False),
        (State.STREAMING, False),
        (State.STREAMING, False),
        (State.DONE, True),
    ]
    assert protocol.receive(ev.text_delta("msg_1", "late")) == []
    assert protocol.receive("not even json") == []
    assert protocol.finish() == []


def test_a_protocol_error_breaks_the_stream() -> None:
    protocol, _ = feed([ev.created(), ev.text_delta("msg_1", "Hi")])
    with pytest.raises(ProtocolError, match=r"malformed 'response\.output_text\.delta'") as info:
        protocol.receive('{"type": "response.output_text.delta", "delta": 5}')
    assert type(info.value) is ProtocolError
    assert info.value.partial is not None
    assert info.value.partial.text == "Hi"
    assert info.value.partial.id == "resp_1"
    assert (protocol.state, protocol.done) == (State.BROKEN, True)
    assert protocol.receive(ev.completed()) == []
    with pytest.raises(IncompleteStream):
        protocol.finish()


@pytest.mark.parametrize("payload", ["{oops", "[]", '{"type": null}'])
def test_bad_payloads_break_the_stream(payload: str) -> None:
    protocol = ResponsesProtocol()
    with pytest.raises(ProtocolError):
        protocol.receive(payload)
    assert protocol.state is State.BROKEN


def test_a_malformed_output_item_is_a_protocol_error() -> None:
    protocol, _ = feed([ev.created()])
    with pytest.raises(ProtocolError) as info:
        protocol.receive(ev.item_added({"type": "function_call", "name": "f"}))
    assert str(info.value) == "malformed output item: call_id: Field required"


def test_malformed_message_content_is_a_protocol_error() -> None:
    protocol, _ = feed([ev.created()])
    item = ev.message_item("msg_1", [{"type": "output_text", "text": 5}])
    with pytest.raises(ProtocolError) as info:
        protocol.receive(ev.item_done(item))
    assert str(info.value) == "malformed message content: text: Input should be a valid string"
    assert protocol.state is State.BROKEN


def test_a_malformed_output_item_breaks_the_stream() -> None:
    protocol, _ = feed([ev.created(), ev.text_delta("msg_1", "Hi")])
    with pytest.raises(ProtocolError) as info:
        protocol.receive(ev.item_done({"type": "function_call", "name": "f"}, 1))
    assert protocol.state is State.BROKEN
    assert info.value.partial is not None
    assert info.value.partial.text == "Hi"


def test_eof_before_a_terminal_event_is_incomplete() -> None:
    protocol, parts = feed([ev.created(), *ev.message_events("msg_1", ["Hel"])[:3]])
    assert not protocol.done
    with pytest.raises(IncompleteStream) as info:
        protocol.finish()
    error = info.value
    assert str(error) == (
        "the stream ended before a terminal event (response.completed, "
        "response.incomplete, response.failed or error)"
    )
    assert error.retryable is True
    assert error.partial is not None
    assert error.partial.text == "Hel"
    assert error.partial.finish_reason is FinishReason.UNKNOWN
    assert error.partial.id == "resp_1"
    assert protocol.state is State.BROKEN
    assert parts == [TextStart("msg_1"), TextDelta("msg_1", "Hel")]


def test_eof_before_anything_is_incomplete() -> None:
    with pytest.raises(IncompleteStream) as info:
        ResponsesProtocol().finish()
    assert info.value.partial == Response()


@pytest.mark.parametrize("sentinel", ["[DONE]", b"[DONE]"])
def test_done_sentinel_is_ignored_and_eof_decides(sentinel: str | bytes) -> None:
    protocol, parts = feed([ev.created(), ev.text_delta("msg_1", "Hi"), sentinel])
    assert parts == [TextStart("msg_1"), TextDelta("msg_1", "Hi")]
    assert not protocol.done
    with pytest.raises(IncompleteStream):
        protocol.finish()


def test_done_sentinel_after_a_terminal_event() -> None:
    protocol, _ = feed([ev.created(), ev.completed(), "[DONE]"])
    assert protocol.finish() == []


def test_bytes_payloads() -> None:
    payloads = [ev.created(), *ev.message_events("msg_1", ["Hé"]), ev.completed()]
    parts = run(p.encode() for p in payloads)
    assert collect(parts).text == "Hé"


@pytest.mark.parametrize(
    "payload",
    [
        ev.keepalive(),
        ev.event("codex.rate_limits", primary={"used_percent": 1}),
        ev.event("response.brand_new_thing", item_id="x", output_index=0),
        ev.event("response.steer.accepted", steer={"id": "steer_1"}),
        ev.event("response.web_search_call.searching", item_id="ws_1", output_index=0),
        ev.summary_part_added("rs_1"),
        ev.summary_part_done("rs_1", "x"),
        ev.summary_done("rs_1", "x"),
        ev.reasoning_text_done("rs_1", "x"),
        ev.args_done("fc_1", "{}", "f"),
        ev.custom_input_done("ctc_1", "x"),
        ev.item_added({"type": "web_search_call", "id": "ws_1"}),
        ev.item_added(ev.message_item("msg_1", [], status="in_progress")),
    ],
)
def test_events_that_yield_no_parts(payload: str) -> None:
    protocol, _ = feed([ev.created()])
    assert protocol.receive(payload) == []
    assert protocol.state is State.STREAMING


# --------------------------------------------------------------------------- recorded streams


def test_recorded_reasoning_and_tool_call_stream() -> None:
    name = (
        "charmbracelet-fantasy/"
        "TestOpenAIResponsesWithSummaryThinking__openai-gpt-5__thinking-streaming.i0.sse"
    )
    parts = run(recorded_payloads(name))
    response = collect(parts)
    assert response.tool_calls == [
        ToolCall(
            "call_zgUaIBRPTwxxOusyyKw5NVMH",
            "weather",
            '{"location":"Florence, Italy"}',
            id=response.tool_calls[0].id,
        )
    ]
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.usage == Usage(63, 121, 184, reasoning_tokens=64)
    assert response.id == "resp_017e85da2ae23b69016a3c12518cc0819da56cbbdd33f128f3"
    assert response.metadata.model == "gpt-5-2025-08-07"
    [reasoning] = response.reasoning
    assert reasoning.encrypted_content is not None
    assert reasoning.id is not None
    assert reasoning.id.startswith("rs_")
    assert reasoning.summary[0].startswith("**Getting weather info**")
    summary_deltas = "".join(
        p.delta for p in parts if isinstance(p, ReasoningDelta) and p.index == 0
    )
    assert summary_deltas == reasoning.summary[0]


def test_recorded_incomplete_stream() -> None:
    parts = run(
        recorded_payloads("dd-trace-py/contrib-openai-v1__response_stream_incomplete.i0.sse")
    )
    response = collect(parts)
    expected = "In the bustling city of Detroit, a sleek, metallic blue sedan rolled off the"
    assert response.text == text_deltas(parts) == expected
    assert response.finish_reason is FinishReason.LENGTH
    assert response.id == "resp_6866d2dec420819c92534dcf75e475120847a84b87aad89c"


# --------------------------------------------------------------------------- properties

_texts = st.text(st.characters(codec="utf-8"), max_size=6)
_chunks = st.lists(_texts, min_size=1, max_size=4)


@dataclass
class _Scripted:
    payloads: list[str]
    text: str
    calls: list[ToolCall]
    reasoning: list[ReasoningPart]


@st.composite
def _outputs(draw: st.DrawFn) -> list[tuple[str, Any]]:
    kinds = st.sampled_from(["text", "tool", "reasoning", "final_only_text"])
    items: list[tuple[str, Any]] = []
    for kind in draw(st.lists(kinds, max_size=5)):
        if kind in ("text", "final_only_text"):
            items.append((kind, draw(_chunks)))
        elif kind == "tool":
            items.append((kind, (draw(st.sampled_from(["a", "b"])), draw(_chunks))))
        else:
            summaries = draw(st.lists(_chunks, max_size=3))
            items.append((kind, (summaries, draw(st.none() | st.just("enc")))))
    return items


def _script(items: list[tuple[str, Any]]) -> _Scripted:
    """The payloads of a response with ``items`` and what it must fold to."""
    payloads = [ev.created(), ev.in_progress()]
    final: list[ev.JSON] = []
    out = _Scripted([], "", [], [])
    final_only_text = ""  # items never streamed come last: they arrive with the terminal event
    for index, (kind, spec) in enumerate(items):
        if kind == "text":
            payloads += ev.message_events(f"msg_{index}", spec, index)
            final.append(ev.message_item(f"msg_{index}", "".join(spec)))
            out.text += "".join(spec)
        elif kind == "final_only_text":
            final.append(ev.message_item(f"msg_{index}", "".join(spec)))
            final_only_text += "".join(spec)
        elif kind == "tool":
            name, chunks = spec
            payloads += ev.function_call_events(f"fc_{index}", f"call_{index}", name, chunks, index)
            arguments = "".join(chunks)
            final.append(ev.function_call_item(f"fc_{index}", f"call_{index}", name, arguments))
            out.calls.append(ToolCall(f"call_{index}", name, arguments, id=f"fc_{index}"))
        else:
            chunks_per_summary, encrypted = spec
            summary = tuple("".join(chunks) for chunks in chunks_per_summary)
            payloads += ev.reasoning_events(
                f"rs_{index}", chunks_per_summary, index, encrypted_content=encrypted
            )
            final.append(ev.reasoning_item(f"rs_{index}", summary, encrypted_content=encrypted))
            out.reasoning.append(ReasoningPart(f"rs_{index}", summary, (), encrypted))
    payloads.append(ev.completed(output=final, usage=ev.usage(3, 4)))
    out.text += final_only_text
    out.payloads = ev.numbered(payloads)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_outputs())
def test_property_deltas_join_to_the_text_and_the_fold_is_incremental(
    items: list[tuple[str, Any]],
) -> None:
    script = _script(items)
    protocol = ResponsesProtocol()
    collector = Collector()
    parts: list[StreamPart] = []
    for payload in script.payloads:
        new = protocol.receive(payload)
        for part in new:
            collector.add(part)
            collector.build()  # a partial build works at any point
        parts += new
    assert protocol.done
    response = collect(parts)
    assert text_deltas(parts) == response.text == script.text
    assert response.tool_calls == script.calls
    for call in script.calls:
        assert tool_deltas(parts, call.id or "") == call.arguments
    assert response.reasoning == script.reasoning
    assert collector.build() == response == protocol.partial()
    expected_reason = FinishReason.TOOL_CALLS if script.calls else FinishReason.STOP
    assert response.finish_reason is expected_reason
    assert response.usage == Usage(3, 4, 7)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_outputs(), st.data())
def test_property_truncated_streams_complete_or_are_incomplete(
    items: list[tuple[str, Any]], data: st.DataObject
) -> None:
    script = _script(items)
    payloads = script.payloads
    cut = data.draw(st.integers(0, len(payloads)), label="cut")
    protocol = ResponsesProtocol()
    parts: list[StreamPart] = []
    for payload in payloads[:cut]:  # any exception but IncompleteStream fails the property
        parts += protocol.receive(payload)
    if cut == len(payloads):
        assert protocol.finish() == []
        assert collect(parts).text == script.text
        return
    with pytest.raises(IncompleteStream) as info:
        protocol.finish()
    partial = info.value.partial
    assert partial is not None
    assert partial.finish_reason is FinishReason.UNKNOWN
    assert partial.text == text_deltas(parts)
    assert partial.tool_calls == [c for c in script.calls if c in partial.tool_calls]
