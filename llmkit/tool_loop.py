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
import reprlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import to_json

from llmkit._validation import describe_validation_error, is_sequence
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
from llmkit.model import AsyncLanguageModel, LanguageModel
from llmkit.stream import StreamPart

__all__ = [
    "AsyncToolLoop",
    "CallableTool",
    "ToolLoop",
    "ToolLoopResult",
    "ToolLoopStep",
    "tool",
]

ModelT = TypeVar("ModelT", LanguageModel, AsyncLanguageModel)


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
        return self.render(self.invoke(arguments))

    @property
    def is_async(self) -> bool:
        """Whether the function is ``async def`` (only `AsyncToolLoop` can await it)."""
        return inspect.iscoroutinefunction(self.function)

    def invoke(self, arguments: str) -> Any:
        """Call the function on ``arguments``; its result as it is (an awaitable for an
        ``async def`` function). Raises as `__call__`."""
        try:
            values = json.loads(arguments or "{}")
        except ValueError as exc:
            raise ValueError(f"arguments are not valid JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise ValueError("arguments must be a JSON object")
        if self._adapter is not None:
            return self._adapter.validate_python(values)
        return self.function(**values)

    @staticmethod
    def render(result: Any) -> str:
        """The text the model sees for a function's result: a string as it is, else JSON."""
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
        UsageError: ``function`` is not callable, takes ``*args``, or its hints cannot
            make a schema.
    """

    def build(func: Callable[..., Any]) -> CallableTool:
        if not callable(func):
            raise UsageError(f"a tool must be a function: {_not_a_function(func)}")
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


def _not_a_function(value: object) -> str:
    """What a value given as a tool is, and what is expected instead."""
    hint = ""
    if isinstance(value, FunctionTool):
        hint = " (a FunctionTool only declares a tool: llmkit.tool(function) gives one to run)"
    return (
        f"got {type(value).__name__} {reprlib.repr(value)}; expected a function or a "
        f"CallableTool made with llmkit.tool{hint}"
    )


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


class _ToolLoopBase(Generic[ModelT]):
    """What `ToolLoop` and `AsyncToolLoop` share: the tools, the history and the steps.

    The two ``run`` methods only call the model and the tools; every bookkeeping
    decision is one of the methods here.
    """

    def __init__(
        self,
        model: ModelT,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
    ) -> None:
        if max_steps < 1:
            raise UsageError("max_steps must be >= 1")
        self.model: ModelT = model
        self.max_steps = max_steps
        self.warmup = warmup
        self.tools: dict[str, CallableTool] = {}
        if not is_sequence(tools):
            raise UsageError(
                f"tools must be a list of functions or CallableTools, not a {type(tools).__name__}"
            )
        for index, item in enumerate(tools):
            if not callable(item):
                raise UsageError(f"tools[{index}] is not a function: {_not_a_function(item)}")
            declared = item if isinstance(item, CallableTool) else tool(item)
            if declared.name in self.tools:
                raise UsageError(f"two tools are named {declared.name!r}")
            self._accept(declared)
            self.tools[declared.name] = declared
        self.history: list[Message] = []
        self.steps: list[ToolLoopStep] = []

    def _accept(self, declared: CallableTool) -> None:
        """Refuse a tool this loop cannot run (a sync loop cannot await)."""

    def _start(self, call: Call | str) -> Callable[[], Call]:
        """Reset the state for ``call``; returns what makes each step's `Call`."""
        base: Call = Call(call) if isinstance(call, str) else call
        declared = {t.name for t in base.tools if isinstance(t, FunctionTool)}
        clash = declared.intersection(self.tools)
        if clash:
            raise UsageError(f"the call already declares tools named {sorted(clash)}")
        self.history = list(base.prompt)
        self.steps = []
        tools = (*base.tools, *(t.spec for t in self.tools.values()))
        return lambda: dataclasses.replace(base, prompt=tuple(self.history), tools=tools)

    def _lookup(self, call: ToolCall) -> CallableTool | ToolResult:
        """The tool ``call`` names, or the error result the model gets instead."""
        declared = self.tools.get(call.name)
        if declared is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return ToolResult(
                call.call_id, f"Error: no tool named {call.name!r} (tools: {known})", True
            )
        return declared

    @staticmethod
    def _failed(call: ToolCall, exc: Exception) -> ToolResult:
        """A tool's failure, as an error result the model can read."""
        if isinstance(exc, ValidationError):
            problems = describe_validation_error(exc)
            return ToolResult(call.call_id, f"Error: invalid arguments: {problems}", True)
        return ToolResult(call.call_id, f"Error: {type(exc).__name__}: {exc}", True)

    def _record(
        self,
        number: int,
        response: Response,
        results: tuple[ToolResult, ...],
        started: float,
        on_step: Callable[[ToolLoopStep], object] | None,
    ) -> bool:
        """Append one step to the history and the steps; whether the loop is finished."""
        self.history.append(response.message)
        if results:
            self.history.append(ToolMessage(results))
        step = ToolLoopStep(number, response, results, time.perf_counter() - started)
        self.steps.append(step)
        if on_step is not None:
            on_step(step)
        return not response.tool_calls

    def _result(self, response: Response | None, warmed: WarmupResult | None) -> ToolLoopResult:
        assert response is not None
        return ToolLoopResult(
            response=response,
            history=tuple(self.history),
            steps=tuple(self.steps),
            warmup=warmed,
            finished=not response.tool_calls,
        )


class ToolLoop(_ToolLoopBase[LanguageModel]):
    """Run a model with Python tools until it answers without calling one.

    Args:
        model: Any `LanguageModel` (Chat, Responses over HTTP, or WebSocket mode).
        tools: `CallableTool`s, or plain functions (declared with `tool` on the fly).
        max_steps: Model calls at most.
        warmup: Call `LanguageModel.warmup` before the first step (on WebSocket this
            sends ``generate: false``, billed for input tokens; elsewhere it is free).

    Raises:
        UsageError: a tool that is not a function (said with what it is), two tools
            share a name, an ``async def`` tool (use `AsyncToolLoop`), or
            ``max_steps`` < 1.
    """

    def _accept(self, declared: CallableTool) -> None:
        if declared.is_async:
            raise UsageError(f"tool {declared.name!r} is async: run it with AsyncToolLoop")

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
        step_call = self._start(call)
        warmed = self.model.warmup(step_call()) if self.warmup else None
        response: Response | None = None
        for number in range(1, self.max_steps + 1):
            response = self._respond(step_call(), on_part)
            started = time.perf_counter()
            results = tuple(self._run_tool(c) for c in response.tool_calls)
            if self._record(number, response, results, started, on_step):
                break
        return self._result(response, warmed)

    def _respond(self, call: Call, on_part: Callable[[StreamPart], object] | None) -> Response:
        if on_part is None:
            return self.model.generate(call)
        with self.model.stream(call) as stream:
            for part in stream:
                on_part(part)
            return stream.response

    def _run_tool(self, call: ToolCall) -> ToolResult:
        """Run one call; any failure becomes an error result the model can read."""
        declared = self._lookup(call)
        if isinstance(declared, ToolResult):
            return declared
        try:
            return ToolResult(call.call_id, declared(call.arguments))
        except Exception as exc:  # a tool's failure is the model's to handle
            return self._failed(call, exc)


class AsyncToolLoop(_ToolLoopBase[AsyncLanguageModel]):
    """`ToolLoop` for asyncio: ``await AsyncToolLoop(model, tools).run(call)``.

    The same steps, history, results and error handling. Tools may be plain or
    ``async def`` functions; they run one after another, in the order the model
    called them, like in `ToolLoop`.
    """

    async def run(
        self,
        call: Call | str,
        *,
        on_part: Callable[[StreamPart], object] | None = None,
        on_step: Callable[[ToolLoopStep], object] | None = None,
    ) -> ToolLoopResult:
        """As `ToolLoop.run`, awaited."""
        step_call = self._start(call)
        warmed = await self.model.warmup(step_call()) if self.warmup else None
        response: Response | None = None
        for number in range(1, self.max_steps + 1):
            response = await self._respond(step_call(), on_part)
            started = time.perf_counter()
            results = tuple([await self._run_tool(c) for c in response.tool_calls])
            if self._record(number, response, results, started, on_step):
                break
        return self._result(response, warmed)

    async def _respond(
        self, call: Call, on_part: Callable[[StreamPart], object] | None
    ) -> Response:
        if on_part is None:
            return await self.model.generate(call)
        async with self.model.stream(call) as stream:
            async for part in stream:
                on_part(part)
            return stream.response

    async def _run_tool(self, call: ToolCall) -> ToolResult:
        """Run one call; any failure becomes an error result the model can read."""
        declared = self._lookup(call)
        if isinstance(declared, ToolResult):
            return declared
        try:
            result = declared.invoke(call.arguments)
            if inspect.isawaitable(result):
                result = await result
            return ToolResult(call.call_id, declared.render(result))
        except Exception as exc:  # a tool's failure is the model's to handle
            return self._failed(call, exc)
