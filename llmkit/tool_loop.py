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

Each step appends ``response.messages`` and the tool results to the history, exactly as
hand-written agent code would, so over WebSocket every step after the first sends only
the new items. ``loop.steer(text)`` (from another thread or task) adds user input while
the loop runs: to the running response (WebSocket mode, `Stream.steer`), whose steered
history the loop keeps as the server holds it; else, or when the server refuses it, to
the next request (a finished answer then gets one more step). A tool that raises gives
the model an error result instead of ending the loop. The loop's state
(`ToolLoop.history`, `ToolLoop.steps`) stays readable after an exception, which carries
the failed step's partial response as usual.

``ToolLoop(model, tools, output_type=T)`` asks for structured output on every step (so
the requests of a conversation stay equal but for their input, and WebSocket mode keeps
sending only what is new) and parses only the final answer: ``result.output`` is a
``T``, ``result.response`` a `ParsedResponse`. A refusal or an answer that is no ``T``
raises `RefusalError` / `OutputValidationError` after that step was recorded.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import reprlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, cast, overload

from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import to_json
from typing_extensions import TypeVar

from llmkit._otel import LoopTrace, loop_trace
from llmkit._schema import OutputSchema
from llmkit._schema_parse import parse_response
from llmkit._validation import describe_validation_error, is_sequence
from llmkit.exceptions import SteerError, UsageError
from llmkit.messages import (
    Call,
    FunctionTool,
    Message,
    ParsedResponse,
    Response,
    ResponseMetadata,
    ToolCall,
    ToolMessage,
    ToolResult,
    UserMessage,
    WarmupResult,
)
from llmkit.model import AsyncLanguageModel, LanguageModel, schema_of
from llmkit.stream import AsyncStream, SteerInput, Stream, StreamPart, steer_input

__all__ = [
    "AsyncToolLoop",
    "CallableTool",
    "ToolLoop",
    "ToolLoopResult",
    "ToolLoopStep",
    "tool",
]

ModelT = TypeVar("ModelT", LanguageModel, AsyncLanguageModel)
T = TypeVar("T")
OutT = TypeVar("OutT", default=None)
"""The output type of a structured loop; None (``output`` is None) without one."""


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
class ToolLoopResult(Generic[OutT]):
    """What a tool loop produced."""

    response: Response
    """The last response: the final answer when `finished` (a `ParsedResponse` in a
    structured loop)."""
    history: tuple[Message, ...]
    """The whole conversation, ready for a follow-up `Call`."""
    steps: tuple[ToolLoopStep, ...]
    warmup: WarmupResult | None
    finished: bool
    """False when ``max_steps`` ran out while the model was still calling tools."""
    structured: bool = False
    """Whether the loop asked for an ``output_type``."""

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def output(self) -> OutT:
        """The final answer as the loop's ``output_type``; None in a loop without one.

        Raises:
            UsageError: a structured loop stopped at ``max_steps`` before its answer.
        """
        if isinstance(self.response, ParsedResponse):
            return cast(OutT, self.response.output)
        if self.structured:
            raise UsageError(
                "the loop stopped at max_steps while the model was still calling tools: "
                "no output (see finished)"
            )
        return cast(OutT, None)


class _ToolLoopBase(Generic[ModelT, OutT]):
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
        output_type: Any = None,
    ) -> None:
        if max_steps < 1:
            raise UsageError("max_steps must be >= 1")
        self.model: ModelT = model
        self.output_type = output_type
        self._output: OutputSchema[Any] | None = schema_of(output_type)
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
        self._steer_lock = threading.Lock()
        self._steers: list[UserMessage] = []
        """Steer input for the next request (no response was running, or it was not
        applied to the running one)."""
        self._running: Stream | AsyncStream | None = None

    @property
    def pending_steers(self) -> tuple[UserMessage, ...]:
        """Steer input that goes with the next request (kept when `run` raised)."""
        with self._steer_lock:
            return tuple(self._steers)

    def _steer_later(self, messages: Sequence[UserMessage]) -> None:
        with self._steer_lock:
            self._steers += messages

    def _next_input(self) -> None:
        """Before a request: steer input waiting for it joins the history."""
        with self._steer_lock:
            self.history += self._steers
            self._steers.clear()

    def _running_stream(self, stream: Stream | AsyncStream | None) -> None:
        """The step's stream starts (``stream``) or ends (None): what it did not apply
        goes to the next request."""
        with self._steer_lock:
            if stream is None and self._running is not None:
                self._steers += self._running.unapplied_steers
            self._running = stream

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

    def _trace(self) -> LoopTrace | None:
        """The run's trace (a parent span for its calls and tools), or None: no tracer
        is configured (decided once per run; ``llmkit._otel``)."""
        model = self.model
        return loop_trace(model._site, model.provider, model.model_id)

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
        """Append one step to the history and the steps; whether the loop is finished
        (no tool call, and no steer input waiting for an answer)."""
        self.history += response.messages
        if results:
            self.history.append(ToolMessage(results))
        step = ToolLoopStep(number, response, results, time.perf_counter() - started)
        self.steps.append(step)
        if on_step is not None:
            on_step(step)
        with self._steer_lock:
            return not response.tool_calls and not self._steers

    def _result(
        self, response: Response | None, warmed: WarmupResult | None
    ) -> ToolLoopResult[OutT]:
        """The loop's result; a structured loop's final answer parsed.

        Raises:
            OutputError: the final answer is a refusal or not the output type.
        """
        assert response is not None
        finished = not response.tool_calls
        if finished and self._output is not None:
            response = parse_response(self._output, response)
        return ToolLoopResult(
            response=response,
            history=tuple(self.history),
            steps=tuple(self.steps),
            warmup=warmed,
            finished=finished,
            structured=self._output is not None,
        )


