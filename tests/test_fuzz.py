"""Fuzzing: malformed, truncated and reordered event streams raise only llmkit errors.

Hypothesis starts from valid streams (recorded real Responses streams, the Chat streams
of compatible servers, and `events.py` sequences) and mutates them: events dropped,
duplicated, swapped or shuffled; payloads truncated, bit-flipped, padded with bytes that
are not UTF-8; JSON values swapped for the wrong type, keys removed, event types
confused; deep nesting, huge strings, ``[DONE]`` and unknown events anywhere.

The properties, for `ResponsesProtocol` and `ChatProtocol` fed payload by payload and for
`generate()` over HTTP-SSE (``httpx.MockTransport``) on both APIs:

* the only exceptions are `llmkit.LLMKitError` subclasses (never KeyError, TypeError,
  RecursionError, a pydantic ValidationError, ...), and each one carries ``partial``;
* an exception ends the response (`done`), `receive` after `done` returns ``[]`` and
  `finish` always ends it;
* every case is bounded (finite input; pytest-timeout guards against a hang).

Runs are derandomized and use no example database, so CI sees the same cases each time.
"""

from __future__ import annotations

import json
import random
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import events as ev
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import llmkit
from llmkit.openai import wire
from llmkit.openai.chat.protocol import ChatProtocol
from llmkit.openai.protocol import ResponsesProtocol
from llmkit.stream import StreamPart

