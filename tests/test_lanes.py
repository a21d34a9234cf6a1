"""Lane and fork planning (pure): where a WebSocket call goes, and what goes out.

`Sim` drives a `LanePool` the way a shell will, against a model of the server's
connection cache (PROTOCOL.md §5.2: per-lane heads, a head replaced when its lane's next
response ends), and checks every frame as it goes out: nothing chains on a response the
socket's cache does not hold, a chained frame carries exactly the new items, no lane has
two responses, no socket more than 16 in flight or 32 named lanes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import given, settings, strategies as st

from llmkit.messages import AssistantMessage, TextPart
from llmkit.openai._encode import render_output
from llmkit.openai._lanes import (
    STREAM_ID,
    STREAM_LIMIT_CODE,
    LanePool,
    Placement,
    Verdict,
    Wait,
)

JSON = dict[str, Any]
Mode = Literal["lanes", "refuse", "ignore"]


def user(text: str) -> JSON:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def body(*items: JSON, **settings: Any) -> JSON:
    return {"model": "m", "store": False, **settings, "input": list(items)}


def answer(text: str) -> AssistantMessage:
    return AssistantMessage((TextPart(text),))


@dataclass
class Sim:
    """A shell and a server around one `LanePool`; every send is checked."""

    pool: LanePool[str]
    mode: Mode = "lanes"
    contexts: dict[str, list[JSON]] = field(default_factory=dict)
    heads: dict[int, dict[str | None, str]] = field(default_factory=dict)
    live: list[Placement[str]] = field(default_factory=list)
    sent: list[Placement[str]] = field(default_factory=list)
    max_in_flight: int = 0
    sockets_seen: set[int] = field(default_factory=set)

    def place(self, request: JSON, **kw: Any) -> Placement[str] | Wait:
        placed = self.pool.place(request, **kw)
        if isinstance(placed, Placement):
            self._go(placed)
        return placed

    def hand_over(self, bodies: list[JSON]) -> tuple[int, Placement[str]] | None:
        handed = self.pool.hand_over(bodies)
        if handed is not None:
            self._go(handed[1])
        return handed

    def _go(self, p: Placement[str]) -> None:
        if p.connect:
            self.pool.connected(p.socket, f"connection {p.socket.number}")
        self.sockets_seen.add(p.socket.number)
        self.send(p)

    def send(self, p: Placement[str]) -> None:
        """The server receives ``p.frame``; checked against what it would hold."""
        frame, socket = p.frame, p.socket
        assert p not in self.live
        assert all(other.lane is not p.lane for other in self.live), "two on one lane"
        if "stream_id" in frame:
            assert frame["stream_id"] == p.stream_id
            assert STREAM_ID.fullmatch(frame["stream_id"])
        assert socket.named_used <= 32
        assert len([k for k in socket.lanes if k is not None]) <= 32
        prev = frame.get("previous_response_id")
        if prev is None:
            assert frame["input"] == list(p.body["input"])
        else:
            cache = self.heads.setdefault(socket.number, {})
            assert prev in cache.values(), "chained on a response the socket does not hold"
            assert self.contexts[prev] + frame["input"] == list(p.body["input"])
        self.live.append(p)
        self.sent.append(p)
        in_flight = sum(q.socket is socket for q in self.live)
        assert in_flight <= (16 if socket.capability in ("lanes", "unknown") else 1)
        self.max_in_flight = max(self.max_in_flight, in_flight)
        if self.mode == "refuse" and "stream_id" in frame:
            self.live.remove(p)
            verdict = self.pool.failed(p, "unsupported_parameter", "stream_id", before_output=True)
            assert verdict is Verdict.RESEND_WITHOUT_LANE
            self.send(p)

    def answer(self, p: Placement[str]) -> None:
        echo = p.frame.get("stream_id") if self.mode == "lanes" else None
        assert p.lane.current is p
        self.pool.answered(p, echo)

    def complete(self, p: Placement[str]) -> str:
        self.answer(p)
        rid = f"resp_{len(self.contexts)}"
        output = render_output(answer(rid), store=False)
        self.contexts[rid] = [*p.body["input"], *output]
        key = p.frame.get("stream_id") if self.mode == "lanes" else None
        self.heads.setdefault(p.socket.number, {})[key] = rid
        self.live.remove(p)
        self.pool.completed(p, rid, answer(rid))
        return rid


def next_input(sim: Sim, p: Placement[str], rid: str, text: str) -> JSON:
    return body(*sim.contexts[rid], user(text))


# -- the probe and what a server without lanes does ----------------------------------


def test_the_first_call_opens_a_socket_and_probes_lanes_on_a_named_lane() -> None:
    pool: LanePool[str] = LanePool(4)
    p = pool.place(body(user("a")))
    assert isinstance(p, Placement)
    assert p.connect and p.kind == "new" and p.mode == "full"
    assert p.stream_id == "lane-1" and p.frame["stream_id"] == "lane-1"
    assert p.previous_response_id is None
    socket = p.socket
    assert socket.capability == "unknown"
    waiting = pool.place(body(user("b")))
    assert isinstance(waiting, Wait), "no second socket before the probe is answered"
    pool.connected(p.socket, "c")
    pool.answered(p, "lane-1")
    assert p.socket.capability == "lanes", socket
    handed = pool.hand_over([body(user("b"))])
    assert handed is not None
    assert handed[0] == 0
    second = handed[1]
    assert second.socket is p.socket and second.stream_id == "lane-2" and not second.connect


def test_a_server_that_refuses_stream_id_gets_the_request_again_without_a_lane() -> None:
    pool: LanePool[str] = LanePool(2)
    p = pool.place(body(user("a")))
    assert isinstance(p, Placement)
    verdict = pool.failed(
        p, "unsupported_parameter", "stream_id", before_output=True, message="Unsupported"
    )
    assert verdict is Verdict.RESEND_WITHOUT_LANE
    assert p.socket.capability == "refused"
    assert "stream_id" not in p.frame and p.stream_id is None
    assert p.frame["input"] == [user("a")]
    assert list(p.socket.lanes) == [None]
    assert p.socket.lanes[None].current is p


def test_a_refused_probe_is_resent_on_its_open_socket_not_a_new_one() -> None:
    # The refusal came over the probe's socket: the resend must not open (and orphan)
    # another connection for the same socket.
    pool: LanePool[str] = LanePool(2)
    p = pool.place(body(user("a")))
    assert isinstance(p, Placement)
    opened = p.connect
    pool.connected(p.socket, "c")
    assert pool.failed(p, "unsupported_parameter", "stream_id", before_output=True) is (
        Verdict.RESEND_WITHOUT_LANE
    )
    assert (opened, p.connect, p.socket.connection) == (True, False, "c")


def test_a_lane_limit_on_the_probe_means_the_socket_holds_no_lanes() -> None:
    # Moving the request would leave a socket that is never probed again: every later
    # call would wait for its first answer.
    pool: LanePool[str] = LanePool(2)
    p = pool.place(body(user("a")))
    assert isinstance(p, Placement)
    pool.connected(p.socket, "c")
    verdict = pool.failed(p, STREAM_LIMIT_CODE, "stream_id", before_output=True)
    assert verdict is Verdict.RESEND_WITHOUT_LANE
    assert p.socket.capability == "refused" and "stream_id" not in p.frame
    other = pool.place(body(user("b")))
    assert isinstance(other, Placement) and other.connect


def test_a_refusal_is_also_read_from_the_message_but_not_after_output() -> None:
    pool: LanePool[str] = LanePool(2)
    p = pool.place(body(user("a")))
    assert isinstance(p, Placement)
    assert pool.failed(p, None, None, before_output=False, message="bad stream_id") is (
        Verdict.ENDED
    )
    q = pool.place(body(user("a")))
    assert isinstance(q, Placement)
    assert q.socket is p.socket and q.lane is p.lane, "the probe lane is probed again"
    assert pool.failed(q, None, None, before_output=True, message="bad stream_id") is (
        Verdict.RESEND_WITHOUT_LANE
    )


def test_a_server_that_ignores_stream_id_runs_the_socket_one_at_a_time() -> None:
    pool: LanePool[str] = LanePool(2)
    p = pool.place(body(user("a")))
    assert isinstance(p, Placement)
    pool.answered(p, None)
    assert p.socket.capability == "ignored"
    assert p.stream_id is None and p.socket.lanes[None].current is p
    other = pool.place(body(user("b")))
    assert isinstance(other, Placement)
    assert other.socket is not p.socket and other.connect
    pool.completed(p, "r1", answer("x"))
    again = pool.place(body(user("a"), *render_output(answer("x"), store=False), user("c")))
    assert isinstance(again, Placement)
    assert again.socket is p.socket and again.kind == "continue" and "stream_id" not in again.frame
    assert again.previous_response_id == "r1"


def test_without_lanes_every_socket_has_only_the_default_lane() -> None:
    sim = Sim(LanePool(2, lanes=False))
    a, b = sim.place(body(user("a"))), sim.place(body(user("b")))
    assert isinstance(a, Placement) and isinstance(b, Placement)
    assert a.socket.capability == "off" and a.socket is not b.socket
    assert a.stream_id is None and "stream_id" not in a.frame
    assert isinstance(sim.place(body(user("c"))), Wait)
    rid = sim.complete(a)
    p = sim.place(next_input(sim, a, rid, "more"))
    assert isinstance(p, Placement) and p.mode == "incremental" and p.socket is a.socket


def test_a_freed_socket_goes_first_to_the_waiter_whose_chain_it_holds() -> None:
    sim = Sim(LanePool(2, lanes=False))
    a, b = sim.place(body(user("a"))), sim.place(body(user("b")))
    assert isinstance(a, Placement) and isinstance(b, Placement)
    ra, rb = sim.complete(a), sim.complete(b)
    a2, b2 = sim.place(next_input(sim, a, ra, "a2")), sim.place(next_input(sim, b, rb, "b2"))
    assert isinstance(a2, Placement) and isinstance(b2, Placement)
    ra2 = sim.complete(a2)
    # both sockets busy again: a stranger and b's next turn wait; b2 frees b's socket
    c = sim.place(body(user("c")))
    assert isinstance(c, Placement)  # takes a's socket (LRU recycling), a's chain given up
    rb2 = sim.complete(b2)
    waiting = [next_input(sim, a2, ra2, "a3"), body(user("d")), next_input(sim, b2, rb2, "b3")]
    handed = sim.hand_over(waiting)
    assert handed is not None
    index, p = handed
    assert index == 2 and p.kind == "continue" and p.mode == "incremental"
    assert sim.pool.hand_over(waiting[:2]) is None


# -- placement on lanes ---------------------------------------------------------------


def lanes_sim(max_connections: int = 4, **kw: Any) -> Sim:
    return Sim(LanePool(max_connections, **kw))


def start(sim: Sim, text: str) -> tuple[Placement[str], str]:
    p = sim.place(body(user(text)))
    assert isinstance(p, Placement)
    return p, sim.complete(p)


def test_a_turn_goes_to_the_idle_lane_it_extends_with_only_the_new_items() -> None:
    sim = lanes_sim()
    first, rid = start(sim, "a")
    p = sim.place(next_input(sim, first, rid, "b"))
    assert isinstance(p, Placement)
    assert (p.kind, p.mode, p.lane, p.previous_response_id) == (
        "continue",
        "incremental",
        first.lane,
        rid,
    )
    assert p.frame["input"] == [user("b")] and p.frame["stream_id"] == first.stream_id


def test_a_call_extending_a_busy_head_forks_on_a_new_lane_of_the_same_socket() -> None:
    sim = lanes_sim()
    first, rid = start(sim, "parent")
    own = sim.place(next_input(sim, first, rid, "sub 1"))
    fork = sim.place(next_input(sim, first, rid, "sub 2"))
    assert isinstance(own, Placement) and isinstance(fork, Placement)
    assert own.kind == "continue" and fork.kind == "fork"
    assert fork.socket is first.socket and fork.lane is not first.lane
    assert fork.previous_response_id == rid and fork.frame["input"] == [user("sub 2")]
    rf = sim.complete(fork)
    assert fork.lane.head_id == rf and first.lane.chain is not None
    assert first.lane.chain.response_id == rid, "the parent lane keeps its own chain"
    p = sim.place(next_input(sim, fork, rf, "sub 2 again"))
    assert isinstance(p, Placement) and p.lane is fork.lane and p.kind == "continue"


def test_an_explicit_previous_response_id_goes_to_the_lane_holding_it() -> None:
    sim = lanes_sim()
    first, rid = start(sim, "a")
    start(sim, "other")
    p = sim.pool.place(body(user("b"), previous_response_id=rid))
    assert isinstance(p, Placement)
    assert p.lane is first.lane and p.frame["previous_response_id"] == rid
    assert p.frame["input"] == [user("b")]


def test_full_places_a_resend_on_no_chain() -> None:
    sim = lanes_sim()
    first, rid = start(sim, "a")
    p = sim.pool.place(next_input(sim, first, rid, "b"), full=True)
    assert isinstance(p, Placement)
    assert p.kind == "new" and p.mode == "full" and p.previous_response_id is None


def test_a_warmup_chain_takes_an_empty_suffix() -> None:
    sim = lanes_sim()
    warm = sim.pool.place(body(user("a")), warmup=True)
    assert isinstance(warm, Placement) and warm.frame["generate"] is False
    sim.pool.answered(warm, warm.stream_id)
    sim.pool.completed(warm, "warm", AssistantMessage(()))
    p = sim.pool.place(body(user("a")))
    assert isinstance(p, Placement)
    assert p.previous_response_id == "warm" and p.frame["input"] == [] and "generate" not in p.frame


def test_new_conversations_fill_the_least_loaded_socket_then_open_another() -> None:
    sim = lanes_sim(max_connections=2)
    first, _ = start(sim, "warm")
    placed = [sim.place(body(user(f"c{i}"))) for i in range(16)]
    assert all(isinstance(p, Placement) and p.socket is first.socket for p in placed[:16])
    seventeenth = sim.place(body(user("c16")))
    assert isinstance(seventeenth, Placement) and seventeenth.connect
    assert isinstance(sim.place(body(user("c17"))), Wait), "probe first"
    sim.answer(seventeenth)
    p = sim.place(body(user("c17")))
    assert isinstance(p, Placement) and p.socket is seventeenth.socket


def test_a_chained_call_waits_for_its_full_socket_rather_than_resend_in_full() -> None:
    sim = lanes_sim(max_connections=1)
    first, rid = start(sim, "a")
    for i in range(16):
        assert isinstance(sim.place(body(user(f"c{i}"))), Placement)
    nxt = next_input(sim, first, rid, "b")
    assert isinstance(sim.pool.place(nxt), Wait)
    assert isinstance(sim.pool.place(body(user("new"))), Wait)
    sim.complete(sim.live[0])
    handed = sim.hand_over([body(user("new")), nxt])
    assert handed is not None and handed[0] == 1 and handed[1].mode == "incremental"


def test_past_32_named_lanes_a_lane_is_reused_or_another_socket_opened() -> None:
    sim = lanes_sim(max_connections=1)
    for i in range(32):
        start(sim, f"c{i}")
    socket = sim.pool.sockets[0]
    assert socket.named_used == 32
    p, _ = start(sim, "c32")
    assert p.socket is socket and p.stream_id == "lane-1", "the least recently used id"
    assert socket.named_used == 32
    two = lanes_sim(max_connections=2)
    for i in range(32):
        start(two, f"c{i}")
    q = two.place(body(user("c32")))
    assert isinstance(q, Placement) and q.connect and q.socket is not two.pool.sockets[0]


def test_a_stream_limit_moves_the_request_and_caps_the_socket() -> None:
    sim = lanes_sim(max_connections=2)
    start(sim, "a")
    p = sim.pool.place(body(user("b")))
    assert isinstance(p, Placement) and p.stream_id == "lane-2"
    verdict = sim.pool.failed(p, STREAM_LIMIT_CODE, "stream_id", before_output=True)
    assert verdict is Verdict.MOVE
    assert p.socket.named_limit == 1 and "lane-2" not in p.socket.lanes
    q = sim.pool.place(body(user("b")))
    assert isinstance(q, Placement) and q.socket is not p.socket and q.connect


# -- failures -------------------------------------------------------------------------


def test_a_request_scoped_error_drops_only_that_lanes_chain() -> None:
    sim = lanes_sim()
    a, ra = start(sim, "a")
    b, rb = start(sim, "b")
    p = sim.place(next_input(sim, a, ra, "a2"))
    assert isinstance(p, Placement)
    sim.live.remove(p)
    assert sim.pool.failed(p, "server_error", None, before_output=False) is Verdict.ENDED
    assert a.lane.chain is None and a.lane.current is None
    assert b.lane.chain is not None
    again = sim.pool.place(next_input(sim, a, ra, "a2"))
    assert isinstance(again, Placement) and again.mode == "full"
    other = sim.pool.place(next_input(sim, b, rb, "b2"))
    assert isinstance(other, Placement) and other.mode == "incremental"


def test_a_socket_level_failure_fails_every_response_on_it_and_drops_every_chain() -> None:
    sim = lanes_sim()
    a, ra = start(sim, "a")
    b = sim.place(body(user("b")))
    c = sim.place(next_input(sim, a, ra, "a2"))
    assert isinstance(b, Placement) and isinstance(c, Placement)
    sim.pool.abandoned(b)
    socket = a.socket
    assert set(sim.pool.drop(socket)) == {b, c}
    assert sim.pool.sockets == [] and all(lane.chain is None for lane in socket.lanes.values())
    p = sim.pool.place(next_input(sim, a, ra, "a2"))
    assert isinstance(p, Placement) and p.connect and p.mode == "full"


def test_an_abandoned_lane_is_unusable_until_its_terminal_event() -> None:
    sim = lanes_sim(max_connections=1)
    a, ra = start(sim, "a")
    p = sim.place(next_input(sim, a, ra, "a2"))
    assert isinstance(p, Placement)
    sim.pool.abandoned(p)
    assert p.socket.in_flight == 1 and p.socket.lanes[p.stream_id].current is p
    q = sim.pool.place(next_input(sim, a, ra, "a2"))
    assert isinstance(q, Placement) and q.lane is not a.lane and q.mode == "full"
    sim.pool.completed(p, "ignored", answer("x"))  # a shell that forgot: still not recorded
    assert a.lane.chain is None and a.lane.current is None
    sim.pool.failed(q, None, None, before_output=False)
    r = sim.pool.place(body(user("z")))
    assert isinstance(r, Placement) and r.lane in (a.lane, q.lane)


def test_drained_frees_an_abandoned_lane() -> None:
    sim = lanes_sim()
    a, ra = start(sim, "a")
    p = sim.place(next_input(sim, a, ra, "a2"))
    assert isinstance(p, Placement)
    sim.pool.abandoned(p)
    sim.pool.drained(p)
    assert a.lane.current is None and p.socket.in_flight == 0


def test_a_failed_connect_returns_the_placement_and_the_next_call_opens_again() -> None:
    pool: LanePool[str] = LanePool(1)
    p = pool.place(body(user("a")))
    assert isinstance(p, Placement) and p.connect
    assert pool.drop(p.socket) == [p]
    q = pool.place(body(user("a")))
    assert isinstance(q, Placement) and q.connect and q.socket is not p.socket


def test_a_retired_socket_takes_nothing_new_and_closes_when_idle() -> None:
    sim = lanes_sim()
    a, ra = start(sim, "a")
    busy = sim.place(body(user("b")))
    assert isinstance(busy, Placement)
    sim.pool.retire(a.socket)
    assert not a.socket.closable
    p = sim.pool.place(next_input(sim, a, ra, "a2"))
    assert isinstance(p, Placement) and p.socket is not a.socket and p.mode == "full"
    sim.complete(busy)
    assert a.socket.closable


# -- the scenarios ------------------------------------------------------------


def run_agents(sim: Sim, agents: int, turns: int, seed: int) -> list[Placement[str]]:
    """``agents`` concurrent tool loops of ``turns`` turns, finishing in random order;
    returns each agent's turns 2.. placements."""
    rng = random.Random(seed)
    todo: dict[int, JSON] = {i: body(user(f"agent {i}")) for i in range(agents)}
    done = {i: 0 for i in range(agents)}
    owner: dict[int, int] = {}
    waiting: list[int] = []
    later: list[Placement[str]] = []

    def placed(i: int, p: Placement[str]) -> None:
        owner[id(p)] = i
        if done[i] > 0:
            later.append(p)

    for i in range(agents):
        p = sim.place(todo[i])
        placed(i, p) if isinstance(p, Placement) else waiting.append(i)
    while sim.live:
        p = rng.choice(sim.live)
        i = owner[id(p)]
        rid = sim.complete(p)
        done[i] += 1
        if done[i] < turns:
            todo[i] = next_input(sim, p, rid, f"tool output {i}.{done[i]}")
            waiting.append(i)
        while (handed := sim.hand_over([todo[w] for w in waiting])) is not None:
            placed(waiting.pop(handed[0]), handed[1])
    assert all(n == turns for n in done.values()) and not waiting
    return later


