"""OpenTelemetry traces and metrics of every call (the optional extra ``llmkit[otel]``).

Each `generate`, `stream` and `warmup` becomes a span named and attributed as the
OpenTelemetry GenAI semantic conventions say (``chat {model}``, kind CLIENT), with
llmkit's own facts beside (``llmkit.transport``, ``llmkit.input_mode``, ...), events for
the WebSocket decisions and the first token, and the conventions' client histograms.
A tool loop run is a parent span, each tool call an ``execute_tool {name}`` span.

Why it is shaped like this:

* Only ``opentelemetry-api`` is imported, only here, and only when the first call asks
  (`available`); without it every entry point returns None at once.
* Whether a call is traced is decided once, when it starts (`call_trace`): with no
  tracer or meter provider configured (the API's proxy and no-op providers) it is
  None, and the call runs exactly as without this module: no wrapper, no SDK object,
  no per-event work.
* A traced stream's parts go through one generator (`CallTrace.parts`) that starts the
  span when iteration starts and ends it however the stream ends: completed, failed,
  closed early or collected (``GeneratorExit``), cancelled. It looks at parts only until
  the first token, then delegates.
* The WebSocket session tells the span of its decisions through the call's
  `Collector.observer` (set only while traced), so the decision modules import nothing
  of OpenTelemetry.
* Message content is recorded only when asked (`Telemetry.capture_content`, else the
  conventions' ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``); the API key
  never (it is in no value this module reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llmkit._parts import Finish, StreamPart, Warnings
from llmkit._version import __version__
from llmkit.exceptions import LLMKitError
from llmkit.messages import (
    AssistantMessage,
    Call,
    FilePart,
    ImagePart,
    ReasoningPart,
    Response,
    ResponseMetadata,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    ToolResult,
    Usage,
    UserMessage,
    WarmupResult,
)
from llmkit.stream import Collector

if TYPE_CHECKING:
    from opentelemetry import context as otel_context, metrics as otel_metrics, trace as otel_trace
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

_loaded: bool | None = None
"""Whether opentelemetry-api could be imported; None until the first call asks."""
_NO_TRACERS: tuple[type, ...] = ()
_NO_METERS: tuple[type, ...] = ()


def available() -> bool:
    """Whether opentelemetry-api is importable; imported on the first call that asks
    (so ``import llmkit`` never pays for it), never again after."""
    global _loaded
    if _loaded is None:
        try:
            _load()
        except ImportError:  # pragma: no cover - tested in a subprocess (no API installed)
            _loaded = False
        else:
            _loaded = True
    return _loaded


def _load() -> None:
    global otel_context, otel_metrics, otel_trace, SpanKind, Status, StatusCode
    global _NO_TRACERS, _NO_METERS
    from opentelemetry import context as otel_context, metrics as otel_metrics, trace as otel_trace
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import (
        NoOpTracerProvider,
        ProxyTracerProvider,
        SpanKind,
        Status,
        StatusCode,
    )

    _NO_TRACERS = (NoOpTracerProvider, ProxyTracerProvider)
    try:  # the API's stand-in until a meter provider is set (it has no public name)
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - every 1.x API has it
        _NO_METERS = (NoOpMeterProvider,)
    else:
        _NO_METERS = (NoOpMeterProvider, _ProxyMeterProvider)


__all__ = [
    "CAPTURE_ENV",
    "CallTrace",
    "LoopTrace",
    "Site",
    "Telemetry",
    "available",
    "call_trace",
    "loop_trace",
]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The conventions' switch for recording message content (``true`` to record)."""

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
"""``gen_ai.client.token.usage``: the conventions' explicit bucket boundaries."""
SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                   40.96, 81.92)  # fmt: skip
"""``gen_ai.client.operation.duration`` (and time to first chunk): the conventions' buckets."""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """How a provider reports to OpenTelemetry (``Provider(telemetry=...)``).

    Without it (or with None fields) the global providers are used: the ones the
    application set with ``trace.set_tracer_provider`` / ``metrics.set_meter_provider``.
    With none set, nothing is recorded and nothing is spent.

    Args:
        tracer_provider: Record spans there instead of the global tracer provider.
        meter_provider: Record metrics there instead of the global meter provider.
        capture_content: Record messages (``gen_ai.input.messages``,
            ``gen_ai.output.messages``, tool arguments and results). None: as the
            environment says (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``);
            off by default. The API key is never recorded.
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    capture_content: bool | None = None


class _Instruments:
    """A tracer and the histograms of one (tracer provider, meter provider) pair."""

    __slots__ = ("duration", "first_chunk", "meter_provider", "tokens", "tracer", "tracer_provider")

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.tracer: Tracer | None = None
        if tracer_provider is not None:
            self.tracer = tracer_provider.get_tracer("llmkit", __version__)
        self.tokens: Histogram | None = None
        self.duration: Histogram | None = None
        self.first_chunk: Histogram | None = None
        if meter_provider is not None:
            meter = meter_provider.get_meter("llmkit", __version__)
            self.tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            )
            self.duration = meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            )
            self.first_chunk = meter.create_histogram(
                "gen_ai.client.operation.time_to_first_chunk",
                unit="s",
                description="Time to receive the first chunk of a streamed response.",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            )


class Site:
    """Where a provider's calls go (``server.address``/``server.port``) and its
    `Telemetry`; keeps the instruments of the providers last seen."""

    __slots__ = ("_cache", "address", "port", "settings")

    def __init__(self, base_url: str | None = None, settings: Telemetry | None = None) -> None:
        self.settings = settings or Telemetry()
        self.address: str | None = None
        self.port: int | None = None
        if base_url:
            parts = urlsplit(base_url)  # hostname and port only: never a userinfo part
            self.address = parts.hostname
            try:
                port = parts.port
            except ValueError:  # pragma: no cover - the provider checked the URL
                port = None
            self.port = port or (443 if parts.scheme == "https" else 80)
        self._cache: _Instruments | None = None

    def instruments(self) -> _Instruments | None:
        """The instruments to record with, or None: nothing is configured (the API
        missing, or only its proxy and no-op providers)."""
        if not available():
            return None
        settings = self.settings
        tracers = settings.tracer_provider
        if tracers is None:
            tracers = otel_trace.get_tracer_provider()
            if isinstance(tracers, _NO_TRACERS):
                tracers = None
        meters = settings.meter_provider
        if meters is None:
            meters = otel_metrics.get_meter_provider()
            if isinstance(meters, _NO_METERS):
                meters = None
        if tracers is None and meters is None:
            return None
        cached = self._cache
        if cached is None or (cached.tracer_provider, cached.meter_provider) != (tracers, meters):
            cached = self._cache = _Instruments(tracers, meters)
        return cached

    def capture(self) -> bool:
        """Whether message content is recorded."""
        if self.settings.capture_content is not None:
            return self.settings.capture_content
        return os.environ.get(CAPTURE_ENV, "").strip().lower() == "true"


DEFAULT_SITE = Site()
"""The site of a model made without a provider: the global providers, no server."""


def _error_type(exc: BaseException) -> str:
    """``error.type``: the class name of llmkit's exception (its documented tree)."""
    return type(exc).__name__


