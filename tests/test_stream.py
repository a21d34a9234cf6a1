"""Tier 1: the domain values (`llmkit.messages`), the fold (`Collector`, `collect`) and `Stream`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from llmkit.exceptions import (
    ConnectionClosed,
    IncompleteStream,
    LLMKitError,
    ResponseFailed,
    UsageError,
)
from llmkit.messages import (
    AssistantMessage,
    Call,
    FilePart,
    FinishReason,
    FunctionTool,
    ImagePart,
    Message,
    ProviderItemPart,
    ReasoningPart,
    Response,
    ResponseMetadata,
    SourcePart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    ToolResult,
    Usage,
    UserMessage,
)
from llmkit.stream import (
    Collector,
    Finish,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    Stream,
    StreamPart,
    TextDelta,
    TextEnd,
    TextStart,
    ToolInputDelta,
    ToolInputEnd,
    ToolInputStart,
    Warnings,
    collect,
)

META = ResponseMetadata(response_id="resp_1", model="m")
USAGE = Usage(input_tokens=3, output_tokens=4, total_tokens=7)
FINISH = Finish(FinishReason.STOP, USAGE, META)
CALL = ToolCall("call_1", "add", '{"a":1}', id="fc_1")
SOURCE = SourcePart("msg_1", source_type="url_citation", url="https://a.test")
ITEM = ProviderItemPart("ws_1", "web_search_call", {"type": "web_search_call", "id": "ws_1"})

# A stream with one part of every kind, in a realistic order.
EVERY_PART: list[StreamPart] = [
    Warnings(("temperature dropped",)),
    ReasoningStart("rs_1"),
    ReasoningDelta("rs_1", "a", "summary", 0),
    ReasoningDelta("rs_1", "raw", "text", 0),
    ReasoningEnd("rs_1", ("a",), ("raw",), "enc"),
    TextStart("msg_1", phase="final_answer"),
    TextDelta("msg_1", "Hel"),
    TextDelta("msg_1", "lo"),
    TextEnd("msg_1", "Hello"),
    SOURCE,
    TextStart("msg_2", refusal=True),
    TextDelta("msg_2", "No"),
    TextEnd("msg_2", "No"),
    ToolInputStart("fc_1", "call_1", "add"),
    ToolInputDelta("fc_1", '{"a":1}'),
    ToolInputEnd("fc_1"),
    CALL,
    ITEM,
    FINISH,
]
EVERY_RESPONSE = Response(
    content=(
        ReasoningPart("rs_1", ("a",), ("raw",), "enc"),
        TextPart("Hello", id="msg_1", phase="final_answer"),
        SOURCE,
        TextPart("No", id="msg_2", refusal=True),
        CALL,
        ITEM,
    ),
    finish_reason=FinishReason.STOP,
    usage=USAGE,
    metadata=META,
    warnings=("temperature dropped",),
)


# --------------------------------------------------------------------------- messages


def test_response_properties() -> None:
    response = EVERY_RESPONSE
    assert response.text == "Hello"
    assert response.refusal == "No"
    assert response.tool_calls == [CALL]
    assert response.reasoning == [ReasoningPart("rs_1", ("a",), ("raw",), "enc")]
    assert response.id == "resp_1"
    assert response.message == AssistantMessage(response.content)
    assert response.message.parts == response.content
    assert response.message.role == "assistant"


def test_empty_response() -> None:
    response = Response()
    assert (response.text, response.refusal, response.id) == ("", None, None)
    assert (response.tool_calls, response.reasoning) == ([], [])
    assert response.finish_reason is FinishReason.UNKNOWN
    assert response.usage == Usage(0, 0, 0, 0, 0, 0)
    assert response.metadata == ResponseMetadata()
    assert response.metadata.transport == "http"
    assert response.metadata.input_mode == "full"


def test_text_joins_every_non_refusal_part() -> None:
    response = Response(
        content=(
            TextPart("a"),
            TextPart("x", refusal=True),
            CALL,
            TextPart("b"),
            TextPart("y", refusal=True),
        )
    )
    assert response.text == "ab"
    assert response.refusal == "xy"


def test_call_from_a_string() -> None:
    call = Call("What is 2+2?")
    assert call.prompt == (UserMessage("What is 2+2?"),)
    assert call.prompt[0] == UserMessage([TextPart("What is 2+2?")])
    assert (call.tools, call.tool_choice, call.provider_options) == ((), None, None)
    assert (call.max_output_tokens, call.temperature, call.top_p) == (None, None, None)


def test_call_from_messages_and_settings() -> None:
    tool = FunctionTool(name="add")
    messages: list[Message] = [SystemMessage("Be terse."), UserMessage("Hi")]
    call = Call(
        messages,
        tools=[tool],
        tool_choice="add",
        max_output_tokens=10,
        temperature=0.5,
        top_p=0.9,
        provider_options={"openai": {"store": True}},
    )
    assert call.prompt == tuple(messages)
    assert call.tools == (tool,)
    assert (call.tool_choice, call.max_output_tokens, call.temperature, call.top_p) == (
        "add",
        10,
        0.5,
        0.9,
    )
    assert call.provider_options == {"openai": {"store": True}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.tool_choice = "none"  # type: ignore[misc]


def test_messages_and_roles() -> None:
    image = ImagePart(url="https://a.test/x.png", detail="high")
    assert UserMessage("hi").parts == (TextPart("hi"),)
    assert UserMessage([TextPart("a"), image]).parts == (TextPart("a"), image)
    assert AssistantMessage("done").parts == (TextPart("done"),)
    assert AssistantMessage([CALL]).parts == (CALL,)
    result = ToolResult("call_1", "2")
    assert ToolMessage(result).results == (result,)
    assert ToolMessage([result, result]).results == (result, result)
    assert result.is_error is False
    roles = [
        SystemMessage("s").role,
        UserMessage("u").role,
        AssistantMessage("a").role,
        ToolMessage(result).role,
    ]
    assert roles == ["system", "user", "assistant", "tool"]


def test_part_defaults_and_types() -> None:
    assert ImagePart().detail == "auto"
    assert FilePart(data="QUJD", filename="a.pdf").type == "file"
    assert FunctionTool(name="f").parameters == {"type": "object", "properties": {}}
    assert (FunctionTool(name="f").description, FunctionTool(name="f").strict) == (None, None)
    assert CALL.kind == "function"
    assert [p.type for p in EVERY_RESPONSE.content] == [
        "reasoning",
        "text",
        "source",
        "text",
        "tool_call",
        "provider_item",
    ]


@pytest.mark.parametrize(
    ("part", "text"),
    [
        (ReasoningPart("rs_1", ("a", "b"), ("raw",)), "a\n\nb"),
        (ReasoningPart("rs_1", (), ("x", "y")), "x\n\ny"),
        (ReasoningPart("rs_1"), ""),
    ],
)
def test_reasoning_text(part: ReasoningPart, text: str) -> None:
    assert part.text == text


def test_finish_reason_values() -> None:
    assert [r.value for r in FinishReason] == [
        "stop",
        "length",
        "content_filter",
        "tool_calls",
        "error",
        "other",
        "unknown",
    ]
    assert isinstance(FinishReason.STOP, str)
    assert str(FinishReason.STOP) == "stop"


# --------------------------------------------------------------------------- the fold


def test_collect_every_part_type() -> None:
    assert collect(EVERY_PART) == EVERY_RESPONSE


def test_collector_builds_at_every_point_and_ends_equal_to_collect() -> None:
    collector = Collector()
    for part in EVERY_PART:
        assert not collector.finished
        collector.add(part)
        collector.build()
    assert collector.finished
    assert collector.build() == EVERY_RESPONSE


def test_partial_build_shows_open_text_and_reasoning() -> None:
    collector = Collector()
    parts: list[StreamPart] = [
        ReasoningStart("rs_1"),
        ReasoningDelta("rs_1", "b", "summary", 1),
        ReasoningDelta("rs_1", "a", "summary", 0),
        ReasoningDelta("rs_1", "t", "text", 0),
        TextStart("msg_1", phase="commentary"),
        TextDelta("msg_1", "Hal"),
    ]
    for part in parts:
        collector.add(part)
    partial = collector.build()
    assert partial == Response(
        content=(
            ReasoningPart("rs_1", ("a", "b"), ("t",)),
            TextPart("Hal", id="msg_1", phase="commentary"),
        )
    )
    assert partial.finish_reason is FinishReason.UNKNOWN
    meta = ResponseMetadata(response_id="resp_9")
    assert collector.build(metadata=meta).metadata == meta


def test_build_metadata_overrides_the_finish_metadata() -> None:
    collector = Collector()
    collector.add(FINISH)
    other = ResponseMetadata(response_id="resp_2", transport="websocket")
    assert collector.build().metadata == META
    assert collector.build(metadata=other).metadata == other
    assert collector.build(metadata=other).usage == USAGE


def test_text_end_prefers_the_final_text() -> None:
    response = collect([TextStart("m"), TextDelta("m", "draft"), TextEnd("m", "final")])
    assert response.content == (TextPart("final", id="m"),)


def test_text_delta_without_start_opens_a_part() -> None:
    response = collect([TextDelta("m", "a"), TextDelta("m", "b"), TextEnd("m", "ab")])
    assert response.content == (TextPart("ab", id="m"),)


def test_text_end_without_start_appends_the_text() -> None:
    assert collect([TextEnd("m", "x")]).content == (TextPart("x", id="m"),)


def test_interleaved_text_items_stay_apart() -> None:
    response = collect(
        [
            TextStart("a"),
            TextStart("b"),
            TextDelta("a", "1"),
            TextDelta("b", "2"),
            TextDelta("a", "3"),
            TextEnd("b", "2"),
            TextEnd("a", "13"),
        ]
    )
    assert response.content == (TextPart("13", id="a"), TextPart("2", id="b"))


def test_reasoning_end_without_start_and_deltas_without_start() -> None:
    assert collect([ReasoningEnd("rs_1", ("s",), (), "e")]).content == (
        ReasoningPart("rs_1", ("s",), (), "e"),
    )
    streamed = collect(
        [
            ReasoningDelta("rs_1", "x", "text", 0),
            ReasoningDelta("rs_1", "y", "text", 0),
            ReasoningEnd("rs_1", encrypted_content="e"),
        ]
    )
    # An end without final texts keeps the streamed ones and adds the encrypted state.
    assert streamed.content == (ReasoningPart("rs_1", (), ("xy",), "e"),)


def test_tool_input_parts_are_progress_only() -> None:
    response = collect([ToolInputStart("fc_1", "c", "f"), ToolInputDelta("fc_1", "{}")])
    assert response.content == ()
    assert collect([ToolInputEnd("fc_1"), CALL]).content == (CALL,)


def test_warnings_accumulate() -> None:
    response = collect([Warnings(("a",)), Warnings(("b", "c")), FINISH])
    assert response.warnings == ("a", "b", "c")


# --------------------------------------------------------------------------- Stream


class Producer:
    """A generator-backed part producer that records how it ended."""

    def __init__(self, parts: list[StreamPart], error: BaseException | None = None) -> None:
        self.parts = parts
        self.error = error
        self.finalized = False
        self.on_close_calls = 0  # how many times the producer's `finally` ran

    def gen(self) -> Iterator[StreamPart]:
        try:
            yield from self.parts
            if self.error is not None:
                raise self.error
        finally:
            self.finalized = True
            self.on_close_calls += 1

    def stream(self) -> Stream:
        return Stream(self.gen())


def test_stream_iterates_and_collects() -> None:
    producer = Producer(EVERY_PART)
    stream = producer.stream()
    assert iter(stream) is stream
    assert list(stream) == EVERY_PART
    assert stream.finished
    assert stream.response == EVERY_RESPONSE
    assert producer.finalized
    assert producer.on_close_calls == 1
    assert list(stream) == []  # exhausted streams stay exhausted


def test_response_before_the_end_is_a_usage_error() -> None:
    stream = Producer(EVERY_PART).stream()
    next(stream)
    assert not stream.finished
    with pytest.raises(UsageError, match="has not finished"):
        _ = stream.response
    stream.close()


def test_a_stream_that_ends_without_finish_has_no_response() -> None:
    stream = Producer([TextStart("m"), TextDelta("m", "x")]).stream()
    assert len(list(stream)) == 2
    with pytest.raises(UsageError):
        _ = stream.response


def test_until_done() -> None:
    producer = Producer(EVERY_PART)
    stream = producer.stream()
    next(stream)
    assert stream.until_done() == EVERY_RESPONSE
    assert producer.on_close_calls == 1


def test_close_closes_the_producer_once() -> None:
    producer = Producer(EVERY_PART)
    stream = producer.stream()
    next(stream)
    stream.close()
    assert producer.finalized
    assert producer.on_close_calls == 1
    stream.close()
    assert producer.on_close_calls == 1
    assert list(stream) == []  # a closed generator stops
    assert producer.on_close_calls == 1


def test_context_manager_closes_on_break() -> None:
    producer = Producer(EVERY_PART)
    with producer.stream() as stream:
        for part in stream:
            if isinstance(part, TextDelta):
                break
    assert producer.finalized
    assert producer.on_close_calls == 1


def test_context_manager_closes_on_exception() -> None:
    producer = Producer(EVERY_PART)
    with pytest.raises(KeyError), producer.stream() as stream:
        next(stream)
        raise KeyError("caller bug")
    assert producer.finalized
    assert producer.on_close_calls == 1


def test_producer_error_gets_the_partial_attached() -> None:
    producer = Producer(
        [TextStart("m"), TextDelta("m", "Hal")], ConnectionClosed("dropped", code=1006)
    )
    stream = producer.stream()
    with pytest.raises(ConnectionClosed) as info:
        list(stream)
    assert info.value.partial == Response(content=(TextPart("Hal", id="m"),))
    assert info.value.code == 1006
    assert producer.finalized
    assert producer.on_close_calls == 1
    assert list(stream) == []  # iterating after an error stops
    with pytest.raises(UsageError):
        _ = stream.response


def test_an_existing_partial_is_kept() -> None:
    own = Response(content=(TextPart("from the protocol"),), finish_reason=FinishReason.ERROR)
    producer = Producer([TextDelta("m", "x")], ResponseFailed("boom", partial=own))
    with pytest.raises(ResponseFailed) as info:
        list(producer.stream())
    assert info.value.partial is own


def test_an_error_before_any_part_gets_an_empty_partial() -> None:
    producer = Producer([], IncompleteStream("cut"))
    with pytest.raises(IncompleteStream) as info:
        next(producer.stream())
    assert info.value.partial == Response()
    assert producer.on_close_calls == 1


def test_foreign_errors_close_the_stream_and_pass_through() -> None:
    producer = Producer([TextDelta("m", "x")], RuntimeError("bug"))
    stream = producer.stream()
    assert next(stream) == TextDelta("m", "x")
    with pytest.raises(RuntimeError, match="bug") as info:
        next(stream)
    assert not isinstance(info.value, LLMKitError)
    assert producer.finalized
    assert producer.on_close_calls == 1
    assert list(stream) == []


def test_a_plain_iterator_without_close() -> None:
    stream = Stream(iter([TextDelta("m", "x"), FINISH]))
    assert stream.until_done() == Response(
        content=(TextPart("x", id="m"),),
        finish_reason=FinishReason.STOP,
        usage=USAGE,
        metadata=META,
    )
    stream.close()  # a producer without close(): still fine