class ToolLoop(_ToolLoopBase[LanguageModel, OutT]):
    """Run a model with Python tools until it answers without calling one.

    Args:
        model: Any `LanguageModel` (Chat, Responses over HTTP, or WebSocket mode).
        tools: `CallableTool`s, or plain functions (declared with `tool` on the fly).
        max_steps: Model calls at most.
        warmup: Call `LanguageModel.warmup` before the first step (on WebSocket this
            sends ``generate: false``, billed for input tokens; elsewhere it is free).
        output_type: Structured output for the final answer, as for `LanguageModel.
            generate` (sent on every step): ``result.output`` is the answer parsed.

    Raises:
        UsageError: a tool that is not a function (said with what it is), two tools
            share a name, an ``async def`` tool (use `AsyncToolLoop`), ``max_steps``
            < 1, or an ``output_type`` without a JSON schema.
    """

    @overload
    def __init__(
        self: ToolLoop[None],
        model: LanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
        output_type: None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: ToolLoop[T],
        model: LanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
        output_type: type[T],
    ) -> None: ...
    @overload
    def __init__(
        self: ToolLoop[Any],
        model: LanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
        output_type: Any,
    ) -> None: ...
    def __init__(
        self,
        model: LanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
        output_type: Any = None,
    ) -> None:
        super().__init__(model, tools, max_steps=max_steps, warmup=warmup, output_type=output_type)

    def _accept(self, declared: CallableTool) -> None:
        if declared.is_async:
            raise UsageError(f"tool {declared.name!r} is async: run it with AsyncToolLoop")

    def run(
        self,
        call: Call | str,
        *,
        on_part: Callable[[StreamPart], object] | None = None,
        on_step: Callable[[ToolLoopStep], object] | None = None,
    ) -> ToolLoopResult[OutT]:
        """Run the loop from ``call`` (its prompt starts the history; its tools and
        settings apply to every step, with this loop's tools added).

        ``on_part`` receives every stream part as it arrives (the loop then streams);
        ``on_step`` receives each `ToolLoopStep` when its tools have run.

        Raises:
            UsageError: ``call`` declares a function tool with a name this loop uses.
            OutputError: a structured loop's final answer is a refusal or no output
                type (`RefusalError`, `OutputValidationError`); the step is recorded.
            LLMKitError: a model call failed; `history` and `steps` keep what was done.
        """
        step_call = self._start(call)
        trace = self._trace()
        if trace is None:
            return self._steps(step_call, on_part, on_step, None)
        with trace.run():
            return self._steps(step_call, on_part, on_step, trace)

    def _steps(
        self,
        step_call: Callable[[], Call],
        on_part: Callable[[StreamPart], object] | None,
        on_step: Callable[[ToolLoopStep], object] | None,
        trace: LoopTrace | None,
    ) -> ToolLoopResult[OutT]:
        warmed = (
            self.model.warmup(step_call(), output_type=self.output_type) if self.warmup else None
        )
        response: Response | None = None
        for number in range(1, self.max_steps + 1):
            self._next_input()
            response = self._respond(step_call(), on_part)
            started = time.perf_counter()
            if trace is None:
                results = tuple(self._run_tool(c)[0] for c in response.tool_calls)
            else:
                trace.step(number, response)
                results = tuple(self._traced_tool(c, trace) for c in response.tool_calls)
            if self._record(number, response, results, started, on_step):
                break
        return self._result(response, warmed)

    def steer(self, input: SteerInput) -> None:
        """Add user input while the loop runs; safe from any thread.

        It goes to the running response when there is one (WebSocket mode:
        `Stream.steer`), else, or when the server does not apply it, with the next
        request. Either way the history stays what the server holds.

        Raises:
            UsageError: ``input`` is not user messages.
        """
        messages = steer_input(input)
        with self._steer_lock:
            stream = self._running
            if isinstance(stream, Stream):
                try:
                    stream.steer(messages)
                except (SteerError, UsageError):
                    pass  # ended, refused, or no WebSocket: the next request takes it
                else:
                    return
            self._steers += messages

    def _respond(self, call: Call, on_part: Callable[[StreamPart], object] | None) -> Response:
        # The schema goes out on every step; only the final answer is parsed (`_result`).
        with self.model._stream(call, None, self._output) as stream:
            self._running_stream(stream)
            try:
                for part in stream:
                    if on_part is not None:
                        on_part(part)
            finally:
                self._running_stream(None)
            return stream.response

    def _run_tool(self, call: ToolCall) -> tuple[ToolResult, Exception | None]:
        """Run one call; any failure becomes an error result the model can read (and
        the exception, for the trace)."""
        declared = self._lookup(call)
        if isinstance(declared, ToolResult):
            return declared, None
        try:
            return ToolResult(call.call_id, declared(call.arguments)), None
        except Exception as exc:  # a tool's failure is the model's to handle
            return self._failed(call, exc), exc

    def _traced_tool(self, call: ToolCall, trace: LoopTrace) -> ToolResult:
        with trace.tool(call) as done:
            result, exc = self._run_tool(call)
            done(result, exc)
        return result