DATA = Path(__file__).parent / "data"
Payload: TypeAlias = str | bytes
Protocol: TypeAlias = ResponsesProtocol | ChatProtocol

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Protocol-level fuzzing: cheap per case, so more of them."""

FUZZ_E2E = settings(FUZZ, max_examples=100, phases=[Phase.explicit, Phase.reuse, Phase.generate])
"""End to end through httpx, the SSE parser, the transport and the model. Not shrunk: a
shrink step replays a whole HTTP exchange, and the protocol-level fuzzers above already
shrink payload-level failures to a few events."""


# --------------------------------------------------------------------------- seeds


def sse_payloads(body: bytes) -> list[str]:
    """The ``data`` of each event of an SSE body (multi-line data joined with newlines)."""
    payloads: list[str] = []
    text = body.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        lines = [line[5:].removeprefix(" ") for line in block.split("\n") if line[:5] == "data:"]
        if lines:
            payloads.append("\n".join(lines))
    return payloads


def _small(path: Path) -> bool:
    return path.stat().st_size < 40_000


RECORDED_FILES = sorted(p for p in (DATA / "recorded").rglob("*.sse") if _small(p))
CHAT_FILES = sorted((DATA / "chat").glob("*.sse"))


def _synthetic_responses() -> list[list[str]]:
    """Tidy sequences for every kind of output item and every way a response ends."""
    usage = ev.usage(5, 7, cached_tokens=2, reasoning_tokens=1)
    message = ev.message_events("msg_1", ["Hel", "lo", " world"])
    call = ev.function_call_events("fc_1", "call_1", "add", ['{"a":', "1,", '"b":2}'], 1)
    reasoning = ev.reasoning_events("rs_1", [["think", "ing"], ["more"]], encrypted_content="e")
    cited = ev.message_events(
        "msg_2", ["See ", "this"], annotations=[ev.url_citation("https://127.0.0.1/x", "t")]
    )
    refusal = [
        ev.item_added(ev.message_item("msg_r", [], status="in_progress")),
        ev.content_part_added("msg_r", ev.refusal_part()),
        ev.refusal_delta("msg_r", "No."),
        ev.refusal_done("msg_r", "No."),
        ev.content_part_done("msg_r", ev.refusal_part("No.")),
        ev.item_done(ev.message_item("msg_r", [ev.refusal_part("No.")])),
    ]
    custom = [
        ev.item_added(ev.custom_tool_call_item("ct_1", "call_c", "grep")),
        ev.custom_input_delta("ct_1", "pat"),
        ev.custom_input_done("ct_1", "pat"),
        ev.item_done(ev.custom_tool_call_item("ct_1", "call_c", "grep", "pat")),
    ]
    raw_reasoning = [
        ev.item_added(ev.reasoning_item("rs_2")),
        ev.reasoning_text_delta("rs_2", "raw"),
        ev.reasoning_text_done("rs_2", "raw"),
        ev.item_done(ev.reasoning_item("rs_2", content=["raw"])),
    ]
    final_message = ev.message_item("msg_1", "Hello world")
    final_call = ev.function_call_item("fc_1", "call_1", "add", '{"a":1,"b":2}')
    start = [ev.created(), ev.in_progress()]
    return [
        ev.numbered([*start, *message, ev.completed(output=[final_message], usage=usage)]),
        ev.numbered([*start, *reasoning, *message, *call, ev.completed(usage=usage)]),
        ev.numbered([*start, *cited, ev.keepalive(), ev.completed(usage=usage)]),
        ev.numbered([*start, *refusal, *custom, *raw_reasoning, ev.completed()]),
        ev.numbered([*start, *message, ev.incomplete("max_output_tokens")]),
        ev.numbered([*start, *message, ev.failed("server_error", "boom")]),
        ev.numbered([*start, *call[:2], ev.error_nested("bad", "no", status=400)]),
        [ev.created(), ev.error_flat("rate_limit_exceeded", "slow down")],
        [ev.created(), *message, ev.response_done(status="completed")],
        # No events, only the final word: everything comes from the terminal output.
        [ev.completed(output=[final_message, final_call], usage=usage)],
    ]


RESPONSES_SEEDS: list[list[str]] = [
    *(sse_payloads(p.read_bytes()) for p in RECORDED_FILES),
    *_synthetic_responses(),
]
CHAT_SEEDS: list[list[str]] = [sse_payloads(p.read_bytes()) for p in CHAT_FILES]
RAW_RESPONSES = [p.read_bytes() for p in RECORDED_FILES]
RAW_CHAT = [p.read_bytes() for p in CHAT_FILES]

KNOWN_TYPES = sorted(wire.EVENT_MODELS)
DEEP = "\x00deep\x00"
"""Stands for a deep nesting that is spliced into the JSON text after `json.dumps`, since
a Python value that deep could not be serialised at all."""


# --------------------------------------------------------------------------- mutations


def nested(depth: int, kind: str) -> str:
    """JSON text nested ``depth`` deep: balanced lists, objects, or left open."""
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "0" + "}" * depth
    return '{"a":' * depth  # unterminated, as a cut-off attacker payload would be


DEPTHS = st.sampled_from([2, 64, 400, 1_000, 5_000, 100_000])
NEST_KINDS = st.sampled_from(["list", "object", "open"])

WRONG_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["\ud800", "\x00", "\u202e", "", " ", "null", "[DONE]"]),
    st.sampled_from(KNOWN_TYPES),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.none(), st.integers()), max_size=3),
    st.just({"type": "output_text", "text": 5}),
    st.just({"type": "message", "content": [{"type": "output_text"}]}),
    st.just("x" * 300_000),
    st.just(DEEP),
)
"""Values of the wrong type (or the right type with hostile content) for any field."""


def _pick_slot(data: st.DataObject, value: Any) -> tuple[dict[str, Any] | list[Any], Any] | None:
    """A (container, key) pair inside a decoded JSON value, reached by a random descent.

    Descending one level at a time reaches nested fields (an item's content part, a
    usage detail) as often as top-level ones.
    """
    slot: tuple[dict[str, Any] | list[Any], Any] | None = None
    current = value
    while isinstance(current, dict | list) and current:
        keys: list[Any] = list(current) if isinstance(current, dict) else list(range(len(current)))
        key = data.draw(st.sampled_from(keys))
        slot = (current, key)
        current = current[key]
        if data.draw(st.integers(0, 3)) == 0:
            break
    return slot


def _leaves(value: Any) -> list[tuple[dict[str, Any] | list[Any], Any]]:
    """Every (container, key) pair of a scalar inside a decoded JSON value."""
    leaves: list[tuple[dict[str, Any] | list[Any], Any]] = []
    stack: list[Any] = [value]
    while stack:
        current = stack.pop()
        pairs = current.items() if isinstance(current, dict) else enumerate(current)
        for key, child in pairs:
            if isinstance(child, dict | list) and child:
                stack.append(child)
            else:
                leaves.append((current, key))
    return leaves


def _dumps(value: Any, deep: str) -> str:
    return json.dumps(value).replace(json.dumps(DEEP), deep)


def _as_bytes(payload: Payload) -> bytes:
    return payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload


Mutation: TypeAlias = Callable[[st.DataObject, list[Payload]], list[Payload]]


def _index(data: st.DataObject, payloads: Sequence[Payload], extra: int = 0) -> int:
    return data.draw(st.integers(0, max(len(payloads) - 1 + extra, 0)))


def drop(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    if payloads:
        del payloads[_index(data, payloads)]
    return payloads


def cut_stream(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    return payloads[: _index(data, payloads, extra=1)]


def duplicate(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    if payloads:
        payloads.insert(_index(data, payloads, 1), payloads[_index(data, payloads)])
    return payloads


def swap(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    if payloads:
        i, j = _index(data, payloads), _index(data, payloads)
        payloads[i], payloads[j] = payloads[j], payloads[i]
    return payloads


def shuffle(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    seed = data.draw(st.integers(0, 2**32 - 1))
    random.Random(seed).shuffle(payloads)
    return payloads


def truncate(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    if payloads:
        i = _index(data, payloads)
        raw = _as_bytes(payloads[i])
        payloads[i] = raw[: data.draw(st.integers(0, len(raw)))]
    return payloads


def flip(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    if payloads:
        i = _index(data, payloads)
        raw = bytearray(_as_bytes(payloads[i]))
        if raw:
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] ^= data.draw(st.integers(1, 255))
        payloads[i] = bytes(raw)
    return payloads


def insert_bytes(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    if payloads:
        i = _index(data, payloads)
        raw = _as_bytes(payloads[i])
        at = data.draw(st.integers(0, len(raw)))
        junk = data.draw(
            st.one_of(
                st.binary(min_size=1, max_size=6),
                st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b'"', b"\\"]),
            )
        )
        payloads[i] = raw[:at] + junk + raw[at:]
    return payloads


def re_encode(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    """The same text in an encoding that is not UTF-8."""
    if payloads:
        i = _index(data, payloads)
        payload = payloads[i]
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        encoding = data.draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "cp500"]))
        payloads[i] = text.encode(encoding, "replace")
    return payloads


MARKERS: list[Payload] = ["[DONE]", b"[DONE]", " [DONE]", "", " ", "null", "[]", "{}", '"x"', "NaN"]


def insert_marker(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    marker = data.draw(st.sampled_from(MARKERS))
    payloads.insert(_index(data, payloads, 1), marker)
    return payloads


def insert_unknown(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    kind = data.draw(st.one_of(st.text(max_size=30), st.sampled_from(KNOWN_TYPES)))
    extra = data.draw(st.dictionaries(st.text(max_size=8), WRONG_VALUES, max_size=3))
    payloads.insert(_index(data, payloads, 1), _dumps({**extra, "type": kind}, "[]"))
    return payloads


def deep_payload(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    payloads.insert(_index(data, payloads, 1), nested(data.draw(DEPTHS), data.draw(NEST_KINDS)))
    return payloads


def mutate_json(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    """Replace a value with the wrong type, remove a key, or confuse the event type."""
    if not payloads:
        return payloads
    i = _index(data, payloads)
    try:
        value = json.loads(payloads[i])
    except (ValueError, RecursionError):
        return payloads
    slot = _pick_slot(data, value)
    if slot is None:
        return payloads
    container, key = slot
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "retype"]))
    if action == "delete":
        del container[key]
    elif action == "retype" and isinstance(value, dict):
        value["type"] = data.draw(st.sampled_from(KNOWN_TYPES))
    else:
        container[key] = data.draw(WRONG_VALUES)
    payloads[i] = _dumps(value, nested(data.draw(DEPTHS), data.draw(NEST_KINDS)))
    return payloads


def mutate_leaf(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    """Give one scalar field, anywhere in one event, a value of the wrong type."""
    if not payloads:
        return payloads
    i = _index(data, payloads)
    try:
        value = json.loads(payloads[i])
    except (ValueError, RecursionError):
        return payloads
    leaves = _leaves(value) if isinstance(value, dict | list) else []
    if leaves:
        container, key = leaves[data.draw(st.integers(0, len(leaves) - 1))]
        container[key] = data.draw(WRONG_VALUES)
        payloads[i] = _dumps(value, nested(data.draw(DEPTHS), data.draw(NEST_KINDS)))
    return payloads


def _items_of(value: Any) -> Any:
    """The output items an event carries (``item``, or the Response's ``output``)."""
    if not isinstance(value, dict):
        return None
    response = value.get("response")
    if isinstance(response, dict) and response.get("output"):
        return response["output"]
    return value.get("item") or value.get("choices") or None


def mutate_item(data: st.DataObject, payloads: list[Payload]) -> list[Payload]:
    """Give one field of an output item (or a Chat choice) a value of the wrong type.

    Items are where the nesting is: message content parts, reasoning summaries,
    tool-call fields; a uniform pick over a whole event rarely lands there.
    """
    decoded: list[tuple[int, Any]] = []
    for i, payload in enumerate(payloads):
        try:
            value = json.loads(payload)
        except (ValueError, RecursionError):
            continue
        if isinstance(_items_of(value), dict | list):
            decoded.append((i, value))
    if not decoded:
        return payloads
    i, value = decoded[data.draw(st.integers(0, len(decoded) - 1))]
    leaves = _leaves(_items_of(value))
    if leaves:
        container, key = leaves[data.draw(st.integers(0, len(leaves) - 1))]
        container[key] = data.draw(WRONG_VALUES)
        payloads[i] = _dumps(value, nested(data.draw(DEPTHS), data.draw(NEST_KINDS)))
    return payloads


STRUCTURE: list[Mutation] = [mutate_json, drop, duplicate, swap, shuffle, cut_stream]
HOSTILE: list[Mutation] = [
    insert_unknown,
    insert_marker,
    deep_payload,
    truncate,
    flip,
    insert_bytes,
    re_encode,
]
MUTATIONS: list[Mutation] = [*STRUCTURE, *STRUCTURE, mutate_leaf, mutate_item, *HOSTILE]
"""Structural mutations weigh more: a corrupted payload ends the response where it
stands, while valid JSON in the wrong place or shape walks the state machine further."""


def mutated(data: st.DataObject, seeds: Sequence[list[str]]) -> list[Payload]:
    """A seed stream with one to six mutations applied."""
    payloads: list[Payload] = list(data.draw(st.sampled_from(seeds), label="seed"))
    for mutation in data.draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=6)):
        payloads = mutation(data, payloads)
    data.draw(st.just([p if len(p) < 300 else f"<{len(p)} long>" for p in payloads]), "stream")
    return payloads


