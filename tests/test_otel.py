"""OpenTelemetry traces and metrics (``llmkit._otel``), recorded by the real SDK.

Every test records into the OpenTelemetry SDK's in-memory span exporter and metric
reader, given to the provider with `llmkit.Telemetry` (the process-wide providers stay
unset, so the rest of the suite runs untraced). The global providers and a missing API
are tried in subprocesses, where setting them touches no other test.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from loop import API_KEY, PATHS, TRANSPORTS, Transport, async_provider, provider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import llmkit
from llmkit import _otel
from llmkit.testing import ResponsesServer

PROMPT = "Say hello"
TOOL_PROMPT = "Sum 1..2 with add [steps=2]"


@dataclass
class Recorded:
    """What the SDK recorded, and the `Telemetry` that sends it there."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    telemetry: llmkit.Telemetry

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def only(self, name_start: str = "") -> ReadableSpan:
        spans = [s for s in self.finished() if s.name.startswith(name_start)]
        assert len(spans) == 1, [s.name for s in self.finished()]
        return spans[0]

    def points(self, metric: str) -> list[HistogramDataPoint]:
        data = self.metrics.get_metrics_data()
        found: list[HistogramDataPoint] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found += [
                            p for p in item.data.data_points if isinstance(p, HistogramDataPoint)
                        ]
        return found


def recorder(capture_content: bool | None = None) -> Recorded:
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[metrics])
    return Recorded(spans, metrics, llmkit.Telemetry(tracers, meters, capture_content))


@pytest.fixture
def otel() -> Recorded:
    return recorder()


@pytest.fixture(params=TRANSPORTS)
def traced(
    request: pytest.FixtureRequest, server: ResponsesServer, otel: Recorded
) -> Iterator[tuple[llmkit.LanguageModel, Transport]]:
    transport: Transport = request.param
    with provider(server, transport, telemetry=otel.telemetry) as p:
        yield p.language_model("scripted"), transport


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def events(span: ReadableSpan) -> list[str]:
    return [e.name for e in span.events]


def check_call_span(span: ReadableSpan, response: llmkit.Response, server: ResponsesServer) -> None:
    """The span of a completed call says what its response says."""
    meta, usage, found = response.metadata, response.usage, attributes(span)
    assert span.name == "chat scripted"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "scripted",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "gen_ai.response.id": meta.response_id,
        "gen_ai.response.model": meta.model,
        "gen_ai.response.finish_reasons": (str(response.finish_reason),),
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
        "llmkit.transport": meta.transport,
        "llmkit.input_mode": meta.input_mode,
        "llmkit.items_sent": meta.input_items_sent,
        "llmkit.bytes_sent": meta.bytes_sent,
        "llmkit.connection_reused": meta.connection_reused,
        "llmkit.end": "completed",
    }
    assert {k: found.get(k) for k in expected} == expected
    assert found.get("llmkit.stream_id") == meta.stream_id
    assert found.get("llmkit.previous_response_id") == meta.previous_response_id
    assert found.get("llmkit.fallback_reason") == meta.fallback_reason
    assert meta.bytes_sent > 0 and usage.input_tokens > 0
    assert "llmkit.first_token" in events(span)
    assert "error.type" not in found
    assert "gen_ai.input.messages" not in found and "gen_ai.output.messages" not in found


# -- one span per call, on every path --------------------------------------------------------


def test_generate_makes_one_client_span_with_the_response_s_facts(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded, server: ResponsesServer
) -> None:
    model, transport = traced
    response = model.generate(llmkit.Call(PROMPT, temperature=0.5, max_output_tokens=64))
    span = otel.only()
    check_call_span(span, response, server)
    found = attributes(span)
    assert found["gen_ai.request.temperature"] == 0.5
    assert found["gen_ai.request.max_tokens"] == 64
    assert response.metadata.transport == ("websocket" if transport == "websocket" else "http")
    if transport == "websocket":
        assert "llmkit.websocket.send" in events(span)


def test_a_stream_s_span_ends_when_the_stream_ends(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded, server: ResponsesServer
) -> None:
    model, _ = traced
    with model.stream(PROMPT) as stream:
        assert otel.finished() == []  # nothing sent or ended before the iteration
        parts = list(stream)
        response = stream.response
    assert parts
    check_call_span(otel.only(), response, server)


