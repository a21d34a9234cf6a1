"""Chain planning (pure): a delta is sent only when it provably continues the chain."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st

from llmkit.openai._chain import Chain, Continuation, continuation, plan_request, record_chain

USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
CALL = {"type": "function_call", "call_id": "c1", "name": "add", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "c1", "output": "3"}
ANSWER = {
    "type": "message",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "3", "annotations": []}],
}


def body(*items: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"model": "m", "store": False, **settings, "input": list(items)}


def chain_after(first: dict[str, Any], output: list[dict[str, Any]]) -> Chain:
    plan = plan_request(first, None)
    chain = record_chain(first, plan, "resp_1", output)
    assert chain is not None
    return chain


def plan_on(body: dict[str, Any], chain: Chain) -> Any:
    """The plan for ``body`` on a connection whose cache head is ``chain``."""
    return plan_request(body, continuation(body, chain))


def test_first_turn_sends_the_full_input_without_an_id() -> None:
    plan = plan_request(body(USER), None)
    assert plan.mode == "full"
    assert plan.items_sent == 1
    assert plan.frame == {"type": "response.create", "model": "m", "store": False, "input": [USER]}


def test_a_continuation_sends_only_the_suffix_with_the_previous_id() -> None:
    chain = chain_after(body(USER), [CALL])
    assert continuation(body(USER, CALL, OUTPUT), chain) == Continuation(chain, (OUTPUT,))
    plan = plan_on(body(USER, CALL, OUTPUT), chain)
    assert plan.mode == "incremental"
    assert plan.frame["previous_response_id"] == "resp_1"
    assert plan.frame["input"] == [OUTPUT]
    assert plan.items_sent == 1
    assert plan.full_input == (USER, CALL, OUTPUT)


def test_after_a_warmup_the_same_input_is_an_empty_delta() -> None:
    first = body(USER)
    warm = plan_request(first, None, warmup=True)
    assert warm.frame["generate"] is False
    chain = record_chain(first, warm, "resp_warm", [])
    assert chain is not None
    plan = plan_on(first, chain)
    assert plan.frame["input"] == []
    assert plan.frame["previous_response_id"] == "resp_warm"
    assert "generate" not in plan.frame


@pytest.mark.parametrize(
    ("settings", "items"),
    [
        pytest.param({"model": "other"}, (USER, CALL, OUTPUT), id="model changed"),
        pytest.param({"tools": [{"type": "function"}]}, (USER, CALL, OUTPUT), id="tools added"),
        pytest.param({"instructions": "be terse"}, (USER, CALL, OUTPUT), id="instructions"),
        pytest.param({}, (USER, OUTPUT), id="previous output dropped"),
        pytest.param({}, (CALL, USER, OUTPUT), id="reordered"),
        pytest.param({}, (USER,), id="shorter history"),
        pytest.param({}, ({**USER, "content": []}, CALL, OUTPUT), id="edited prefix"),
    ],
)
def test_anything_but_a_pure_extension_sends_the_full_input(
    settings: dict[str, Any], items: tuple[dict[str, Any], ...]
) -> None:
    chain = chain_after(body(USER), [CALL])
    new = body(*items, **settings)
    assert continuation(new, chain) is None
    plan = plan_on(new, chain)
    assert plan.mode == "full"
    assert "previous_response_id" not in plan.frame
    assert plan.frame["input"] == list(items)


def test_an_explicit_previous_response_id_is_sent_as_is_and_never_mixed() -> None:
    chain = chain_after(body(USER), [CALL])
    explicit = body(USER, CALL, OUTPUT, previous_response_id="resp_mine")
    plan = plan_request(explicit, Continuation(chain, (OUTPUT,)))  # never mixed with a chain
    assert plan.frame["previous_response_id"] == "resp_mine"
    assert plan.frame["input"] == [USER, CALL, OUTPUT]
    assert (plan.mode, plan.items_sent, plan.full_input) == ("incremental", 3, (USER, CALL, OUTPUT))
    assert continuation(explicit, chain) is None
    assert record_chain(explicit, plan, "resp_2", [ANSWER]) is None


def test_no_chain_without_a_response_id() -> None:
    first = body(USER)
    assert record_chain(first, plan_request(first, None), None, [ANSWER]) is None


def test_transport_fields_do_not_break_a_chain() -> None:
    chain = chain_after(body(USER, stream=True), [CALL])
    assert continuation(body(USER, CALL, OUTPUT), chain) == Continuation(chain, (OUTPUT,))


ITEMS = st.sampled_from([USER, CALL, OUTPUT, ANSWER])


@given(
    first=st.lists(ITEMS, min_size=1, max_size=4),
    output=st.lists(ITEMS, max_size=3),
    second=st.lists(ITEMS, max_size=8),
    same_model=st.booleans(),
)
def test_a_delta_always_means_exactly_the_full_input(
    first: list[dict[str, Any]],
    output: list[dict[str, Any]],
    second: list[dict[str, Any]],
    same_model: bool,
) -> None:
    chain = chain_after(body(*first), output)
    new = body(*second, model="m" if same_model else "n")
    plan = plan_on(new, chain)
    if plan.mode == "incremental":
        assert (*chain.context, *plan.frame["input"]) == tuple(second)
        assert same_model
    else:
        assert plan.frame["input"] == second
        assert "previous_response_id" not in plan.frame