class AsyncToolLoop(_ToolLoopBase[AsyncLanguageModel, OutT]):
    """`ToolLoop` for asyncio: ``await AsyncToolLoop(model, tools).run(call)``.

    The same steps, history, results, ``output_type`` and error handling. Tools may be
    plain or ``async def`` functions; they run one after another, in the order the model
    called them, like in `ToolLoop`.
    """

    @overload
    def __init__(
        self: AsyncToolLoop[None],
        model: AsyncLanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
        output_type: None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: AsyncToolLoop[T],
        model: AsyncLanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
        output_type: type[T],
    ) -> None: ...
    @overload
    def __init__(
        self: AsyncToolLoop[Any],
        model: AsyncLanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
        output_type: Any,
    ) -> None: ...
    def __init__(
        self,
        model: AsyncLanguageModel,
        tools: Sequence[CallableTool | Callable[..., Any]],
        *,
        max_steps: int = 10,
        warmup: bool = False,
        output_type: Any = None,
    ) -> None:
        super().__init__(model, tools, max_steps=max_steps, warmup=warmup, output_type=output_type)

    async def run(
        self,
        call: Call | str,
        *,
        on_part: Callable[[StreamPart], object] | None = None,
        on_step: Callable[[ToolLoopStep], object] | None = None,
    ) -> ToolLoopResult[OutT]:
        """As `ToolLoop.run`, awaited."""
        step_call = self._start(call)
        trace = self._trace()
        if trace is None:
            return await self._steps(step_call, on_part, on_step, None)
        with trace.run():
            return await self._steps(step_call, on_part, on_step, trace)

    async def _steps(
        self,
        step_call: Callable[[], Call],
        on_part: Callable[[StreamPart], object] | None,
        on_step: Callable[[ToolLoopStep], object] | None,
        trace: LoopTrace | None,
    ) -> ToolLoopResult[OutT]:
        warmed = (
            await self.model.warmup(step_call(), output_type=self.output_type)
            if self.warmup
            else None
        )
        response: Response | None = None
        for number in range(1, self.max_steps + 1):
            self._next_input()
            response = await self._respond(step_call(), on_part)
            started = time.perf_counter()
            if trace is not None:
                trace.step(number, response)
            results = tuple([await self._traced_tool(c, trace) for c in response.tool_calls])
            if self._record(number, response, results, started, on_step):
                break
        return self._result(response, warmed)

    async def steer(self, input: SteerInput) -> None:
        """As `ToolLoop.steer`, awaited; safe from any task of the loop's event loop."""
        messages = steer_input(input)
        with self._steer_lock:
            stream = self._running
        if isinstance(stream, AsyncStream):
            try:
                await stream.steer(messages)
            except (SteerError, UsageError):
                pass  # ended, refused, or no WebSocket: the next request takes it
            else:
                return
        self._steer_later(messages)

    async def _respond(
        self, call: Call, on_part: Callable[[StreamPart], object] | None
    ) -> Response:
        async with self.model._stream(call, None, self._output) as stream:
            self._running_stream(stream)
            try:
                async for part in stream:
                    if on_part is not None:
                        on_part(part)
            finally:
                self._running_stream(None)
            return stream.response

    async def _run_tool(self, call: ToolCall) -> tuple[ToolResult, Exception | None]:
        """Run one call; any failure becomes an error result the model can read (and
        the exception, for the trace)."""
        declared = self._lookup(call)
        if isinstance(declared, ToolResult):
            return declared, None
        try:
            result = declared.invoke(call.arguments)
            if inspect.isawaitable(result):
                result = await result
            return ToolResult(call.call_id, declared.render(result)), None
        except Exception as exc:  # a tool's failure is the model's to handle
            return self._failed(call, exc), exc

    async def _traced_tool(self, call: ToolCall, trace: LoopTrace | None) -> ToolResult:
        if trace is None:
            return (await self._run_tool(call))[0]
        with trace.tool(call) as done:
            result, exc = await self._run_tool(call)
            done(result, exc)
        return result
