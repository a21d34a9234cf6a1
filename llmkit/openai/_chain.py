"""Pure chain planning for Responses WebSocket mode: when a turn may send only a delta.

A connection's server-side cache holds the most recent response it produced (with
``store=false`` nothing else). After a response reaches ``completed``/``incomplete`` the
connection records a `Chain`: the request minus ``input``, the full input sent, and the
response's output items as the encoder renders them. The next request may then send
``previous_response_id`` and only the new items, but only when that is provably the same
conversation (the Codex rule, PROTOCOL.md §3.4):

* every non-input field is equal, and
* the new full input == previous input + previous output + suffix.

Otherwise the full input goes out without ``previous_response_id``. Items are compared,
never counted. A warm-up's chain has no output, so the next turn's suffix may be empty.

"Every non-input field" includes whatever ``extra_body`` merged into the body: a changed
raw field is another request, so it goes out in full.

Server-side compaction (``context_management``) needs no rule of its own. A compacting
response's output holds a ``compaction`` item, and the server's head then holds the
compacted context (that item stands for everything before it), no longer those items.
The chain still records the full input plus the output, compaction item included, exactly
as the caller's history replays it (a `ProviderItemPart`, verbatim), and a delta is sent
only when the new input is that history plus new items. Both ways of sending that history
are then the API's own patterns for compaction (PROTOCOL.md §3.3, OpenAI's compaction
guide): a full resend is "stateless input-array chaining" (output items appended as
usual, compaction items included; dropping the items before the latest one is only a
latency tip), and a delta on the head is "``previous_response_id`` chaining", which
continues the compacted context and must not prune. So what the server's head holds and
what the client would resend differ in form only, never in meaning. llmkit never prunes;
a caller who does edits the history, which then no longer extends the chain and goes out
in full, as any edit does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Chain",
    "Continuation",
    "Plan",
    "compared_settings",
    "continuation",
    "plan_request",
    "record_chain",
    "warmup_prepared",
]

JSON = dict[str, Any]
# Fields that describe this one request's delivery, not the conversation.
_NOT_COMPARED = frozenset({"input", "previous_response_id", "stream", "generate"})


@dataclass(frozen=True, slots=True)
class Chain:
    """What a connection's cache head is known to contain."""

    response_id: str
    settings: Mapping[str, Any]
    """The request body minus the fields in ``_NOT_COMPARED``."""
    context: tuple[JSON, ...]
    """Full input sent, followed by the response's output items as the encoder renders them."""


@dataclass(frozen=True, slots=True)
class Continuation:
    """A request that provably continues ``chain``: only ``suffix`` is new (`continuation`)."""

    chain: Chain
    suffix: tuple[JSON, ...]
    """The items of the request's input after ``chain.context``."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How to send one request on a connection."""

    frame: JSON
    """The ``response.create`` frame, ``type`` included."""
    full_input: tuple[JSON, ...]
    """The whole input of this turn, for recording the chain afterwards."""
    mode: Literal["full", "incremental"]
    items_sent: int


def _settings(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _NOT_COMPARED}


def plan_request(
    body: Mapping[str, Any], continued: Continuation | None, *, warmup: bool = False
) -> Plan:
    """Decide what to send for ``body`` on a connection, given how it continues the
    connection's cache head (``continued``, from `continuation`; None: it does not).

    The suffix is found once, when the connection is chosen for ``body`` (`continuation`),
    and reused here. An explicit ``previous_response_id`` in ``body`` (a caller's own
    chaining) is sent as it is and never mixed with a chain.
    """
    full_input = tuple(body["input"])
    frame: JSON = {"type": "response.create", **_settings(body), "input": list(full_input)}
    if warmup:
        frame["generate"] = False
    explicit = body.get("previous_response_id")
    if explicit is not None:
        frame["previous_response_id"] = explicit
        return Plan(frame, full_input, "incremental", len(full_input))
    if continued is None:
        return Plan(frame, full_input, "full", len(full_input))
    frame["previous_response_id"] = continued.chain.response_id
    frame["input"] = list(continued.suffix)
    return Plan(frame, full_input, "incremental", len(continued.suffix))


def continuation(
    body: Mapping[str, Any], chain: Chain, settings: Mapping[str, Any] | None = None
) -> Continuation | None:
    """How ``body`` continues the conversation whose cache head is ``chain``; None when
    it does not provably continue it, or names its own ``previous_response_id``.

    ``settings``: ``body``'s compared fields, when the caller tries many chains for one
    body (lanes). The cheap checks come first: most chains a body is tried against
    belong to other conversations, whose first item already differs.
    """
    full_input, prefix = body["input"], chain.context
    size = len(prefix)
    if len(full_input) < size or (size and full_input[0] != prefix[0]):
        return None
    if body.get("previous_response_id") is not None:
        return None
    if (_settings(body) if settings is None else settings) != chain.settings:
        return None
    if tuple(full_input[:size]) != prefix:
        return None
    return Continuation(chain, tuple(full_input[size:]))


def compared_settings(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``body`` a chain is compared on (all but the input), for
    `continuation`'s ``settings``."""
    return _settings(body)


def record_chain(
    body: Mapping[str, Any],
    plan: Plan,
    response_id: str | None,
    output_items: Sequence[JSON],
) -> Chain | None:
    """The chain a connection holds after ``plan`` completed with ``output_items``.

    None when the turn cannot be verified later: no response id, or the caller chained
    by hand (the full context of an explicit ``previous_response_id`` is unknown here).
    """
    if response_id is None or body.get("previous_response_id") is not None:
        return None
    return Chain(response_id, _settings(body), (*plan.full_input, *output_items))


def warmup_prepared(body: Mapping[str, Any], input_tokens: int) -> bool:
    """Whether a completed warm-up of ``body`` prepared a head the next turn may chain on.

    The real service bills a warm-up's input (PROTOCOL.md §4: input tokens > 0, 0
    output), so a warm-up of a non-empty input that reports 0 input tokens (or no usage)
    was answered by something that kept nothing: LiteLLM's WebSocket relay answers
    ``generate: false`` itself with a synthetic ``resp_warmup_…`` id. Chaining on that id
    would send the next turn with no context and get a wrong answer. A warm-up of an
    empty input has nothing to prepare, and counts.

    Generated turns get no such check, for want of a sound rule: the client cannot count
    an item's tokens (the tokenizer, the chat template and the tool and instruction
    overhead are the server's and differ by model), gateways and Azure report usage in
    their own ways (some leave it out of streamed answers, some count only uncached
    tokens), and a chained turn may legitimately report fewer input tokens than a naive
    estimate of its new items. A threshold would be a guess that raises on correct
    answers; only the warm-up's 0-for-something is certain.
    """
    return not body.get("input") or input_tokens > 0
