"""One fold per call: the protocol and its loop fold each part once, into the collector
the stream reads; an error's ``partial`` comes from that same collector."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import events as ev
import pytest

import llmkit
from llmkit._core.run import Meter, opening, run_protocol
from llmkit.openai import ResponsesProtocol
from llmkit.openai.chat import ChatProtocol
from llmkit.stream import Collector, Finish, Stream, StreamPart, TextDelta, Warnings


class Counting(Collector):
    """A collector that records every part folded into it."""

    __slots__ = ("folded",)

    def __init__(self) -> None:
        super().__init__()
        self.folded: list[StreamPart] = []

    def add(self, part: StreamPart) -> None:
        self.folded.append(part)
        super().add(part)

    def add_text_delta(self, part: TextDelta) -> None:
        self.folded.append(part)
        super().add_text_delta(part)


class Payloads:
    """A payload stream over a list, as a transport hands it to the loop."""

    bytes_sent = 0
    secrets: tuple[str, ...] = ()

    def __init__(self, payloads: list[str]) -> None:
        self._payloads = iter(payloads)
        self.closed = False

    def __iter__(self) -> Iterator[str]:
        return self._payloads

    def close(self) -> None:
        self.closed = True


RESPONSE = [
    ev.created(),
    *ev.message_events("msg_1", ["Hel", "lo"]),
    *ev.function_call_events("fc_1", "call_1", "add", ['{"a":', " 1}"], output_index=1),
    ev.completed(usage=ev.usage(3, 4)),
]


def stream_of(collector: Counting, payloads: list[str], warnings: tuple[str, ...]) -> Stream:
    def parts() -> Iterator[StreamPart]:
        yield from opening(collector, warnings)
        meter = Meter("http", "full", 1)
        yield from run_protocol(Payloads(payloads), meter, ResponsesProtocol(collector))

    return Stream(parts(), collector)


def test_every_part_is_folded_once_into_the_collector_the_stream_reads() -> None:
    collector = Counting()
    stream = stream_of(collector, RESPONSE, ("dropped: seed",))
    parts = list(stream)
    assert collector.folded == parts  # each part once, in order, the Finish stamped
    assert isinstance(parts[0], Warnings) and isinstance(parts[-1], Finish)
    assert parts[-1].metadata.transport == "http"
    assert stream.response == llmkit.collect(parts)
    assert stream.response.warnings == ("dropped: seed",)


def test_a_stream_is_finished_only_once_its_consumer_has_the_finish() -> None:
    # The terminal payload gives a whole message that never streamed, then the Finish.
    collector = Counting()
    late = ev.completed(output=[ev.message_item("msg_9", "late")])
    stream = stream_of(collector, [ev.created(), late], ())
    for part in stream:
        if isinstance(part, llmkit.TextEnd):
            break
    assert not stream.finished
    with pytest.raises(llmkit.UsageError):
        _ = stream.response
    assert not any(isinstance(part, Finish) for part in collector.folded)


def test_an_error_carries_the_partial_of_the_one_collector_with_the_warnings() -> None:
    collector = Counting()
    payloads = [ev.created(), *ev.message_events("msg_1", ["Hel", "lo"])[:3]]
    stream = stream_of(collector, [*payloads, ev.failed("server_error", "boom")], ("w",))
    with pytest.raises(llmkit.ResponseFailed) as caught:
        list(stream)
    partial = caught.value.partial
    assert partial is not None
    assert partial.text == "Hel"
    assert partial.warnings == ("w",)
    assert partial.finish_reason is llmkit.FinishReason.ERROR
    assert (partial.id, partial.metadata.transport) == ("resp_1", "http")
    assert not stream.finished  # the failed response's Finish is not folded


def test_a_standalone_protocol_folds_into_its_own_collector() -> None:
    protocol = ResponsesProtocol()
    parts: list[StreamPart] = []
    for payload in RESPONSE:
        parts += protocol.receive(payload)
    assert not protocol.collector.finished  # the Finish is the driver's to fold
    assert protocol.final == parts[-1]
    assert protocol.partial() == llmkit.collect(parts)


def test_a_text_part_that_ends_without_its_text_gets_what_arrived_from_the_fold() -> None:
    collector = Counting()
    protocol = ResponsesProtocol(collector)
    for payload in [ev.created(), ev.text_delta("msg_1", "a"), ev.text_delta("msg_1", "b")]:
        protocol.receive(payload)
    assert collector.open_text("msg_1") == "ab"
    parts = protocol.receive(ev.completed())
    assert parts[0] == llmkit.TextEnd("msg_1", "ab")


def test_the_chat_protocol_folds_each_part_once_as_it_makes_it() -> None:
    chunks: list[dict[str, Any]] = [
        {"delta": {"reasoning_content": "think"}},
        {"delta": {"reasoning_content": "ing", "content": "Hi"}},
        {"delta": {"content": " there"}, "finish_reason": "stop"},
    ]
    collector = Counting()
    protocol = ChatProtocol(collector)
    parts: list[StreamPart] = []
    for chunk in chunks:
        payload = {"id": "c1", "model": "m", "choices": [{"index": 0, **chunk}]}
        parts += protocol.receive(json.dumps(payload))
    parts += protocol.receive("[DONE]")
    assert collector.folded == parts[:-1]
    assert llmkit.ReasoningEnd(None, content=("thinking",)) in parts
    assert llmkit.TextEnd(None, "Hi there") in parts
    assert protocol.partial() == llmkit.collect(parts)