def call_trace(
    site: Site | None, provider: str, model_id: str, call: Call | str, operation: str = "chat"
) -> CallTrace | None:
    """The trace of one call, or None (the call is not traced: nothing else happens).

    Decided here, once per call; the parent span is the one current now.
    """
    site = site or DEFAULT_SITE
    instruments = site.instruments()
    if instruments is None:
        return None
    return CallTrace(instruments, site, provider, model_id, call, operation)


class CallTrace:
    """The span and the measurements of one model call."""

    __slots__ = (
        "_attributes",
        "_call",
        "_capture",
        "_first",
        "_instruments",
        "_metric_attributes",
        "_name",
        "_operation",
        "_parent",
        "_started",
        "span",
    )

    def __init__(
        self,
        instruments: _Instruments,
        site: Site,
        provider: str,
        model_id: str,
        call: Call | str,
        operation: str,
    ) -> None:
        self._instruments = instruments
        self._operation = operation
        self._call = Call(call) if isinstance(call, str) else call
        self._capture = site.capture()
        self._parent = otel_context.get_current()
        self._name = f"{operation} {model_id}"
        common: dict[str, str | int] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model_id,
        }
        if site.address is not None and site.port is not None:
            common["server.address"] = site.address
            common["server.port"] = site.port
        self._metric_attributes = common
        self._attributes: dict[str, Any] = {**common, **_request_attributes(self._call)}
        if self._capture:
            self._attributes.update(_input_content(self._call))
        self._started = 0.0
        self._first: float | None = None
        self.span: Span | None = None

    # -- the span's life ----------------------------------------------------------------

    def _begin(self, collector: Collector | None = None) -> None:
        self._started = time.perf_counter()
        tracer = self._instruments.tracer
        if tracer is not None:
            self.span = tracer.start_span(
                self._name,
                context=self._parent,
                kind=SpanKind.CLIENT,
                attributes=self._attributes,
            )
            if collector is not None:
                collector.observer = self._note

    def _note(self, name: str, attributes: Mapping[str, str | int | bool]) -> None:
        """A decision of the transport (the session tells it through the collector)."""
        if self.span is not None:
            self.span.add_event(name, attributes)

    def _first_token(self) -> None:
        self._first = time.perf_counter()
        if self.span is not None:
            self.span.add_event("llmkit.first_token")

    def parts(self, parts: Iterator[StreamPart], collector: Collector) -> Iterator[StreamPart]:
        """``parts`` inside the call's span: started when iteration starts, ended
        however the iteration ends. ``collector`` is the call's `Collector`."""
        self._begin(collector)
        try:
            for part in parts:
                if not isinstance(part, Warnings | Finish):
                    self._first_token()
                    yield part
                    break
                yield part
            yield from parts
        except GeneratorExit:
            close = getattr(parts, "close", None)
            try:
                if close is not None:
                    close()
            finally:
                self._end(collector, None, "closed")
            raise
        except BaseException as exc:
            self._end(collector, exc, "error")
            raise
        self._end(collector, None, "completed")

    async def aparts(
        self, parts: AsyncGenerator[StreamPart, None], collector: Collector
    ) -> AsyncGenerator[StreamPart, None]:
        """`parts` for an async stream (cancellation ends the span as ``cancelled``)."""
        self._begin(collector)
        try:
            async for part in parts:
                if not isinstance(part, Warnings | Finish):
                    self._first_token()
                    yield part
                    break
                yield part
            async for part in parts:
                yield part
        except GeneratorExit:
            try:
                await parts.aclose()
            finally:
                self._end(collector, None, "closed")
            raise
        except BaseException as exc:
            self._end(collector, exc, _ending(exc))
            raise
        self._end(collector, None, "completed")

    def warmup(self, run: Callable[[], WarmupResult]) -> WarmupResult:
        """Run a warm-up inside the call's span."""
        self._begin()
        try:
            result = run()
        except BaseException as exc:
            self._end(None, exc, _ending(exc))
            raise
        self._warmed(result)
        return result

    async def awarmup(self, run: Awaitable[WarmupResult]) -> WarmupResult:
        """`warmup` for an awaited warm-up."""
        self._begin()
        try:
            result = await run
        except BaseException as exc:
            self._end(None, exc, _ending(exc))
            raise
        self._warmed(result)
        return result

    def _warmed(self, result: WarmupResult) -> None:
        span = self.span
        if span is not None:
            span.set_attribute("llmkit.transport", result.transport)
            span.set_attribute("llmkit.warmup.prepared", result.prepared)
            if result.response_id is not None:
                span.set_attribute("gen_ai.response.id", result.response_id)
        self._finish(result.usage, None, None, "completed", result.response_id is not None)

    def _end(self, collector: Collector | None, exc: BaseException | None, how: str) -> None:
        """End the span and record the metrics, once, from what the call folded."""
        if collector is not None:
            collector.observer = None  # the span ends: nothing more is noted on it
        response: Response | None = None
        if isinstance(exc, LLMKitError) and exc.partial is not None:
            response = exc.partial
        elif collector is not None:
            response = collector.build()
        stamped = response is not None and response.metadata != ResponseMetadata()
        span = self.span
        if span is not None and response is not None:
            if stamped:
                span.set_attributes(_metadata_attributes(response.metadata))
            if collector is not None and collector.finished:
                span.set_attribute("gen_ai.response.finish_reasons", (str(response.finish_reason),))
            if self._capture and response.content:
                span.set_attribute("gen_ai.output.messages", _output_content(response))
        usage = response.usage if response is not None else None
        model = response.metadata.model if response is not None else None
        self._finish(usage, model, exc if how == "error" else None, how, stamped)

    def _finish(
        self,
        usage: Usage | None,
        response_model: str | None,
        exc: BaseException | None,
        how: str,
        usage_known: bool,
    ) -> None:
        duration = time.perf_counter() - self._started
        attributes: dict[str, str | int] = dict(self._metric_attributes)
        if response_model:
            attributes["gen_ai.response.model"] = response_model
        if exc is not None:
            attributes["error.type"] = _error_type(exc)
        span = self.span
        if span is not None:
            span.set_attribute("llmkit.end", how)
            if response_model:
                span.set_attribute("gen_ai.response.model", response_model)
            if usage is not None and usage_known:
                span.set_attributes(_usage_attributes(usage))
            if exc is not None:
                span.set_attribute("error.type", attributes["error.type"])
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, _error_type(exc)))
            span.end()
        instruments = self._instruments
        if instruments.duration is not None:
            instruments.duration.record(duration, attributes)
        if instruments.first_chunk is not None and self._first is not None:
            instruments.first_chunk.record(self._first - self._started, attributes)
        if instruments.tokens is not None and usage is not None and usage_known:
            instruments.tokens.record(
                usage.input_tokens, {**attributes, "gen_ai.token.type": "input"}
            )
            if self._operation != "warmup":
                instruments.tokens.record(
                    usage.output_tokens, {**attributes, "gen_ai.token.type": "output"}
                )