# --------------------------------------------------------------------------- properties


def check_error(error: llmkit.LLMKitError) -> None:
    """What every llmkit exception promises: a partial response, printable text."""
    assert isinstance(error.partial, llmkit.Response), f"{error!r} has no partial"
    assert isinstance(error.retryable, bool)
    texts = [str(error), repr(error), error.partial.text, repr(error.partial.message)]
    texts.append("".join(traceback.format_exception(error)))
    assert all(isinstance(text, str) for text in texts)


def drive(protocol: Protocol, payloads: Sequence[Payload]) -> list[StreamPart]:
    """Feed every payload, then `finish`; only llmkit errors may come out."""
    parts: list[StreamPart] = []
    for payload in payloads:
        if protocol.done:
            assert protocol.receive(payload) == []
            continue
        try:
            parts += protocol.receive(payload)
        except llmkit.LLMKitError as error:
            check_error(error)
            assert protocol.done, "an exception did not end the response"
    try:
        parts += protocol.finish()
    except llmkit.LLMKitError as error:
        check_error(error)
    assert protocol.done
    assert protocol.receive("[DONE]") == []
    assert protocol.receive(ev.created()) == []
    assert protocol.receive(b"\xff") == []
    assert isinstance(protocol.partial(), llmkit.Response)
    return parts


