"""Steering without sockets: `SteerControl`'s rules, `ResponsesProtocol` fed scripted
steered streams (PROTOCOL.md §2.3, §6.3), `Response.messages` and the chain a steered
call leaves on its lane."""

from __future__ import annotations

import json
from typing import Any

import pytest
from events import (
    completed,
    created,
    event,
    function_call_events,
    incomplete,
    message_events,
    message_item,
    output_text,
    usage,
)

import llmkit
from llmkit.openai._lanes import LanePool, Placement, Wait
from llmkit.openai._steer import SteerControl
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import Collector

STEER = (llmkit.UserMessage("also dogs"),)
STEER_ITEM = {
    "type": "message",
    "role": "user",
    "content": [{"type": "input_text", "text": "also dogs"}],
}


def bound() -> tuple[SteerControl, list[dict[str, Any]]]:
    control, sent = SteerControl(), []
    control.bind(lambda text: sent.append(json.loads(text)))
    return control, sent


def accepted(steer_id: str = "steer_1", previous: str = "resp_1") -> str:
    return event(
        "response.steer.accepted", steer={"id": steer_id, "previous_response_id": previous}
    )


def steer_failed(code: str, steer_id: str | None = None, previous: str = "resp_1") -> str:
    steer: dict[str, Any] = {"previous_response_id": previous, "input": "also dogs"}
    if steer_id is not None:
        steer["id"] = steer_id
    error = {"type": "invalid_request_error", "code": code, "message": f"no: {code}"}
    return event("response.steer.failed", steer=steer, error=error)


def pending(steer_id: str = "steer_1", previous: str = "resp_1") -> str:
    return event(
        "response.steer.pending",
        steer={"id": steer_id, "previous_response_id": previous},
        reason="waiting_for_required_input",
        required_input=[{"type": "function_call_output", "call_id": "call_1"}],
    )


def feed(protocol: ResponsesProtocol, payloads: list[str]) -> list[llmkit.StreamPart]:
    parts: list[llmkit.StreamPart] = []
    for payload in payloads:
        assert not finished(protocol), payload
        parts += protocol.receive(payload)
    return parts


def finished(protocol: ResponsesProtocol) -> bool:
    """``protocol.done``, read anew (not narrowed by an earlier assert)."""
    return protocol.done


def steered_protocol() -> tuple[ResponsesProtocol, SteerControl, list[dict[str, Any]]]:
    control, sent = bound()
    protocol = ResponsesProtocol(Collector())
    protocol.steering = control
    return protocol, control, sent


# -- the control ----------------------------------------------------------------------


def test_a_steer_waits_for_the_response_to_start_and_names_it() -> None:
    control, sent = bound()
    control.steer(STEER)
    assert sent == []
    assert control.started("resp_1") == ()
    assert sent == [
        {"type": "response.steer", "previous_response_id": "resp_1", "input": [STEER_ITEM]}
    ]
    control.steer(STEER)  # started: goes out at once, with no stream_id
    assert len(sent) == 2 and "stream_id" not in sent[1]


def test_an_unbound_control_keeps_the_input_until_the_call_ends() -> None:
    control = SteerControl()  # the call went over HTTP: nothing is ever sent
    control.steer(STEER)
    control.started("resp_1")
    assert not control.unapplied
    control.finish()
    assert control.unapplied == STEER
    control.finish()  # once
    assert control.unapplied == STEER


def test_steering_after_the_end_is_refused_with_the_input() -> None:
    control, _ = bound()
    control.started("resp_1")
    assert control.ended() is False
    with pytest.raises(llmkit.SteerError) as caught:
        control.steer(STEER)
    assert caught.value.code == "response_already_completed" and caught.value.input == STEER


def test_not_supported_refuses_every_later_steer_at_once() -> None:
    control, sent = bound()
    control.started("resp_1")
    control.steer(STEER)
    error = control.failed({}, {"code": "steering_not_supported", "message": "no"})
    assert error.input == STEER and error.code == "steering_not_supported"
    with pytest.raises(llmkit.SteerError, match="no") as caught:
        control.steer((llmkit.UserMessage("again"),))
    assert caught.value.input == (llmkit.UserMessage("again"),)
    assert len(sent) == 1 and control.unapplied == STEER


def test_a_failure_names_its_steer_by_id_else_the_oldest() -> None:
    control, _ = bound()
    control.started("resp_1")
    first, second = (llmkit.UserMessage("one"),), (llmkit.UserMessage("two"),)
    control.steer(first)
    control.steer(second)
    control.accepted({"id": "steer_1"})
    control.accepted({"id": "steer_2"})
    assert control.failed({"id": "steer_2"}, {"code": "successor_creation_failed"}).input == second
    assert control.failed({}, {}).input == first
    assert control.failed({}, {"message": 3}).message == "the steer was not applied"
    assert control.outstanding is False


def test_a_send_that_fails_leaves_the_steer_unapplied() -> None:
    control = SteerControl()

    def broken(text: str) -> int:
        raise llmkit.ConnectionClosed("gone")

    control.bind(broken)
    control.started("resp_1")
    control.steer(STEER)  # no error: the stream reports the connection
    control.finish()
    assert control.unapplied == STEER