def _ending(exc: BaseException) -> str:
    """How a call that raised ``exc`` ended: cancelled (the caller left), else error."""
    return "cancelled" if type(exc).__name__ == "CancelledError" else "error"


def _request_attributes(call: Call) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if call.max_output_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = call.max_output_tokens
    if call.temperature is not None:
        attributes["gen_ai.request.temperature"] = call.temperature
    if call.top_p is not None:
        attributes["gen_ai.request.top_p"] = call.top_p
    return attributes


def _metadata_attributes(metadata: ResponseMetadata) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "llmkit.transport": metadata.transport,
        "llmkit.input_mode": metadata.input_mode,
        "llmkit.items_sent": metadata.input_items_sent,
        "llmkit.bytes_sent": metadata.bytes_sent,
        "llmkit.connection_reused": metadata.connection_reused,
    }
    optional = {
        "gen_ai.response.id": metadata.response_id,
        "llmkit.fallback_reason": metadata.fallback_reason,
        "llmkit.stream_id": metadata.stream_id,
        "llmkit.previous_response_id": metadata.previous_response_id,
        "llmkit.time_to_first_token": metadata.time_to_first_token,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    return attributes


def _usage_attributes(usage: Usage) -> dict[str, int]:
    return {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
    }


# -- content (opt-in) --------------------------------------------------------------------


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _input_content(call: Call) -> dict[str, str]:
    """``gen_ai.input.messages`` (and ``gen_ai.system_instructions``), as JSON."""
    messages: list[dict[str, Any]] = []
    system: list[dict[str, str]] = []
    for message in call.prompt:
        if isinstance(message, SystemMessage):
            system.append({"type": "text", "content": message.text})
        elif isinstance(message, UserMessage):
            messages.append({"role": "user", "parts": [_user_part(p) for p in message.parts]})
        elif isinstance(message, AssistantMessage):
            parts = [_assistant_part(p) for p in message.parts]
            messages.append({"role": "assistant", "parts": [p for p in parts if p]})
        elif isinstance(message, ToolMessage):
            messages.append({"role": "tool", "parts": [_tool_result(r) for r in message.results]})
    attributes = {"gen_ai.input.messages": _json(messages)}
    if system:
        attributes["gen_ai.system_instructions"] = _json(system)
    return attributes


def _user_part(part: object) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "content": part.text}
    if isinstance(part, ImagePart):
        return {"type": "uri", "modality": "image", "uri": part.url or part.file_id or ""}
    if isinstance(part, FilePart):
        return {"type": "file", "filename": part.filename, "uri": part.url or part.file_id}
    return {"type": type(part).__name__}  # pragma: no cover - every user part is above