def test_the_seeds_are_valid_streams() -> None:
    """The fuzzers start from streams the protocols read (so mutations are what breaks)."""
    assert len(RECORDED_FILES) > 100 and len(CHAT_SEEDS) >= 10
    for payloads in _synthetic_responses():
        drive(ResponsesProtocol(), payloads)
    for payloads in CHAT_SEEDS:
        drive(ChatProtocol(), payloads)


@FUZZ
@given(data=st.data())
def test_responses_protocol_raises_only_llmkit_errors(data: st.DataObject) -> None:
    drive(ResponsesProtocol(), mutated(data, RESPONSES_SEEDS))


@FUZZ
@given(data=st.data())
def test_chat_protocol_raises_only_llmkit_errors(data: st.DataObject) -> None:
    drive(ChatProtocol(), mutated(data, CHAT_SEEDS))


@FUZZ
@given(data=st.data())
def test_chat_protocol_reads_responses_events_and_vice_versa(data: st.DataObject) -> None:
    """A server answering in the other API's shape: still only typed errors."""
    drive(ChatProtocol(), mutated(data, RESPONSES_SEEDS[-12:]))
    drive(ResponsesProtocol(), mutated(data, CHAT_SEEDS))


@FUZZ
@given(
    payloads=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.text(max_size=40),
            st.recursive(
                st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                lambda inner: st.one_of(
                    st.lists(inner, max_size=3),
                    st.dictionaries(st.sampled_from(["type", "delta", "item", "x"]), inner),
                ),
                max_leaves=8,
            ).map(json.dumps),
        ),
        max_size=8,
    )
)
def test_random_payloads_raise_only_llmkit_errors(payloads: list[Payload]) -> None:
    drive(ResponsesProtocol(), payloads)
    drive(ChatProtocol(), payloads)