@pytest.mark.parametrize("seed", range(5))
def test_32_agents_by_6_turns_stay_incremental_on_at_most_two_sockets(seed: int) -> None:
    sim = lanes_sim()
    later = run_agents(sim, 32, 6, seed)
    assert len(later) == 32 * 5
    incremental = sum(p.mode == "incremental" for p in later)
    assert incremental / len(later) >= 0.99
    assert len(sim.sockets_seen) <= 2
    assert sim.max_in_flight >= 8


@pytest.mark.parametrize("mode", ["refuse", "ignore"])
def test_agents_against_a_server_without_lanes_stay_one_at_a_time(mode: Mode) -> None:
    sim = Sim(LanePool(4), mode=mode)
    run_agents(sim, 8, 3, seed=1)
    assert sim.max_in_flight == 1
    expected = "refused" if mode == "refuse" else "ignored"
    assert all(s.capability == expected for s in sim.pool.sockets)


def test_sub_agents_fork_from_the_parents_last_response_with_only_their_items() -> None:
    sim = lanes_sim()
    parent, rid = start(sim, "parent")
    for turn in range(2):
        p = sim.place(next_input(sim, parent, rid, f"parent tool {turn}"))
        assert isinstance(p, Placement) and p.mode == "incremental"
        parent, rid = p, sim.complete(p)
    subs = [sim.place(next_input(sim, parent, rid, f"sub {k}")) for k in range(4)]
    assert all(isinstance(s, Placement) for s in subs)
    firsts = [s for s in subs if isinstance(s, Placement)]
    assert [s.previous_response_id for s in firsts] == [rid] * 4
    assert [s.frame["input"] for s in firsts] == [[user(f"sub {k}")] for k in range(4)]
    assert [s.kind for s in firsts] == ["continue", "fork", "fork", "fork"]
    assert len({s.lane.stream_id for s in firsts}) == 4
    for k, s in enumerate(firsts):
        for turn in range(2):
            rs = sim.complete(s)
            nxt = sim.place(next_input(sim, s, rs, f"sub {k} tool {turn}"))
            assert isinstance(nxt, Placement) and nxt.mode == "incremental"
            s = nxt
        sim.complete(s)
    on = sim.place(next_input(sim, parent, rid, "parent goes on"))
    assert isinstance(on, Placement)  # checked by Sim.send: full, or chained correctly


