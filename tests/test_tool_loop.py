"""`ToolLoop` and `tool`: the same agent over every path, against the local server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from loop import TRANSPORTS, Transport, provider
from pydantic import Field

import llmkit
from llmkit.testing import ResponsesServer


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Longer text the model does not need.
    """
    return a + b


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Transport:
    # The Transport itself, not its text: it says which provider runs the test.
    assert isinstance(request.param, Transport)
    return request.param


@pytest.fixture
def model(server: ResponsesServer, transport: str) -> Iterator[llmkit.LanguageModel]:
    with provider(server, transport) as p:
        yield p.language_model("scripted")


def test_the_loop_reaches_the_answer(
    model: llmkit.LanguageModel, server: ResponsesServer, transport: str
) -> None:
    loop = llmkit.ToolLoop(model, [add], max_steps=10)
    result = loop.run("Sum 1..5 with add [steps=5]")
    assert result.text.startswith("The answer is 15.")
    assert result.finished
    assert [len(step.results) for step in result.steps] == [1, 1, 1, 1, 1, 0]
    assert [step.number for step in result.steps] == [1, 2, 3, 4, 5, 6]
    assert [r.output for step in result.steps for r in step.results] == ["1", "3", "6", "10", "15"]
    assert isinstance(result.history[-1], llmkit.AssistantMessage)
    assert len(result.history) == 1 + 5 * 2 + 1
    assert result.warmup is None
    assert server.stats.generations == 6
    assert server.stats.context_violations == 0
    modes = {step.metadata.input_mode for step in result.steps[1:]}
    assert modes == ({"incremental"} if transport == "websocket" else {"full"})
    assert loop.history == list(result.history)


def test_a_warm_up_first(
    model: llmkit.LanguageModel, server: ResponsesServer, transport: str
) -> None:
    result = llmkit.ToolLoop(model, [add], warmup=True).run("Sum [steps=2]")
    assert result.text.startswith("The answer is 3.")
    assert result.warmup is not None
    if transport == "websocket":
        assert result.warmup.transport == "websocket"
        assert server.stats.warmups == 1
        assert result.steps[0].metadata.input_mode == "incremental"
    else:
        assert result.warmup == llmkit.WarmupResult.skipped()
        assert server.stats.warmups == 0


def test_a_failing_tool_becomes_an_error_result_the_model_sees(
    model: llmkit.LanguageModel,
) -> None:
    def add(a: int, b: int) -> int:
        raise RuntimeError("the adder is broken")

    result = llmkit.ToolLoop(model, [add]).run("Sum [steps=1]")
    (step, final) = result.steps
    assert step.results == (
        llmkit.ToolResult(
            step.response.tool_calls[0].call_id, "Error: RuntimeError: the adder is broken", True
        ),
    )
    assert final.response.text.startswith("The answer is Error: RuntimeError: the adder is broken.")


def test_arguments_that_break_the_hints_are_an_error_result(model: llmkit.LanguageModel) -> None:
    @llmkit.tool(name="add")
    def positive_add(a: Annotated[int, Field(gt=0)], b: int) -> int:
        return a + b

    result = llmkit.ToolLoop(model, [positive_add]).run("Sum [steps=1]")
    output = result.steps[0].results[0].output
    assert output.startswith("Error: invalid arguments: a:")
    assert "greater than 0" in output
    assert result.finished


def test_a_call_to_a_tool_without_implementation_is_an_error_result(
    model: llmkit.LanguageModel,
) -> None:
    ghost = llmkit.FunctionTool("ghost", "Not implemented here.")
    call = llmkit.Call("Use tools [steps=2]", tools=[ghost])
    result = llmkit.ToolLoop(model, [add]).run(call)
    first, second = (step.results[0].output for step in result.steps[:2])
    assert first == "Error: no tool named 'ghost' (tools: add)"
    assert not second.startswith("Error")  # round robin: the second step calls add
    assert result.finished


def test_max_steps_stops_a_loop_that_still_calls_tools(model: llmkit.LanguageModel) -> None:
    loop = llmkit.ToolLoop(model, [add], max_steps=2)
    result = loop.run("Sum [steps=5]")
    assert not result.finished
    assert len(result.steps) == 2
    assert isinstance(result.history[-1], llmkit.ToolMessage)
    assert result.response.tool_calls