def test_the_histograms_follow_the_conventions(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded, server: ResponsesServer
) -> None:
    model, _ = traced
    response = model.generate(PROMPT)
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "scripted",
        "gen_ai.response.model": "scripted",
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {}) == common
    assert duration.count == 1 and duration.sum > 0
    assert list(duration.explicit_bounds) == list(_otel.SECONDS_BUCKETS)
    tokens = {
        dict(p.attributes or {})["gen_ai.token.type"]: p
        for p in otel.points("gen_ai.client.token.usage")
    }
    assert tokens["input"].sum == response.usage.input_tokens
    assert tokens["output"].sum == response.usage.output_tokens
    assert dict(tokens["input"].attributes or {}) == {**common, "gen_ai.token.type": "input"}
    assert list(tokens["input"].explicit_bounds) == list(_otel.TOKEN_BUCKETS)
    (first,) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert first.count == 1 and 0 < first.sum <= duration.sum


def test_a_warmup_makes_a_warmup_span(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded
) -> None:
    model, transport = traced
    result = model.warmup(PROMPT)
    span = otel.only()
    found = attributes(span)
    assert span.name == "warmup scripted"
    assert found["gen_ai.operation.name"] == "warmup"
    assert found["llmkit.transport"] == result.transport
    assert found["llmkit.warmup.prepared"] is result.prepared
    if transport == "websocket":
        assert result.prepared and found["gen_ai.response.id"] == result.response_id
        assert found["gen_ai.usage.input_tokens"] == result.usage.input_tokens > 0
    else:
        assert "gen_ai.response.id" not in found


# -- failures and abandoned streams ----------------------------------------------------------


def test_a_failed_call_sets_the_error_status_and_type(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded, server: ResponsesServer
) -> None:
    model, _ = traced
    server.faults.fail_next(code="server_error", message="the model failed")
    with pytest.raises(llmkit.ResponseFailed) as caught:
        model.generate(PROMPT)
    span = otel.only()
    found = attributes(span)
    assert span.status.status_code is StatusCode.ERROR
    assert found["error.type"] == "ResponseFailed"
    assert found["llmkit.end"] == "error"
    assert "exception" in events(span)
    partial = caught.value.partial
    assert partial is not None and found["gen_ai.response.id"] == partial.metadata.response_id
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {})["error.type"] == "ResponseFailed"


def test_a_dropped_connection_is_an_error_span(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded, server: ResponsesServer
) -> None:
    model, _ = traced
    server.faults.drop_after(3)
    with pytest.raises(llmkit.ConnectionClosed):
        model.generate(PROMPT)
    found = attributes(otel.only())
    assert found["error.type"] == "ConnectionClosed"
    assert found["llmkit.end"] == "error"


def test_a_stream_closed_early_ends_its_span(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded
) -> None:
    model, _ = traced
    stream = model.stream(PROMPT)
    next(iter(stream))
    assert otel.finished() == []
    stream.close()
    span = otel.only()
    assert attributes(span)["llmkit.end"] == "closed"
    assert span.status.status_code is StatusCode.UNSET
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert "error.type" not in dict(duration.attributes or {})


def test_an_abandoned_stream_ends_its_span_when_collected(
    server: ResponsesServer, otel: Recorded
) -> None:
    with llmkit.Provider(
        api_key=API_KEY, base_url=server.base_url, use_responses_api=True, telemetry=otel.telemetry
    ) as p:
        stream = p.language_model("scripted").stream(PROMPT)
        next(iter(stream))
        del stream
        gc.collect()
        assert attributes(otel.only())["llmkit.end"] == "closed"


def test_a_stream_never_iterated_makes_no_span(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded
) -> None:
    model, _ = traced
    model.stream(PROMPT).close()
    assert otel.finished() == []