# -- random interleavings -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    conversations=st.integers(1, 40),
    turns=st.integers(1, 4),
    max_connections=st.integers(1, 3),
    lanes=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_random_interleavings_keep_the_protocols_rules(
    conversations: int, turns: int, max_connections: int, lanes: bool, seed: int
) -> None:
    """Any order of completions: Sim.send checks each frame (one response per lane, at
    most 16 in flight and 32 lanes per socket, a chained suffix is exactly the new
    items, chained only on what the socket holds); every turn is served."""
    sim = Sim(LanePool(max_connections, lanes=lanes))
    later = run_agents(sim, conversations, turns, seed)
    assert len(later) == conversations * (turns - 1)
    if not lanes:
        assert sim.max_in_flight == 1


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), forks=st.integers(1, 20))
def test_random_forks_chain_only_on_held_heads(seed: int, forks: int) -> None:
    """Siblings extending random earlier responses: each goes out chained on a head the
    socket holds with exactly the items after it (Sim.send), or in full; on the base
    itself (only the new item) whenever a lane holds it."""
    rng = random.Random(seed)
    sim = lanes_sim(max_connections=2)
    first, rid = start(sim, "root")
    known = [(first, rid)]
    for k in range(forks):
        if sim.live and rng.random() < 0.4:
            p = rng.choice(sim.live)
            known.append((p, sim.complete(p)))
            continue
        base, base_id = rng.choice(known)
        held = any(lane.head_id == base_id for s in sim.pool.sockets for lane in s.lanes.values())
        placed = sim.place(next_input(sim, base, base_id, f"branch {k}"))
        if isinstance(placed, Placement) and held:  # the longest chain: only the new item
            assert placed.previous_response_id == base_id
            assert placed.frame["input"] == [user(f"branch {k}")]