@pytest.mark.parametrize(
    ("frames", "ends_at"),
    [
        ([accepted(), incomplete("steered"), created("resp_2"), completed("resp_2")], 3),
        ([incomplete("steered"), accepted(), created("resp_2"), completed("resp_2")], 3),
        ([completed(), steer_failed("response_already_completed")], 1),
        ([accepted(), completed(), pending()], 2),
        ([accepted(), event("response.failed", response={"id": "resp_1"})], 1),
        ([accepted(), event("error", error={"code": "x"})], 1),
        (["not json", accepted(), completed(), "[1]", steer_failed("x", "steer_1")], 4),
    ],
)
def test_an_abandoned_lane_drains_past_a_steered_end(frames: list[str], ends_at: int) -> None:
    control, _ = bound()
    control.started("resp_1")
    control.steer(STEER)
    control.finish()
    ends = [control.drain_end(frame) for frame in frames]
    assert ends.index(True) == ends_at
    assert control.unapplied == STEER  # draining never changes what the call reported


def test_a_lane_with_nothing_sent_drains_to_its_terminal_event() -> None:
    control, _ = bound()
    control.started("resp_1")
    assert control.drain_end(event("response.output_text.delta", delta="x")) is False
    assert control.drain_end(completed()) is True


# -- the protocol ---------------------------------------------------------------------


def test_the_protocol_follows_a_steered_response_to_its_successor() -> None:
    protocol, control, sent = steered_protocol()
    parts = feed(protocol, [created("resp_1"), *message_events("msg_1", ["Hello"])[:3]])
    control.steer(STEER)
    partial = message_item("msg_1", [output_text("Hello")], status="incomplete")
    parts += feed(
        protocol,
        [
            accepted(),
            *message_events("msg_1", ["Hello"])[3:],
            incomplete("steered", "resp_1", output=[partial], usage=usage(10, 1)),
        ],
    )
    assert not finished(protocol)  # a successor is coming
    parts += feed(
        protocol,
        [
            created("resp_2"),
            *message_events("msg_2", ["Dogs", "!"]),
            completed(
                "resp_2", output=[message_item("msg_2", [output_text("Dogs!")])], usage=usage(12, 2)
            ),
        ],
    )
    assert finished(protocol)
    steered = [p for p in parts if isinstance(p, llmkit.Steered)]
    assert steered == [llmkit.Steered(STEER, "resp_1", "resp_2", llmkit.Usage(10, 1, 11))]
    response = protocol.partial()
    assert response.id == "resp_2" and response.text == "HelloDogs!"
    assert response.usage.input_tokens == 22 and response.usage.output_tokens == 3
    assert response.finish_reason is llmkit.FinishReason.STOP
    hello, user, dogs = response.messages
    assert user == STEER[0]
    assert isinstance(hello, llmkit.AssistantMessage) and isinstance(dogs, llmkit.AssistantMessage)
    assert len(sent) == 1


def test_a_steer_answered_after_completion_ends_the_call_with_the_failure() -> None:
    protocol, control, _ = steered_protocol()
    feed(protocol, [created("resp_1"), *message_events("msg_1", ["Hi"])])
    control.steer(STEER)
    parts = feed(
        protocol, [completed("resp_1", output=[message_item("msg_1", [output_text("Hi")])])]
    )
    assert not finished(protocol) and parts == []  # the steer is unanswered: wait for it
    parts = feed(protocol, [steer_failed("response_already_completed")])
    assert finished(protocol)
    failure, finish = parts
    assert isinstance(failure, llmkit.SteerFailed) and failure.error.input == STEER
    assert isinstance(finish, llmkit.Finish) and finish.finish_reason is llmkit.FinishReason.STOP
    assert protocol.partial().messages == (protocol.partial().message,)
    assert control.unapplied == STEER


def test_a_pending_steer_ends_the_call_with_the_input_after_the_tool_call() -> None:
    protocol, control, _ = steered_protocol()
    call_events = function_call_events("fc_1", "call_1", "add", ['{"a":1}'])
    feed(protocol, [created("resp_1"), call_events[0]])
    control.steer(STEER)
    call = json.loads(call_events[-1])["item"]
    parts = feed(protocol, [accepted(), *call_events[1:], completed("resp_1", output=[call])])
    assert not finished(protocol)
    parts = feed(protocol, [pending()])
    assert finished(protocol)
    assert isinstance(parts[0], llmkit.SteerPending)
    assert parts[0].input == STEER and parts[0].required == ("call_1",)
    assert isinstance(parts[-1], llmkit.Finish)
    response = protocol.partial()
    assert response.finish_reason is llmkit.FinishReason.TOOL_CALLS
    assert response.messages == (llmkit.AssistantMessage(response.content), STEER[0])
    assert control.parked


def test_steer_events_are_ignored_without_steering() -> None:
    protocol = ResponsesProtocol()
    assert (
        feed(protocol, [created(), accepted(), pending(), event("response.inject.created")]) == []
    )
    protocol.steering = bound()[0]
    assert protocol.receive(event("response.inject.created")) == []