@pytest.mark.parametrize("path", PATHS)
def test_a_cancelled_async_stream_ends_its_span(
    server: ResponsesServer, otel: Recorded, path: str
) -> None:
    server.token_delay = 0.05

    async def main() -> None:
        async with async_provider(server, path, telemetry=otel.telemetry) as p:
            model = p.language_model("scripted")
            first = asyncio.Event()

            async def consume() -> None:
                async with model.stream("Tell me a long story about a lighthouse") as stream:
                    async for part in stream:
                        if isinstance(part, llmkit.TextDelta):
                            first.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(first.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    span = otel.only()
    assert attributes(span)["llmkit.end"] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET


# -- WebSocket decisions as span events -------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_refused_upgrade_notes_the_fallback(
    server: ResponsesServer, otel: Recorded, is_async: bool
) -> None:
    server.faults.reject_upgrades(status=503)
    with provider(server, Transport("websocket", is_async=is_async), telemetry=otel.telemetry) as p:
        response = p.language_model("scripted").generate(PROMPT)
    span = otel.only()
    assert response.metadata.fallback_reason
    assert attributes(span)["llmkit.fallback_reason"] == response.metadata.fallback_reason
    assert attributes(span)["llmkit.transport"] == "http"
    names = events(span)
    assert names.index("llmkit.websocket.connect_failed") < names.index("llmkit.fallback")
    fallback = next(e for e in span.events if e.name == "llmkit.fallback")
    assert dict(fallback.attributes or {}) == {
        "llmkit.fallback_reason": response.metadata.fallback_reason
    }


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_resends_and_reconnects_are_noted(
    server: ResponsesServer, otel: Recorded, is_async: bool
) -> None:
    with provider(server, Transport("websocket", is_async=is_async), telemetry=otel.telemetry) as p:
        model = p.language_model("scripted")
        first = model.generate(PROMPT)
        server.faults.error_next(code="previous_response_not_found", status=400)
        history: list[llmkit.Message] = [
            llmkit.UserMessage(PROMPT),
            first.message,
            llmkit.UserMessage("And again"),
        ]
        second = model.generate(llmkit.Call(history))
        server.faults.close_on_create()
        model.generate(PROMPT)
    spans = otel.finished()
    assert len(spans) == 3
    resend = next(e for e in spans[1].events if e.name == "llmkit.websocket.resend")
    assert dict(resend.attributes or {})["llmkit.resend"] == "full_input"
    assert dict(resend.attributes or {})["error.type"] == "BadRequestError"
    assert attributes(spans[1])["llmkit.input_mode"] == second.metadata.input_mode == "full"
    sends = [dict(e.attributes or {}) for e in spans[1].events if e.name == "llmkit.websocket.send"]
    assert [e["llmkit.input_mode"] for e in sends] == ["incremental", "full"]
    assert sends[0] == {
        "llmkit.connection": 0,
        "llmkit.connection_reused": True,
        "llmkit.chain": "continue",
        "llmkit.input_mode": "incremental",
        "llmkit.items_sent": 1,
        "llmkit.stream_id": first.metadata.stream_id,
    }
    assert first.metadata.stream_id
    connected = [e for e in spans[0].events if e.name == "llmkit.websocket.connected"]
    assert [dict(e.attributes or {}) for e in connected] == [{"llmkit.connection": 0}]
    assert "llmkit.websocket.reconnect" in events(spans[2])


# -- tool loops ------------------------------------------------------------------------------


def failing(a: int, b: int) -> int:
    """Add two integers (fails)."""
    raise RuntimeError("the tool broke")


def check_loop(otel: Recorded, steps: int) -> None:
    spans = otel.finished()
    (run,) = [s for s in spans if s.name == "invoke_agent ToolLoop"]
    calls = [s for s in spans if s.name == "chat scripted"]
    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    assert len(calls) == steps and len(tools) == steps - 1
    assert run.context is not None
    for child in (*calls, *tools):
        assert child.parent is not None and child.parent.span_id == run.context.span_id
        assert child.context is not None and child.context.trace_id == run.context.trace_id
    found = attributes(tools[0])
    assert found["gen_ai.operation.name"] == "execute_tool"
    assert found["gen_ai.tool.name"] == "add"
    assert found["gen_ai.tool.type"] == "function"
    assert found["gen_ai.tool.call.id"]
    assert "gen_ai.tool.call.arguments" not in found
    assert attributes(run)["gen_ai.usage.input_tokens"] == sum(
        attributes(c)["gen_ai.usage.input_tokens"] for c in calls
    )


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.mark.parametrize("path", PATHS)
def test_a_tool_loop_nests_its_calls_and_tools(
    server: ResponsesServer, otel: Recorded, path: str
) -> None:
    with provider(server, path, telemetry=otel.telemetry) as p:
        result = llmkit.ToolLoop(p.language_model("scripted"), [add]).run(TOOL_PROMPT)
    assert result.finished
    check_loop(otel, len(result.steps))


