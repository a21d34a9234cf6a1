"""A tool loop over WebSocket mode, traced with OpenTelemetry (``pip install "llmkit[otel]"``
and the OpenTelemetry SDK).

The global tracer and meter providers are set as an application sets them; llmkit uses
them without being told. The console exporters print one line per span (children
first: each model call and tool under the loop's span) and, at shutdown, the GenAI
client histograms.
"""

from __future__ import annotations

from collections.abc import Sequence

from _endpoint import endpoint
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    HistogramDataPoint,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import llmkit

SHOWN = (
    "llmkit.transport",
    "llmkit.input_mode",
    "llmkit.bytes_sent",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.call.id",
)


def one_line(span: ReadableSpan) -> str:
    """A span's name, duration, the attributes of `SHOWN` and its events' names."""
    attributes = span.attributes or {}
    facts = " ".join(f"{k.split('.', 1)[1]}={attributes[k]!s}" for k in SHOWN if k in attributes)
    events = ",".join(e.name.removeprefix("llmkit.") for e in span.events)
    took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    return f"{span.name:<24} {took:7.1f} ms  {facts}  [{events}]\n"


def histograms(data: MetricsData) -> str:
    """Each histogram's name and, per attribute set, its count and sum."""
    lines: list[str] = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points: Sequence[object] = metric.data.data_points
                for point in points:
                    if isinstance(point, HistogramDataPoint):
                        kind = (point.attributes or {}).get("gen_ai.token.type", "")
                        total = round(point.sum, 3)
                        lines.append(f"{metric.name} {kind}: count={point.count} sum={total}")
    return "\n".join(lines) + "\n"


tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
trace.set_tracer_provider(tracer_provider)
reader = PeriodicExportingMetricReader(
    ConsoleMetricExporter(formatter=histograms), export_interval_millis=3_600_000
)
meter_provider = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(meter_provider)


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


PROMPT = (
    "Compute 1 + 2 + 3 with the add tool, one call per step, starting with add(a=0, b=1). "
    "Then reply 'The answer is <sum>.' [steps=3]"
)

with endpoint(__doc__) as where:
    provider = llmkit.Provider(base_url=where.base_url, use_responses_api=True, websocket=True)
    with provider:
        loop = llmkit.ToolLoop(provider.language_model(where.model), [add], max_steps=10)
        result = loop.run(PROMPT)
    print(result.text)
meter_provider.shutdown()  # exports the histograms
tracer_provider.shutdown()