def test_callbacks_see_parts_and_steps(model: llmkit.LanguageModel) -> None:
    parts: list[llmkit.StreamPart] = []
    steps: list[llmkit.ToolLoopStep] = []
    result = llmkit.ToolLoop(model, [add]).run(
        "Sum [steps=2]", on_part=parts.append, on_step=steps.append
    )
    assert steps == list(result.steps)
    text = "".join(p.delta for p in parts if isinstance(p, llmkit.TextDelta))
    assert text == result.text
    assert sum(isinstance(p, llmkit.Finish) for p in parts) == 3


def test_a_model_failure_keeps_the_loop_state(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    loop = llmkit.ToolLoop(model, [add])

    def fail_next_turn(step: llmkit.ToolLoopStep) -> None:
        server.faults.fail_next(code="server_error", message="boom")

    with pytest.raises(llmkit.LLMKitError) as caught:
        loop.run("Sum [steps=3]", on_step=fail_next_turn)
    assert caught.value.partial is not None
    assert len(loop.steps) == 1
    assert [type(m) for m in loop.history] == [
        llmkit.UserMessage,
        llmkit.AssistantMessage,
        llmkit.ToolMessage,
    ]
    result = llmkit.ToolLoop(model, [add]).run("Sum [steps=3]")  # the model is fine after
    assert result.text.startswith("The answer is 6.")


def test_the_call_settings_apply_to_every_step(
    model: llmkit.LanguageModel, server: ResponsesServer
) -> None:
    call = llmkit.Call("Sum [steps=2]", tool_choice="auto", temperature=0.5, top_p=0.9)
    assert llmkit.ToolLoop(model, [add]).run(call).finished
    assert server.stats.generations == 3


# ------------------------------------------------------------------- tool declarations


def test_schema_and_description_come_from_hints_and_docstring() -> None:
    assert add.spec == llmkit.FunctionTool(
        "add",
        "Add two integers.",
        {
            "additionalProperties": False,
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "type": "object",
        },
    )
    assert add('{"a": 2, "b": "3"}') == "5"  # validated and converted


def test_explicit_declarations() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}

    @llmkit.tool(name="lookup", description="Look up.", parameters=schema, strict=False)
    def find(**kwargs: Any) -> dict[str, Any]:
        return {"found": kwargs}

    assert find.spec == llmkit.FunctionTool("lookup", "Look up.", schema, strict=False)
    assert find('{"q": "x"}') == '{"found":{"q":"x"}}'
    assert find("") == '{"found":{}}'
    assert find.name == "lookup"


@pytest.mark.parametrize(
    ("arguments", "match"), [("{nope", "not valid JSON"), ("[1]", "JSON object")]
)
def test_bad_argument_json_raises_value_error(arguments: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        add(arguments)


def test_declarations_that_cannot_work_are_usage_errors() -> None:
    class Opaque:
        pass

    def varargs(*numbers: int) -> int:
        return sum(numbers)

    def opaque(thing: Opaque) -> str:
        return "x"

    with pytest.raises(llmkit.UsageError, match="name"):
        llmkit.tool(lambda: 1)
    with pytest.raises(llmkit.UsageError, match="named"):
        llmkit.tool(varargs)
    with pytest.raises(llmkit.UsageError, match="JSON schema"):
        llmkit.tool(opaque)


def test_loop_configuration_errors(server: ResponsesServer) -> None:
    with provider(server, "chat") as p:
        model = p.language_model("scripted")
        with pytest.raises(llmkit.UsageError, match="max_steps"):
            llmkit.ToolLoop(model, [add], max_steps=0)
        with pytest.raises(llmkit.UsageError, match="two tools"):
            llmkit.ToolLoop(model, [add, add])
        with pytest.raises(llmkit.UsageError, match="already declares"):
            llmkit.ToolLoop(model, [add]).run(llmkit.Call("x", tools=[add.spec]))
        plain = llmkit.ToolLoop(model, [lambda_free_add])
        assert plain.tools["lambda_free_add"].spec.description == "Plain function, no decorator."
    assert server.stats.requests == []


def lambda_free_add(a: int, b: int) -> int:
    """Plain function, no decorator."""
    return a + b
