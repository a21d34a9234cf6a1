"""The WebSocket session's decisions (pure): `Slots`, `Attempt`, `Turn`, `CooldownGate`.

``llmkit.openai._session`` holds no sockets, so its rules are checked here on stand-in
connections that only have an age and a ``close``; tests/test_session.py checks the same
decisions through `Provider` and `AsyncProvider` over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import events as ev
import pytest

import llmkit
from llmkit.openai._chain import Chain
from llmkit.openai._recovery import Cooldown, Failure
from llmkit.openai._session import COOLING_DOWN, CooldownGate, Slot, Slots, Turn
from llmkit.stream import Finish

USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
ANSWER = {
    "type": "message",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "ok", "annotations": []}],
}


@dataclass(eq=False)
class Link:
    """A stand-in connection: its age, and whether it was closed."""

    age: float = 0.0
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@dataclass
class Frames:
    """A stand-in payload stream that counted ``received`` frames."""

    received: int = 0


def body(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", **fields, "input": list(items)}


def history(turns: int) -> list[dict[str, Any]]:
    """A conversation of ``turns`` user/assistant pairs."""
    return [USER, ANSWER] * turns


def chain(context: list[dict[str, Any]], response_id: str = "resp_1") -> Chain:
    return Chain(response_id, {"model": "m"}, tuple(context))


def pool(size: int) -> tuple[Slots[Link], list[Slot[Link]]]:
    """A full pool of ``size`` idle slots, each leased once and released."""
    slots: Slots[Link] = Slots(size, wait_timeout=None)
    leased = [slots.lease(body(USER)) for _ in range(size)]
    assert all(slot is not None for slot in leased)
    for slot in leased:
        assert slot is not None
        slots.release(slot)
    return slots, [slot for slot in leased if slot is not None]


def leased(payload: dict[str, Any], link: Link, context: list[dict[str, Any]]) -> Slot[Link]:
    """The slot a pool leases for ``payload`` when its one idle connection, ``link``,
    holds the chain of ``context`` (response ``resp_1``)."""
    slots: Slots[Link] = Slots(1, wait_timeout=None)
    slot = slots.lease(body(USER))
    assert slot is not None
    slot.connection, slot.chain, slot.head_id = link, chain(context), "resp_1"
    slots.release(slot)
    assert slots.lease(payload) is slot
    return slot


def fail(error: llmkit.LLMKitError) -> None:
    """Raise ``error`` (inside an attempt, which may swallow it)."""
    raise error


def turn(slot: Slot[Link], payload: dict[str, Any] | None = None, **kwargs: Any) -> Turn[Link]:
    options: dict[str, Any] = {"warmup": False, "max_age": 10.0}
    options.update(kwargs)
    gate = options.pop("gate", None) or CooldownGate(Cooldown(initial=30.0))
    return Turn(slot, payload or body(USER), gate=gate, **options)


# --------------------------------------------------------------------------- which slot


@pytest.mark.parametrize("order", [(1, 3, 2), (3, 1, 2), (2, 1, 3)])
def test_a_call_gets_the_idle_slot_with_the_longest_chain_it_extends(
    order: tuple[int, int, int],
) -> None:
    slots, leased = pool(3)
    for slot, turns in zip(leased, order, strict=True):
        slot.chain = chain(history(turns))
    picked = slots.lease(body(*history(4), USER))
    assert picked is leased[order.index(3)]
    assert picked is not None and picked.busy


def test_of_two_slots_holding_the_same_chain_the_first_is_picked() -> None:
    slots, (first, second) = pool(2)
    first.chain = second.chain = chain(history(2))
    assert slots.lease(body(*history(2), USER)) is first


def test_a_busy_slot_is_never_picked_even_when_its_chain_matches() -> None:
    slots, (first, second) = pool(2)
    first.chain = chain(history(2))
    second.chain = chain(history(1))
    assert slots.lease(body(*history(2), USER)) is first
    assert slots.lease(body(*history(2), USER)) is second
    assert slots.lease(body(*history(2), USER)) is None  # every slot busy


def test_an_explicit_previous_response_id_gets_the_slot_whose_head_it_names() -> None:
    slots, (first, second) = pool(2)
    first.head_id, second.head_id = "resp_1", "resp_2"
    first.last_used, second.last_used = 1.0, 2.0  # the least recently used is `first`
    assert slots.lease(body(USER, previous_response_id="resp_2")) is second


def test_without_a_previous_response_id_a_slot_without_a_head_is_no_match() -> None:
    slots, (first, second) = pool(2)
    first.head_id, second.head_id = "resp_1", None
    first.last_used, second.last_used = 1.0, 2.0
    assert slots.lease(body(USER)) is first  # the least recently used one


@pytest.mark.parametrize("times", [(5.0, 3.0, 4.0), (3.0, 5.0, 4.0), (4.0, 5.0, 3.0)])
def test_a_new_conversation_in_a_full_pool_gets_the_least_recently_used_slot(
    times: tuple[float, float, float],
) -> None:
    slots, leased = pool(3)
    for slot, used in zip(leased, times, strict=True):
        slot.last_used = used
    assert slots.lease(body(USER)) is leased[times.index(3.0)]


def test_the_pool_grows_to_its_size_and_no_further() -> None:
    slots: Slots[Link] = Slots(2, wait_timeout=None)
    first = slots.lease(body(USER))
    assert first is not None
    slots.release(first)
    second = slots.lease(body(USER))  # a new slot, not the idle one
    assert second is not None and second is not first
    assert [slot.number for slot in slots] == [0, 1]
    slots.release(second)
    assert slots.lease(body(USER)) in (first, second)
    assert len(list(slots)) == 2


def test_release_frees_the_slot_and_stamps_its_use() -> None:
    slots: Slots[Link] = Slots(1, wait_timeout=None)
    slot = slots.lease(body(USER))
    assert slot is not None
    assert (slot.busy, slot.last_used) == (True, 0.0)
    before = time.monotonic()
    slots.release(slot)
    assert slot.busy is False
    assert before <= slot.last_used <= time.monotonic()


def test_drop_closes_the_connection_and_forgets_the_cache() -> None:
    link = Link()
    slot = Slot(0, link, chain(history(1)), "resp_1")
    slot.drop("test")
    assert link.closed
    assert (slot.connection, slot.chain, slot.head_id) == (None, None, None)


def test_a_slot_released_after_close_is_emptied() -> None:
    slots: Slots[Link] = Slots(1, wait_timeout=None)
    slot = slots.lease(body(USER))
    assert slot is not None
    link = Link()
    slots.admit(slot, link)
    slots.close()
    slots.release(slot)
    assert link.closed and slot.connection is None
    with pytest.raises(llmkit.UsageError):
        slots.lease(body(USER))


def test_a_connection_opened_during_the_close_is_closed_and_refused() -> None:
    slots: Slots[Link] = Slots(1, wait_timeout=None)
    slot = slots.lease(body(USER))
    assert slot is not None and slots.closed is False
    kept, late = Link(), Link()
    slots.admit(slot, kept)
    assert slot.connection is kept and not kept.closed
    slots.close()
    with pytest.raises(llmkit.UsageError):
        slots.admit(slot, late)
    assert late.closed and slot.connection is None


def test_the_busy_error_names_the_pool_size_and_the_wait() -> None:
    error = Slots[Link](3, wait_timeout=0.25).busy_error()
    assert isinstance(error, llmkit.Timeout)
    assert error.message == "all 3 WebSocket connections stayed busy for 0.25 seconds"


# --------------------------------------------------------------------------- an attempt


def test_an_attempt_starts_in_the_send_stage_and_sent_moves_it_to_receive() -> None:
    attempt = turn(Slot(0)).attempt
    with attempt(Link(), reused=False) as sending:
        assert (sending.stage, sending.payloads) == ("send", None)
        frames = Frames()
        assert sending.sent(frames) is frames
        assert (sending.stage, sending.payloads) == ("receive", frames)


@pytest.mark.parametrize(
    "error", [llmkit.ConnectionClosed("gone"), llmkit.BadRequestError("bad", status_code=400)]
)
def test_a_failure_before_the_frame_went_out_counts_no_event(error: llmkit.LLMKitError) -> None:
    with turn(Slot(0)).attempt(Link(), reused=False) as attempt:
        assert attempt.failure(error) == Failure("send", error, events=0)


def test_a_transport_error_comes_after_every_frame_received() -> None:
    error = llmkit.ConnectionClosed("gone", code=1006)
    with turn(Slot(0)).attempt(Link(), reused=False) as attempt:
        attempt.sent(Frames(received=3))
        assert attempt.failure(error) == Failure("receive", error, events=3)


@pytest.mark.parametrize("received", [1, 3])
def test_an_error_event_is_itself_the_last_frame_received(received: int) -> None:
    error = llmkit.BadRequestError("bad", status_code=400, code="previous_response_not_found")
    with turn(Slot(0)).attempt(Link(), reused=False) as attempt:
        attempt.sent(Frames(received=received))
        assert attempt.failure(error) == Failure("receive", error, events=received - 1)


# --------------------------------------------------------------------------- a turn


def test_a_new_turn_has_one_resend_and_no_failure() -> None:
    step = turn(Slot(0), warmup=True)
    assert (step.warmup, step.failure, step.over) == (True, None, False)
    not_found = llmkit.BadRequestError("gone", status_code=400, code="previous_response_not_found")
    with step.attempt(Link(), reused=False) as attempt:
        attempt.sent(Frames(received=1))
        fail(not_found)  # resent once: before any event, the server never ran it
    assert not step.over
    with pytest.raises(llmkit.BadRequestError), step.attempt(Link(), reused=False) as attempt:
        attempt.sent(Frames(received=1))
        fail(not_found)  # the resend is used up
    assert (step.failure, step.over) == (None, False)


def test_a_missing_chain_head_keeps_the_connection_and_resends_the_full_input_on_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # previous_response_not_found is about the request, not the socket (PROTOCOL.md §3.1)
    link = Link()
    slot = leased(body(*history(1), USER), link, history(1))
    step = turn(slot, body(*history(1), USER))
    not_found = llmkit.BadRequestError("gone", status_code=400, code="previous_response_not_found")
    with (
        caplog.at_level(logging.DEBUG, logger="llmkit"),
        step.attempt(link, reused=True) as attempt,
    ):
        assert attempt.plan.mode == "incremental"
        attempt.sent(Frames(received=1))
        fail(not_found)
    assert [r.getMessage() for r in caplog.records if r.name == "llmkit"] == [
        "chain reset on WebSocket connection 0: the server no longer has the chain's head",
        "resending with full input (on the same connection) after: gone",
    ]
    assert not step.over and not link.closed
    assert (slot.connection, slot.chain, slot.head_id) == (link, None, None)
    assert step.reusable() is link
    with step.attempt(link, reused=True) as attempt:
        assert attempt.plan.mode == "full"
        assert attempt.plan.frame["input"] == [*history(1), USER]
        assert "previous_response_id" not in attempt.plan.frame
        assert attempt.meter.connection_reused


@pytest.mark.parametrize(
    ("error", "resent"),
    [
        (
            llmkit.BadRequestError(
                "limit", status_code=400, code="websocket_connection_limit_reached"
            ),
            True,
        ),
        (llmkit.ConnectionClosed("idle", code=1001), False),
        (llmkit.ConnectionClosed("gone", code=1006), False),
        (llmkit.BadRequestError("bad", status_code=400, code="invalid_value"), False),
    ],
)
def test_every_other_failure_closes_the_connection(
    error: llmkit.LLMKitError, resent: bool, caplog: pytest.LogCaptureFixture
) -> None:
    link = Link()
    slot = Slot(0, link, chain(history(1)), "resp_1")
    step = turn(slot, body(*history(1), USER))
    with (
        caplog.at_level(logging.DEBUG, logger="llmkit"),
        contextlib.suppress(llmkit.LLMKitError),
        step.attempt(link, reused=True) as attempt,
    ):
        attempt.sent(Frames(received=1))
        fail(error)
    assert link.closed
    assert (slot.connection, slot.chain, slot.head_id) == (None, None, None)
    resends = [m for r in caplog.records if (m := r.getMessage()).startswith("resending")]
    assert resends == (
        [f"resending with full input (reconnecting) after: {error.message}"] * resent
    )


@pytest.mark.parametrize("extra", [0.0, 0.5])
def test_a_connection_up_to_max_age_is_reused(extra: float) -> None:
    link = Link(age=1.0 - extra)
    slot = Slot(0, link)
    assert turn(slot, max_age=1.0).reusable() is link
    assert not link.closed and slot.connection is link


def test_a_connection_past_max_age_is_dropped_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = Link(age=1.5)
    slot = Slot(0, link, chain(history(1)), "resp_1")
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        assert turn(slot, max_age=1.0).reusable() is None
    assert link.closed and (slot.connection, slot.chain, slot.head_id) == (None, None, None)
    messages = [r.getMessage() for r in caplog.records if r.name == "llmkit"]
    assert "closing WebSocket connection 0: connection older than 1.0 seconds" in messages


def test_a_probe_that_found_the_connection_closed_drops_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alive, dead = Link(), Link()
    kept, dropped = Slot(0, alive), Slot(1, dead)
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        assert turn(kept).alive(True) and not turn(dropped).alive(False)
    assert not alive.closed and kept.connection is alive
    assert dead.closed and dropped.connection is None
    messages = [r.getMessage() for r in caplog.records if r.name == "llmkit"]
    assert messages == ["closing WebSocket connection 1: connection found closed before sending"]


def test_a_refused_connect_sends_the_turn_over_http_and_starts_the_cool_down() -> None:
    gate = CooldownGate(Cooldown(initial=30.0))
    step = turn(Slot(0), gate=gate)
    error = llmkit.ConnectError("connection refused")
    assert step.connect_failed(error)
    assert (step.failure, step.over) == (Failure("connect", error), True)
    assert gate.active()
    assert gate.reason == f"{COOLING_DOWN} (ConnectError: connection refused)"
    assert step.fallback_reason() == (
        "could not connect over WebSocket: ConnectError: connection refused"
    )


def test_an_upgrade_refused_for_the_key_is_raised_and_starts_no_cool_down() -> None:
    gate = CooldownGate(Cooldown(initial=30.0))
    step = turn(Slot(0), gate=gate)
    assert not step.connect_failed(llmkit.AuthenticationError("no", status_code=401))
    assert (step.failure, step.over) == (None, False)
    assert not gate.active() and gate.reason == COOLING_DOWN


def test_a_new_connection_resets_the_cool_down_and_is_kept() -> None:
    gate = CooldownGate(Cooldown(initial=30.0))
    gate.failed("earlier")
    slot: Slot[Link] = Slot(0)
    link = Link()
    with turn(slot, gate=gate).attempt(link, reused=False) as attempt:
        for payload in [ev.created(), *ev.message_events("msg_1", ["ok"]), ev.completed()]:
            attempt.protocol.receive(payload)
    assert not gate.active()
    assert slot.connection is link and slot.head_id == "resp_1"


class Compared(dict[str, Any]):
    """An input item that counts how often it was compared."""

    count = 0

    def __eq__(self, other: object) -> bool:
        Compared.count += 1
        return dict.__eq__(self, other)

    __hash__ = dict.__hash__


def test_the_suffix_found_by_the_lease_is_the_one_sent() -> None:
    # Matching a request to a chain compares the whole history: once per turn, not twice.
    context = history(2)
    payload = body(*(Compared(item) for item in context), USER)
    Compared.count = 0
    slot = leased(payload, Link(), context)
    assert Compared.count == len(context)
    with turn(slot, payload).attempt(Link(), reused=True) as attempt:
        assert Compared.count == len(context)
        assert attempt.plan.frame["input"] == [USER]
        assert attempt.plan.frame["previous_response_id"] == "resp_1"


@pytest.mark.parametrize("warmup", [False, True])
def test_an_attempt_sends_the_plan_for_the_slots_chain(warmup: bool) -> None:
    slot = leased(body(*history(1), USER), Link(), history(1))
    with turn(slot, body(*history(1), USER), warmup=warmup).attempt(Link(), reused=True) as attempt:
        frame: dict[str, Any] = {"type": "response.create", "model": "m", "input": [USER]}
        if warmup:
            frame["generate"] = False
        frame["previous_response_id"] = "resp_1"
        assert attempt.plan.frame == frame
        assert json.loads(attempt.text) == frame
        meter = attempt.meter
        assert (meter.transport, meter.input_mode, meter.input_items_sent) == (
            "websocket",
            "incremental",
            1,
        )
        assert meter.connection_reused
        attempt.protocol.receive(ev.completed("resp_2"))


@pytest.mark.parametrize(
    "error", [llmkit.ConnectionClosed("gone", code=1006), asyncio.CancelledError()]
)
def test_a_response_that_did_not_complete_drops_the_connection(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    link = Link()
    slot: Slot[Link] = Slot(0, link, chain(history(1)), "resp_1")
    step = turn(slot)
    with (
        caplog.at_level(logging.DEBUG, logger="llmkit"),
        pytest.raises(type(error)),
        step.attempt(link, reused=True) as attempt,
    ):
        attempt.sent(Frames(received=2))
        raise error
    assert link.closed and (slot.connection, slot.chain, slot.head_id) == (None, None, None)
    assert not step.over
    messages = [r.getMessage() for r in caplog.records if r.name == "llmkit"]
    reason = "the response did not complete on this connection"
    assert messages[:2] == [
        f"closing WebSocket connection 0: {reason}",
        f"chain reset on WebSocket connection 0: {reason}",
    ]


def test_closing_the_pool_closes_idle_and_released_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slots, (idle, leased) = pool(2)
    assert slots.lease(body(USER)) is idle
    slots.release(idle)
    assert slots.lease(body(USER)) is leased
    idle.connection, leased.connection = Link(), Link()
    with caplog.at_level(logging.DEBUG, logger="llmkit"):
        slots.close()
        assert [slot.connection for slot in slots] == [None, None]
        leased.connection = Link()  # a connect that completed during the close
        slots.release(leased)
    assert [slot.connection for slot in slots] == [None, None]
    messages = [r.getMessage() for r in caplog.records if r.name == "llmkit"]
    assert messages == [
        "closing WebSocket connection 0: the provider was closed",
        "closing WebSocket connection 1: the provider was closed",
        "closing WebSocket connection 1: the provider was closed",
    ]


def test_a_message_too_big_falls_back_to_http() -> None:
    step = turn(Slot(0))
    error = llmkit.ConnectionClosed("too big", code=1009)
    with step.attempt(Link(), reused=False) as attempt:
        attempt.sent(Frames())
        fail(error)
    assert (step.failure, step.over) == (Failure("receive", error, events=0), True)
    assert step.fallback_reason() == (
        "the server closed the WebSocket with 1009 (request frame too big)"
    )


REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}]}


@pytest.mark.parametrize(("store", "kept"), [(None, False), (False, False), (True, True)])
def test_the_chain_holds_what_the_server_keeps_for_the_store_setting(
    store: bool | None, kept: bool
) -> None:
    # With store=false the server cannot resolve reasoning without its encrypted state:
    # the encoder leaves it out of a later full input, so the chain must too.
    payload = body(USER) if store is None else body(USER, store=store)
    slot: Slot[Link] = Slot(0)
    step = turn(slot, payload)
    events = [
        ev.created(),
        *ev.reasoning_events("rs_1", [["t"]]),
        *ev.message_events("msg_1", ["ok"], output_index=1),
        ev.completed(),
    ]
    with step.attempt(Link(), reused=False) as attempt:
        for event in events:
            attempt.protocol.receive(event)
    assert step.over and slot.head_id == "resp_1"
    assert slot.chain is not None
    assert slot.chain.context == ((USER, REASONING, ANSWER) if kept else (USER, ANSWER))


# --------------------------------------------------------------------------- warm-up


def finish(response_id: str, tokens: int) -> Finish:
    return Finish(
        llmkit.FinishReason.STOP,
        llmkit.Usage(input_tokens=tokens, total_tokens=tokens),
        llmkit.ResponseMetadata(response_id=response_id),
    )


def test_a_warmup_result_reports_the_last_finish() -> None:
    finishes = [finish("r1", 1), finish("r2", 2), finish("r3", 3)]
    result = turn(Slot(0), warmup=True).warmup_result(finishes)
    assert result == llmkit.WarmupResult(
        response_id="r3",
        usage=llmkit.Usage(input_tokens=3, total_tokens=3),
        transport="websocket",
    )


def test_a_warmup_that_failed_or_finished_nothing_is_skipped() -> None:
    step = turn(Slot(0), warmup=True)
    assert step.warmup_result([]) == llmkit.WarmupResult.skipped()
    step.connect_failed(llmkit.ConnectError("refused"))
    assert step.warmup_result([finish("r1", 1)]) == llmkit.WarmupResult.skipped()