# Cases the fuzzers found, kept as named regressions so each failure reads on its own.
MESSAGE_WITH_BAD_CONTENT = ev.item_done(
    {"type": "message", "id": "m", "content": [{"type": "output_text", "text": 5}]}
)
COMPLETED_WITH_BAD_CONTENT = ev.completed(
    output=[{"type": "message", "id": "m", "content": [{"type": "refusal", "refusal": []}]}]
)
REGRESSIONS: dict[str, list[Payload]] = {
    "deep-list": [ev.created(), "[" * 100_000],
    "deep-object-unterminated": [ev.created(), '{"a":' * 100_000],
    "deep-value-in-known-event": [
        ev.created(),
        ev.text_delta("m", "x")[:-1] + ', "extra": ' + nested(5_000, "list") + "}",
    ],
    "item-type-not-a-string": [ev.created(), ev.item_added({"type": [], "id": "x"})],
    "message-content-wrong-type": [ev.created(), MESSAGE_WITH_BAD_CONTENT],
    "terminal-output-content-wrong-type": [ev.created(), COMPLETED_WITH_BAD_CONTENT],
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
@pytest.mark.parametrize("make", [ResponsesProtocol, ChatProtocol], ids=["responses", "chat"])
def test_known_hostile_payloads_raise_typed_errors(name: str, make: Callable[[], Protocol]) -> None:
    protocol = make()
    with pytest.raises(llmkit.LLMKitError) as caught:
        for payload in REGRESSIONS[name]:
            protocol.receive(payload)
        protocol.finish()
    check_error(caught.value)
    assert protocol.done
    assert protocol.receive(ev.created()) == []


# --------------------------------------------------------------------------- end to end


CONTENT_TYPES = [
    "text/event-stream",
    "text/event-stream; charset=utf-8",
    "text/event-stream; charset=latin-1",
    "text/event-stream; charset=utf-16",
    "text/event-stream; charset=no-such-codec",
    "TEXT/EVENT-STREAM",
    "application/json",
    "",
]


def render_sse(data: st.DataObject, payloads: Sequence[Payload]) -> bytes:
    """Payloads as an SSE body, with the framing variations servers use."""
    newline = data.draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    blocks: list[bytes] = []
    for payload in payloads:
        lines = [b"data: " + line for line in _as_bytes(payload).split(b"\n")]
        extra = data.draw(
            st.lists(
                st.sampled_from(
                    [b": keep-alive", b"event: message", b"id: 7", b"retry: 10", b"data:", b"x"]
                ),
                max_size=2,
            )
        )
        blocks.append(newline.join([*extra, *lines]) + newline * 2)
    return b"".join(blocks)


def mutate_bytes(data: st.DataObject, body: bytes) -> bytes:
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(body)))
        match data.draw(st.sampled_from(["cut", "flip", "insert", "done"])):
            case "cut":
                body = body[:at]
            case "flip" if at < len(body):
                body = (
                    body[:at] + bytes([body[at] ^ data.draw(st.integers(1, 255))]) + body[at + 1 :]
                )
            case "insert":
                body = body[:at] + data.draw(st.binary(min_size=1, max_size=8)) + body[at:]
            case "done":
                body = body[:at] + b"\n\ndata: [DONE]\n\n" + body[at:]
    return body