# -- messages and chains ----------------------------------------------------------------


def test_messages_place_the_steer_input_where_the_server_put_it() -> None:
    a, b = llmkit.TextPart("a"), llmkit.TextPart("b")
    one, two = llmkit.UserMessage("1"), llmkit.UserMessage("2")
    plain = llmkit.Response(content=(a,))
    assert plain.messages == (plain.message,)
    steered = llmkit.Response(content=(a, b), steered=((1, one), (1, two)))
    assert steered.messages == (
        llmkit.AssistantMessage((a,)),
        one,
        two,
        llmkit.AssistantMessage((b,)),
    )
    early = llmkit.Response(content=(a,), steered=((0, one),))
    assert early.messages == (one, llmkit.AssistantMessage((a,)))
    late = llmkit.Response(content=(a,), steered=((1, one),))
    assert late.messages == (llmkit.AssistantMessage((a,)), one)


def test_a_stream_of_bare_parts_folds_steering() -> None:
    response = llmkit.collect(
        [
            llmkit.TextStart("m1"),
            llmkit.TextDelta("m1", "a"),
            llmkit.TextEnd("m1", "a"),
            llmkit.Steered(STEER, "resp_1", "resp_2"),
            llmkit.SteerFailed(llmkit.SteerError("no", input=(llmkit.UserMessage("x"),))),
            llmkit.TextStart("m2"),
            llmkit.TextEnd("m2", "b"),
        ]
    )
    assert response.steered == ((1, STEER[0]),)
    assert [type(m).__name__ for m in response.messages] == [
        "AssistantMessage",
        "UserMessage",
        "AssistantMessage",
    ]


def test_the_lane_records_the_steered_conversation_and_a_pending_lane_is_not_forked() -> None:
    pool: LanePool[object] = LanePool(1)
    body = {
        "model": "m",
        "input": [STEER_ITEM | {"content": [{"type": "input_text", "text": "hi"}]}],
    }
    placement = pool.place(body)
    assert isinstance(placement, Placement)
    pool.connected(placement.socket, object())
    pool.answered(placement, placement.stream_id)
    first = llmkit.AssistantMessage("a")
    pool.completed(placement, "resp_2", (first, STEER[0]), parked=True)
    lane = placement.lane
    assert lane.parked and lane.chain is not None
    assert lane.chain.context[-1] == STEER_ITEM
    # A call extending that head goes on that lane only: while it is busy, wait.
    following = {
        **body,
        "input": [
            *lane.chain.context,
            {"type": "function_call_output", "call_id": "c", "output": "1"},
        ],
    }
    lane.current = placement
    assert isinstance(pool.place(following), Wait)
    lane.current = None
    again = pool.place(following)
    assert isinstance(again, Placement) and again.kind == "continue"
    assert again.frame["input"] == [following["input"][-1]]


def test_a_server_without_steering_refusing_the_frame_leaves_the_response_running() -> None:
    protocol, control, _ = steered_protocol()
    feed(protocol, [created("resp_1"), *message_events("msg_1", ["Hi"])[:3]])
    control.steer(STEER)
    refused = event(
        "error",
        status=400,
        error={
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": "Invalid value: 'response.steer'. Supported values are: 'response.create'.",
            "param": "type",
        },
    )
    parts = feed(protocol, [refused])
    assert len(parts) == 1 and isinstance(parts[0], llmkit.SteerFailed)
    assert parts[0].error.code == "invalid_value" and parts[0].error.input == STEER
    parts = feed(protocol, [*message_events("msg_1", ["Hi"])[3:], completed("resp_1")])
    assert finished(protocol) and isinstance(parts[-1], llmkit.Finish)
    with pytest.raises(llmkit.SteerError) as caught:
        control.steer(STEER)
    assert caught.value.code == "invalid_value"


def test_an_error_about_the_request_still_fails_a_steered_response() -> None:
    protocol, control, _ = steered_protocol()
    feed(protocol, [created("resp_1")])
    control.steer(STEER)
    with pytest.raises(llmkit.APIError):
        protocol.receive(event("error", error={"code": "server_error", "message": "x"}))
    protocol, control, _ = steered_protocol()
    feed(protocol, [created("resp_1")])  # no steer sent: a "type" error is the response's
    with pytest.raises(llmkit.APIError):
        protocol.receive(event("error", error={"code": "x", "message": "x", "param": "type"}))


def test_a_refused_frame_answering_the_last_steer_after_the_end_ends_the_call() -> None:
    protocol, control, _ = steered_protocol()
    feed(protocol, [created("resp_1")])
    control.steer(STEER)
    assert feed(protocol, [completed("resp_1")]) == []
    parts = protocol.receive(event("error", error={"message": "no", "param": "type"}))
    assert (
        isinstance(parts[0], llmkit.SteerFailed) and parts[0].error.code == "steering_not_supported"
    )
    assert finished(protocol) and isinstance(parts[-1], llmkit.Finish)