def _assistant_part(part: object) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "text", "content": part.text}
    if isinstance(part, ToolCall):
        return {
            "type": "tool_call",
            "id": part.call_id,
            "name": part.name,
            "arguments": part.arguments,
        }
    if isinstance(part, ReasoningPart) and (part.summary or part.content):
        return {"type": "reasoning", "content": "\n".join((*part.summary, *part.content))}
    return None


def _tool_result(result: ToolResult) -> dict[str, Any]:
    return {"type": "tool_call_response", "id": result.call_id, "response": result.output}


def _output_content(response: Response) -> str:
    """``gen_ai.output.messages``, as JSON."""
    parts = [_assistant_part(p) for p in response.content]
    message = {
        "role": "assistant",
        "parts": [p for p in parts if p],
        "finish_reason": str(response.finish_reason),
    }
    return _json([message])


# -- tool loops ---------------------------------------------------------------------------


def loop_trace(site: Site | None, provider: str, model_id: str) -> LoopTrace | None:
    """The trace of one tool loop run, or None (not traced; decided once per run)."""
    site = site or DEFAULT_SITE
    instruments = site.instruments()
    if instruments is None or instruments.tracer is None:
        return None
    return LoopTrace(instruments.tracer, site.capture(), provider, model_id)


class LoopTrace:
    """A tool loop run's span (``invoke_agent``), current while the run goes on, so
    that its model calls and ``execute_tool`` spans nest under it."""

    __slots__ = ("_capture", "_provider", "_span", "_tracer", "_usage")

    def __init__(self, tracer: Tracer, capture: bool, provider: str, model_id: str) -> None:
        self._tracer = tracer
        self._capture = capture
        self._provider = provider
        self._usage = [0, 0]
        self._span = tracer.start_span(
            "invoke_agent ToolLoop",
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.provider.name": provider,
                "gen_ai.agent.name": "ToolLoop",
                "gen_ai.request.model": model_id,
            },
        )

    @contextlib.contextmanager
    def run(self) -> Iterator[LoopTrace]:
        """The run, with its span current; ends the span (an error sets its status)."""
        token = otel_context.attach(otel_trace.set_span_in_context(self._span))
        try:
            yield self
        except BaseException as exc:
            if _ending(exc) == "error":
                self._span.set_attribute("error.type", _error_type(exc))
                self._span.record_exception(exc)
                self._span.set_status(Status(StatusCode.ERROR, _error_type(exc)))
            raise
        finally:
            otel_context.detach(token)
            self._span.set_attribute("gen_ai.usage.input_tokens", self._usage[0])
            self._span.set_attribute("gen_ai.usage.output_tokens", self._usage[1])
            self._span.end()

    def step(self, number: int, response: Response) -> None:
        """A step's model call ended with ``response``."""
        self._usage[0] += response.usage.input_tokens
        self._usage[1] += response.usage.output_tokens
        self._span.set_attribute("llmkit.tool_loop.steps", number)

    @contextlib.contextmanager
    def tool(self, call: ToolCall) -> Iterator[Callable[[ToolResult, Exception | None], None]]:
        """An ``execute_tool {name}`` span, current while the tool runs; the caller
        gives it the result (and the exception a failed tool raised)."""
        attributes: dict[str, str] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.provider.name": self._provider,
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.call_id,
            "gen_ai.tool.type": "function",
        }
        if self._capture:
            attributes["gen_ai.tool.call.arguments"] = call.arguments
        span = self._tracer.start_span(
            f"execute_tool {call.name}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        token = otel_context.attach(otel_trace.set_span_in_context(span))

        def done(result: ToolResult, exc: Exception | None) -> None:
            if self._capture:
                span.set_attribute("gen_ai.tool.call.result", result.output)
            if result.is_error:
                error = _error_type(exc) if exc is not None else "tool_not_found"
                span.set_attribute("error.type", error)
                if exc is not None:
                    span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, error))

        try:
            yield done
        finally:
            otel_context.detach(token)
            span.end()