def chunked(data: st.DataObject, body: bytes) -> list[bytes]:
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=12))))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


BREAKS: list[type[httpx.TransportError] | None] = [
    None,
    None,
    None,
    httpx.ReadError,
    httpx.ReadTimeout,
    httpx.RemoteProtocolError,
]


def answer(data: st.DataObject, seeds: Sequence[list[str]], raw: Sequence[bytes]) -> httpx.Response:
    """A random server answer: mostly a mutated event stream, sometimes an error status."""
    if data.draw(st.booleans()):
        body = data.draw(st.sampled_from(raw), label="recording")
    else:
        body = render_sse(data, mutated(data, seeds))
    body = mutate_bytes(data, body)
    status = data.draw(st.sampled_from([200] * 6 + [400, 401, 404, 422, 429, 500, 503]))
    if status != 200 and data.draw(st.booleans()):
        body = data.draw(
            st.sampled_from(
                [
                    b'{"error": {"message": "no", "code": 7, "param": [], "type": {}}}',
                    b'{"error": "plain"}',
                    b'{"error": null, "message": 5}',
                    b"[1, 2]",
                    nested(100_000, "list").encode(),
                    nested(900, "list").encode(),
                    b"\xff\xfe\x00",
                    b"",
                ]
            ),
            label="error body",
        )
    headers = {"content-type": data.draw(st.sampled_from(CONTENT_TYPES))}
    if data.draw(st.integers(0, 9)) == 0:
        headers["content-encoding"] = "gzip"  # but the body is not gzip
    chunks = chunked(data, body)
    broken = data.draw(st.sampled_from(BREAKS), label="break")

    def stream() -> Iterator[bytes]:
        yield from chunks
        if broken is not None:
            raise broken("the connection broke")

    return httpx.Response(status, headers=headers, content=stream())


def generate(
    response: httpx.Response, *, use_responses_api: bool
) -> llmkit.Response | llmkit.LLMKitError:
    """One `generate` against ``response``: the response, or the llmkit error it raised.

    Nothing is swallowed: each caller asserts the outcome it expects, and an exception
    outside the llmkit tree fails the test here.
    """

    def handler(request: httpx.Request) -> httpx.Response:
        return response

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        provider = llmkit.Provider(
            use_responses_api=use_responses_api,
            api_key="sk-fuzz",
            base_url="http://127.0.0.1:9/v1",
            http_client=client,
            max_retries=0,
        )
        with provider:
            model = provider.language_model("gpt-fuzz")
            try:
                return model.generate(llmkit.Call("fuzz"))
            except llmkit.LLMKitError as error:
                return error


def check_outcome(outcome: llmkit.Response | llmkit.LLMKitError) -> None:
    """What a random answer may give: a finished response, or a well-formed llmkit error."""
    if isinstance(outcome, llmkit.LLMKitError):
        check_error(outcome)
        return
    assert outcome.finish_reason is not llmkit.FinishReason.UNKNOWN
    assert isinstance(outcome.text, str)


@FUZZ_E2E
@given(data=st.data())
def test_generate_over_sse_raises_only_llmkit_errors_responses(data: st.DataObject) -> None:
    check_outcome(generate(answer(data, RESPONSES_SEEDS, RAW_RESPONSES), use_responses_api=True))