@pytest.mark.parametrize("path", PATHS)
def test_an_async_tool_loop_nests_its_calls_and_tools(
    server: ResponsesServer, otel: Recorded, path: str
) -> None:
    async def main() -> llmkit.ToolLoopResult[None]:
        async with async_provider(server, path, telemetry=otel.telemetry) as p:
            return await llmkit.AsyncToolLoop(p.language_model("scripted"), [add]).run(TOOL_PROMPT)

    result = asyncio.run(main())
    assert result.finished
    check_loop(otel, len(result.steps))


def test_a_failing_tool_is_an_error_span(server: ResponsesServer, otel: Recorded) -> None:
    with provider(server, "http", telemetry=otel.telemetry) as p:
        tool = llmkit.tool(name="add")(failing)
        llmkit.ToolLoop(p.language_model("scripted"), [tool], max_steps=2).run(TOOL_PROMPT)
    span = next(s for s in otel.finished() if s.name == "execute_tool add")
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == "RuntimeError"


def test_a_failed_run_sets_the_parent_span_s_error(server: ResponsesServer, otel: Recorded) -> None:
    server.faults.reject_requests(status=503)
    with (
        provider(server, "http", telemetry=otel.telemetry) as p,
        pytest.raises(llmkit.InternalServerError),
    ):
        llmkit.ToolLoop(p.language_model("scripted"), [add]).run(TOOL_PROMPT)
    run = otel.only("invoke_agent")
    assert run.status.status_code is StatusCode.ERROR
    assert attributes(run)["error.type"] == "InternalServerError"


# -- content: never unless asked; never the key ----------------------------------------------


def all_values(spans: list[ReadableSpan]) -> str:
    values = [json.dumps(attributes(s), default=str) for s in spans]
    values += [json.dumps(dict(e.attributes or {}), default=str) for s in spans for e in s.events]
    return "\n".join(values)


@pytest.mark.parametrize("path", PATHS)
def test_no_content_by_default_and_never_the_key(
    server: ResponsesServer, otel: Recorded, path: str
) -> None:
    with provider(server, path, telemetry=otel.telemetry) as p:
        llmkit.ToolLoop(p.language_model("scripted"), [add]).run(TOOL_PROMPT)
    text = all_values(otel.finished())
    assert "Sum 1..2" not in text and "Echo" not in text and "The answer" not in text
    assert API_KEY not in text


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_content_is_recorded_when_asked(
    server: ResponsesServer, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "environment":
        monkeypatch.setenv(_otel.CAPTURE_ENV, "true")
        otel = recorder()
    else:
        monkeypatch.setenv(_otel.CAPTURE_ENV, "true")  # the argument wins over it
        otel = recorder(capture_content=True)
    with provider(server, "http", telemetry=otel.telemetry) as p:
        call = llmkit.Call([llmkit.SystemMessage("Be brief."), llmkit.UserMessage(TOOL_PROMPT)])
        result = llmkit.ToolLoop(p.language_model("scripted"), [add]).run(call)
    calls = [s for s in otel.finished() if s.name == "chat scripted"]
    first = attributes(calls[0])
    assert json.loads(first["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": TOOL_PROMPT}]}
    ]
    assert json.loads(first["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}
    ]
    (output,) = json.loads(first["gen_ai.output.messages"])
    assert output["parts"][0]["type"] == "tool_call" and output["parts"][0]["name"] == "add"
    last = json.loads(attributes(calls[-1])["gen_ai.output.messages"])
    assert last[0]["parts"][-1] == {"type": "text", "content": result.text}
    roles = [m["role"] for m in json.loads(attributes(calls[-1])["gen_ai.input.messages"])]
    assert roles == ["user", *["assistant", "tool"] * (len(calls) - 1)]
    tool = next(s for s in otel.finished() if s.name == "execute_tool add")
    assert json.loads(attributes(tool)["gen_ai.tool.call.arguments"]) == {"a": 0, "b": 1}
    assert attributes(tool)["gen_ai.tool.call.result"] == "1"
    assert API_KEY not in all_values(otel.finished())


def test_the_argument_can_turn_the_environment_s_capture_off(
    server: ResponsesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_otel.CAPTURE_ENV, "true")
    otel = recorder(capture_content=False)
    with provider(server, "http", telemetry=otel.telemetry) as p:
        p.language_model("scripted").generate(PROMPT)
    assert "gen_ai.input.messages" not in attributes(otel.only())


# -- nothing configured: nothing recorded, nothing made ----------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_without_a_provider_configured_nothing_is_traced(
    server: ResponsesServer, transport: Transport
) -> None:
    """The global providers are the API's stand-ins: no trace, no wrapper, no
    instruments, and the call's stream is the model's own generator."""
    with provider(server, transport) as p:
        model = p.language_model("scripted")
        model.generate(PROMPT)
        site = p._site
        assert isinstance(site, _otel.Site)
        assert site.instruments() is None
        assert site._cache is None
    assert _otel.DEFAULT_SITE._cache is None


