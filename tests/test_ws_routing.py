"""The pure decisions of the WebSocket reader: which receiver a frame goes to, and when
an idle socket is pinged or given up (no sockets)."""

from __future__ import annotations

import json

import pytest

from llmkit.transports._ws_routing import (
    BROADCAST,
    DISCARD,
    MAX_BACKLOG,
    STASH,
    Heartbeat,
    Router,
    stream_id_of,
)


def event(kind: str, lane: str | None = None, **fields: object) -> str:
    body: dict[str, object] = {"type": kind, **fields}
    if lane is not None:
        body["stream_id"] = lane
    return json.dumps(body)


def only(router: Router[str]) -> str | None:
    return router.only


def test_stream_id_is_the_top_level_field_only() -> None:
    assert stream_id_of(event("response.output_text.delta", "a", delta="x")) == "a"
    assert stream_id_of(event("response.output_text.delta", delta="x")) is None
    # the words in a delta, and a nested field of that name, are not the lane
    assert stream_id_of(event("response.output_text.delta", delta='"stream_id":"b"')) is None
    assert stream_id_of(event("response.completed", response={"stream_id": "b"})) is None
    assert stream_id_of(event("response.completed", "a", response={"stream_id": "b"})) == "a"
    assert stream_id_of('{"stream_id": 3}') is None
    assert stream_id_of('["stream_id"]') is None
    assert stream_id_of('{"stream_id": "a"') is None  # not JSON: the protocol says so


def test_a_lone_receiver_gets_every_frame_unseen() -> None:
    router: Router[str] = Router()
    router.add("a", "A")
    assert router.only == "A"
    assert router.route("not even json") == "A"
    assert router.route(event("x", "b")) == "A"


def test_frames_go_to_their_lanes_receiver() -> None:
    router: Router[str] = Router()
    router.add("a", "A")
    router.add(None, "D")
    assert router.only is None
    assert router.route(event("x", "a")) == "A"
    assert router.route(event("x")) == "D"
    router.remove(None, "D")
    assert router.only == "A"


def test_a_frame_of_no_lane_on_a_named_lane_socket_goes_to_everyone() -> None:
    router: Router[str] = Router()
    router.add("a", "A")
    router.add("b", "B")
    assert router.route(event("error", error={"code": "x"})) == BROADCAST
    assert router.route(event("x", "c")) == STASH  # its receiver is still to come


def test_a_frame_before_its_receiver_is_kept_for_it() -> None:
    router: Router[str] = Router()
    assert router.idle
    text = event("response.created", "a")
    assert router.route(text) == STASH
    assert router.stash(text)
    assert list(router.add("a", "A")) == [text]
    assert not router.backlog


def test_the_backlog_is_bounded() -> None:
    router: Router[str] = Router()
    for _ in range(MAX_BACKLOG):
        assert router.stash(event("x", "a"))
    assert not router.stash(event("x", "a"))


def test_an_abandoned_lane_is_drained_until_its_end() -> None:
    router: Router[str] = Router()
    router.add("a", "A")
    router.add("b", "B")
    router.abandon("a", "A", lambda text: json.loads(text)["type"] == "response.completed")
    assert only(router) is None  # b's frames must be told from a's
    assert not router.idle
    with pytest.raises(ValueError, match="busy"):
        router.add("a", "A2")
    assert router.route(event("response.output_text.delta", "a")) == DISCARD
    assert router.route(event("response.output_text.delta", "b")) == "B"
    assert router.route(event("response.completed", "a")) == DISCARD
    assert router.only == "B"
    router.add("a", "A2")


def test_only_the_registered_receiver_leaves() -> None:
    router: Router[str] = Router()
    router.add("a", "A")
    router.remove("a", "other")
    router.abandon("a", "other", lambda _: True)
    assert router.receivers == {"a": "A"}
    with pytest.raises(ValueError, match="busy"):
        router.add("a", "A")
    assert list(router) == ["A"]


def test_heartbeat_pings_after_the_interval_and_gives_up_after_the_pong_timeout() -> None:
    beat = Heartbeat(10.0)
    beat.alive(100.0)
    assert beat.due(109.9) is None
    assert beat.wait(105.0) == 5.0
    assert beat.due(110.0) == "ping"
    beat.pinged(110.0)
    assert beat.due(119.9) is None
    assert beat.wait(115.0) == 5.0
    assert beat.due(120.0) == "dead"
    beat.alive(119.0)  # a pong (or anything) arrived
    assert beat.due(120.0) is None
    assert beat.wait(200.0) == 0.0


def test_heartbeat_off_never_pings() -> None:
    beat = Heartbeat(None)
    beat.alive(0.0)
    assert beat.due(1e9) is None
    assert beat.wait(1e9) is None


def test_heartbeat_pong_timeout_may_differ() -> None:
    beat = Heartbeat(10.0, pong_timeout=1.0)
    beat.alive(0.0)
    beat.pinged(10.0)
    assert beat.due(10.9) is None
    assert beat.due(11.0) == "dead"
