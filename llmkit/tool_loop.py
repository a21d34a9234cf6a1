"""A tool loop: model → tools → model, until the model answers without calling a tool.

```python
@llmkit.tool
def add(a: int, b: int) -> int:
    \"\"\"Add two integers.\"\"\"
    return a + b

loop = llmkit.ToolLoop(model, [add], max_steps=20)
result = loop.run("What is 1 + 2 + 3?")
print(result.text)
```

Each step appends ``response.message`` and the tool results to the history, exactly as
hand-written agent code would, so over WebSocket every step after the first sends only
the new items. A tool that raises gives the model an error result instead of ending the
loop. The loop's state (`ToolLoop.history`, `ToolLoop.steps`) stays readable after an
exception, which carries the failed step's partial response as usual.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import to_json

from llmkit._validation import describe_validation_error
from llmkit.exceptions import UsageError
from llmkit.messages import (
    Call,
    FunctionTool,
    Message,
    Response,
    ResponseMetadata,
    ToolCall,
    ToolMessage,
    ToolResult,
    WarmupResult,
)
from llmkit.model import LanguageModel
from llmkit.stream import StreamPart

__all__ = ["CallableTool", "ToolLoopStep", "ToolLoop", "ToolLoopResult", "tool"]


class _NoTitles(GenerateJsonSchema):
    """JSON schemas without pydantic's generated ``title`` keys (noise to a model)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class CallableTool:
    """A Python function the model may call, with the `FunctionTool` it is declared as.

    Build one with `tool`. Calling it runs the function on the model's JSON arguments
    and returns the text the model sees.
    """

    spec: FunctionTool
    function: Callable[..., Any]
    _adapter: TypeAdapter[Any] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(self, arguments: str) -> str:
        """Run the function on ``arguments`` (a JSON object) and render its result.

        Raises:
            ValueError: the arguments are not a JSON object or do not fit the schema.
            Exception: whatever the function raises.
        """
        try:
            values = json.loads(arguments or "{}")
        except ValueError as exc:
            raise ValueError(f"arguments are not valid JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise ValueError("arguments must be a JSON object")
        result = (
            self._adapter.validate_python(values)
            if self._adapter is not None
            else self.function(**values)
        )
        return result if isinstance(result, str) else to_json(result).decode()


@overload
def tool(function: Callable[..., Any], /) -> CallableTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    strict: bool | None = None,
) -> Callable[[Callable[..., Any]], CallableTool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    strict: bool | None = None,
) -> CallableTool | Callable[[Callable[..., Any]], CallableTool]:
    """Declare a Python function as a tool; usable bare (``@tool``) or with arguments.

    Without ``parameters`` the JSON schema comes from the type hints (pydantic), and
    arguments are validated and converted before the call. With ``parameters`` the
    schema is taken as given and the parsed JSON object is passed as keyword arguments.
    The description defaults to the docstring's first paragraph.

    Raises:
        UsageError: the function takes ``*args`` or its hints cannot make a schema.
    """

    def build(func: Callable[..., Any]) -> CallableTool:
        tool_name = name or getattr(func, "__name__", "")
        if not tool_name or tool_name == "<lambda>":
            raise UsageError("a tool needs a name: pass name=... for lambdas and partials")
        doc = inspect.getdoc(func)
        summary = description or (doc.split("\n\n")[0].strip() if doc else None)
        adapter: TypeAdapter[Any] | None = None
        schema = parameters
        if schema is None:
            adapter, schema = _schema(func, tool_name)
        spec = FunctionTool(tool_name, summary, schema, strict=strict)
        return CallableTool(spec, func, adapter)

    return build if function is None else build(function)


def _schema(func: Callable[..., Any], name: str) -> tuple[TypeAdapter[Any], dict[str, Any]]:
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(func)  # type: ignore[arg-type]
        schema = adapter.json_schema(schema_generator=_NoTitles)
    except Exception as exc:  # pydantic raises several types for unusable hints
        raise UsageError(
            f"tool {name!r}: cannot build a JSON schema from its hints: {exc}"
        ) from exc
    if schema.get("type") != "object":
        raise UsageError(f"tool {name!r}: parameters must be named (no *args)")
    return adapter, schema


@dataclass(frozen=True, slots=True)
class ToolLoopStep:
    """One model call of a tool loop and the tool calls it led to."""

    number: int
    """1 for the first model call."""
    response: Response
    results: tuple[ToolResult, ...]
    """The results given back to the model (empty on the final answer)."""
    tool_seconds: float
    """Wall time spent running this step's tools."""

    @property
    def metadata(self) -> ResponseMetadata:
        """Transport, input mode, bytes sent, timings: see `ResponseMetadata`."""
        return self.response.metadata