@FUZZ_E2E
@given(data=st.data())
def test_generate_over_sse_raises_only_llmkit_errors_chat(data: st.DataObject) -> None:
    check_outcome(generate(answer(data, CHAT_SEEDS, RAW_CHAT), use_responses_api=False))


# Cases the end-to-end fuzzers found, kept as named regressions.


def _text_body(use_responses_api: bool, text: str) -> bytes:
    """A whole SSE answer whose text is ``text``, raw in the JSON (not ``\\u``-escaped),
    so the body's bytes are its UTF-8 encoding."""
    if use_responses_api:
        payloads = [
            ev.created(),
            *ev.message_events("msg_1", ["@@"]),
            ev.completed(output=[ev.message_item("msg_1", "@@")]),
        ]
    else:
        chat = sse_payloads((DATA / "chat" / "openai-text-usage.sse").read_bytes())
        payloads = [
            p.replace('"content":"Hello"', '"content":"@@"')
            .replace('"content":" there"', '"content":""')
            .replace('"content":"!"', '"content":""')
            for p in chat
        ]
    return b"".join(b"data: " + p.replace("@@", text).encode() + b"\n\n" for p in payloads)


@pytest.mark.parametrize("use_responses_api", [True, False], ids=["responses", "chat"])
@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "no-such-charset"])
def test_a_declared_charset_is_ignored_and_the_body_is_read_as_utf8(
    use_responses_api: bool, charset: str
) -> None:
    """SSE is UTF-8 whatever the header says (the documented rule, `SSEDecoder`), so a
    body in UTF-8 under another declared charset reads exactly as sent."""
    body = _text_body(use_responses_api, "h\u00e9llo \u2603")
    headers = {"content-type": f"text/event-stream; charset={charset}"}
    outcome = generate(
        httpx.Response(200, headers=headers, content=body), use_responses_api=use_responses_api
    )
    assert isinstance(outcome, llmkit.Response), outcome
    assert outcome.text == "h\u00e9llo \u2603"


@pytest.mark.parametrize("use_responses_api", [True, False], ids=["responses", "chat"])
def test_bytes_that_are_not_utf8_become_replacement_characters(use_responses_api: bool) -> None:
    body = _text_body(use_responses_api, "hel~lo").replace(b"~", b"\xff\xfe")
    headers = {"content-type": "text/event-stream; charset=utf-16"}
    outcome = generate(
        httpx.Response(200, headers=headers, content=body), use_responses_api=use_responses_api
    )
    assert isinstance(outcome, llmkit.Response), outcome
    assert outcome.text == "hel\ufffd\ufffdlo"


@pytest.mark.parametrize("use_responses_api", [True, False], ids=["responses", "chat"])
def test_a_lone_surrogate_in_a_delta_does_not_poison_the_next_request(
    use_responses_api: bool,
) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``); a response holding one is sent
    back as history on the next turn, which must then not fail outside the llmkit tree."""
    if use_responses_api:
        text = "a\ud800b"
        payloads = [
            ev.created(),
            *ev.message_events("msg_1", [text]),
            ev.completed(output=[ev.message_item("msg_1", text)]),
        ]
    else:
        chat = sse_payloads((DATA / "chat" / "openai-text-usage.sse").read_bytes())
        payloads = [p.replace('"content":"Hello"', '"content":"a\\ud800b"') for p in chat]
    body = b"".join(b"data: " + p.encode() + b"\n\n" for p in payloads)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        llmkit.Provider(
            use_responses_api=use_responses_api,
            api_key="sk-fuzz",
            base_url="http://127.0.0.1:9/v1",
            http_client=client,
            max_retries=0,
        ) as provider,
    ):
        model = provider.language_model("gpt-fuzz")
        first = model.generate(llmkit.Call("hi"))
        assert "\ud800" in first.text  # accepted as sent: the JSON was valid
        history: list[llmkit.Message] = [
            llmkit.UserMessage("hi"),
            first.message,
            llmkit.UserMessage("again"),
        ]
        again = model.generate(llmkit.Call(history))  # sent as JSON escapes: no error
        assert again.text == first.text  # the mock server answers the same body