def test_without_a_provider_configured_a_stream_is_not_wrapped(
    server: ResponsesServer, otel: Recorded
) -> None:
    """Untraced, a stream iterates the model's own generator (no hop per event) and its
    collector has no observer; traced, the one wrapper of `CallTrace.parts`."""
    with llmkit.Provider(api_key=API_KEY, base_url=server.base_url, use_responses_api=True) as p:
        stream = p.language_model("scripted").stream(PROMPT)
        assert stream._parts.__qualname__ == "ResponsesModel._parts"  # type: ignore[attr-defined]
        assert stream._collector.observer is None
        stream.close()
    with provider(server, "http", telemetry=otel.telemetry) as p:
        stream = p.language_model("scripted").stream(PROMPT)
        assert stream._parts.__qualname__ == "CallTrace.parts"  # type: ignore[attr-defined]
        stream.close()


def run_python(code: str, server: ResponsesServer) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), server.base_url],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_the_api_installed_calls_work_untraced(server: ResponsesServer) -> None:
    out = run_python(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if the extra were not installed
        import llmkit
        from llmkit import _otel
        assert not _otel.available()
        with llmkit.Provider(base_url=sys.argv[1], api_key="sk-x") as provider:
            print(provider.language_model("scripted").generate("Say hello").text)
        """,
        server,
    )
    assert "hello" in out.lower()


def test_the_api_is_imported_on_the_first_call_and_the_sdk_never(server: ResponsesServer) -> None:
    out = run_python(
        """
        import sys
        import llmkit
        print("opentelemetry" in sys.modules)
        with llmkit.Provider(base_url=sys.argv[1], api_key="sk-x") as provider:
            provider.language_model("scripted").generate("Say hello")
        print("opentelemetry.trace" in sys.modules, "opentelemetry.sdk" in sys.modules)
        """,
        server,
    )
    assert out.split() == ["False", "True", "False"]


def test_the_global_providers_are_used(server: ResponsesServer) -> None:
    out = run_python(
        """
        import sys
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import llmkit

        spans = InMemorySpanExporter()
        tracers = TracerProvider()
        tracers.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(tracers)
        with llmkit.Provider(base_url=sys.argv[1], api_key="sk-x") as provider:
            provider.language_model("scripted").generate("Say hello")
        print([s.name for s in spans.get_finished_spans()])
        """,
        server,
    )
    assert out.strip() == "['chat scripted']"


def test_a_structured_stream_is_traced(
    traced: tuple[llmkit.LanguageModel, Transport], otel: Recorded
) -> None:
    model, _ = traced
    with model.stream(PROMPT, output_type=dict) as stream:
        response = stream.until_done()
    assert response.warnings  # a Warnings part came first: the span waits for a token
    span = otel.only()
    assert attributes(span)["gen_ai.response.id"] == response.metadata.response_id
    assert events(span).count("llmkit.first_token") == 1


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_failed_warmup_is_an_error_span(
    server: ResponsesServer, otel: Recorded, is_async: bool
) -> None:
    server.faults.reject_upgrades(status=429)
    with (
        provider(server, Transport("websocket", is_async=is_async), telemetry=otel.telemetry) as p,
        pytest.raises(llmkit.RateLimitError),
    ):
        p.language_model("scripted").warmup(PROMPT)
    span = otel.only()
    assert span.name == "warmup scripted"
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == "RateLimitError"


def test_request_settings_and_user_parts_are_recorded(server: ResponsesServer) -> None:
    otel = recorder(capture_content=True)
    image = llmkit.ImagePart(url="https://example.com/cat.png")
    call = llmkit.Call([llmkit.UserMessage([llmkit.TextPart("What is it?"), image])], top_p=0.9)
    with provider(server, "http", telemetry=otel.telemetry) as p:
        p.language_model("scripted").generate(call)
    found = attributes(otel.only())
    assert found["gen_ai.request.top_p"] == 0.9
    (message,) = json.loads(found["gen_ai.input.messages"])
    assert message["parts"][1] == {
        "type": "uri",
        "modality": "image",
        "uri": "https://example.com/cat.png",
    }