@dataclass(frozen=True, slots=True)
class ToolLoopResult:
    """What a tool loop produced."""

    response: Response
    """The last response: the final answer when `finished`."""
    history: tuple[Message, ...]
    """The whole conversation, ready for a follow-up `Call`."""
    steps: tuple[ToolLoopStep, ...]
    warmup: WarmupResult | None
    finished: bool
    """False when ``max_steps`` ran out while the model was still calling tools."""

    @property
    def text(self) -> str:
        return self.response.text


class ToolLoop:
    """Run a model with Python tools until it answers without calling one.

    Args:
        model: Any `LanguageModel` (Chat, Responses over HTTP, or WebSocket mode).
        tools: `CallableTool`s, or plain functions (declared with `tool` on the fly).
        max_steps: Model calls at most.
        warmup: Call `LanguageModel.warmup` before the first step (on WebSocket this
            sends ``generate: false``, billed for input tokens; elsewhere it is free).

    Raises:
        UsageError: two tools share a name, or ``max_steps`` < 1.
    """

    def __init__(
        self,
        model: LanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
    ) -> None:
        if max_steps < 1:
            raise UsageError("max_steps must be >= 1")
        self.model = model
        self.max_steps = max_steps
        self.warmup = warmup
        self.tools: dict[str, CallableTool] = {}
        for item in tools:
            declared = item if isinstance(item, CallableTool) else tool(item)
            if declared.name in self.tools:
                raise UsageError(f"two tools are named {declared.name!r}")
            self.tools[declared.name] = declared
        self.history: list[Message] = []
        self.steps: list[ToolLoopStep] = []

    def run(
        self,
        call: Call | str,
        *,
        on_part: Callable[[StreamPart], object] | None = None,
        on_step: Callable[[ToolLoopStep], object] | None = None,
    ) -> ToolLoopResult:
        """Run the loop from ``call`` (its prompt starts the history; its tools and
        settings apply to every step, with this loop's tools added).

        ``on_part`` receives every stream part as it arrives (the loop then streams);
        ``on_step`` receives each `ToolLoopStep` when its tools have run.

        Raises:
            UsageError: ``call`` declares a function tool with a name this loop uses.
            LLMKitError: a model call failed; `history` and `steps` keep what was done.
        """
        base = Call(call) if isinstance(call, str) else call
        declared = {t.name for t in base.tools if isinstance(t, FunctionTool)}
        clash = declared.intersection(self.tools)
        if clash:
            raise UsageError(f"the call already declares tools named {sorted(clash)}")
        self.history = list(base.prompt)
        self.steps = []
        tools = (*base.tools, *(t.spec for t in self.tools.values()))
        warmed = self.model.warmup(self._call(base, tools)) if self.warmup else None
        response: Response | None = None
        for number in range(1, self.max_steps + 1):
            response = self._respond(self._call(base, tools), on_part)
            self.history.append(response.message)
            started = time.perf_counter()
            results = tuple(self._run_tool(c) for c in response.tool_calls)
            if results:
                self.history.append(ToolMessage(results))
            step = ToolLoopStep(number, response, results, time.perf_counter() - started)
            self.steps.append(step)
            if on_step is not None:
                on_step(step)
            if not response.tool_calls:
                break
        assert response is not None
        return ToolLoopResult(
            response=response,
            history=tuple(self.history),
            steps=tuple(self.steps),
            warmup=warmed,
            finished=not response.tool_calls,
        )

    def _call(self, base: Call, tools: tuple[Any, ...]) -> Call:
        return dataclasses.replace(base, prompt=tuple(self.history), tools=tools)

    def _respond(self, call: Call, on_part: Callable[[StreamPart], object] | None) -> Response:
        if on_part is None:
            return self.model.generate(call)
        with self.model.stream(call) as stream:
            for part in stream:
                on_part(part)
            return stream.response

    def _run_tool(self, call: ToolCall) -> ToolResult:
        """Run one call; any failure becomes an error result the model can read."""
        declared = self.tools.get(call.name)
        if declared is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return ToolResult(
                call.call_id, f"Error: no tool named {call.name!r} (tools: {known})", True
            )
        try:
            return ToolResult(call.call_id, declared(call.arguments))
        except ValidationError as exc:
            problems = describe_validation_error(exc)
            return ToolResult(call.call_id, f"Error: invalid arguments: {problems}", True)
        except Exception as exc:  # a tool's failure is the model's to handle
            return ToolResult(call.call_id, f"Error: {type(exc).__name__}: {exc}", True)
