"""PNG plots of the results (matplotlib with the non-interactive Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from bench.memory import TRANSPORTS, linearity
from bench.toolloop import LOOPS

if TYPE_CHECKING:
    from bench.report import Results

COLORS = {"llmkit": "#1f77b4", "openai": "#d62728", "floor": "#7f7f7f"}
STYLES = {"HTTP": "--", "WS": "-"}
# The memory plot has only llmkit: one color and marker per transport.
TRANSPORT_LOOK = {"http": ("#1f77b4", "o", "--"), "websocket": ("#ff7f0e", "s", "-")}
DPI = 120


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _loop_style(name: str) -> dict[str, Any]:
    library, transport = name.split()
    return {"color": COLORS[library], "linestyle": STYLES[transport], "label": name}


def plot_stream(results: Results, out_dir: Path) -> Path | None:
    """Per client, a sync bar and an asyncio bar side by side (asyncio: lighter)."""
    stream = results.stream
    if stream is None:
        return None
    fig, (cpu_ax, rate_ax) = plt.subplots(1, 2, figsize=(12, 4.6))
    clients = [c for c in stream.consumers if c.flavour == "sync"]
    width = 0.4
    for ax, figure, title, fmt in (
        (cpu_ax, "cpu", "client CPU per event (µs, lower is better)", "{:.1f}"),
        (rate_ax, "rate", "events per second, thousands (wall)", "{:.0f}"),
    ):
        for offset, flavour, alpha, label in (
            (-width / 2, "sync", 1.0, "sync (left)"),
            (width / 2, "async", 0.45, "asyncio (right, lighter)"),
        ):
            bars = [stream.get(c.library, c.transport, flavour) for c in clients]
            values = [
                b.cpu_us_per_event if figure == "cpu" else b.events_per_second / 1000 for b in bars
            ]
            drawn = ax.bar(
                [i + offset for i in range(len(clients))],
                values,
                width,
                color=[COLORS[b.library] for b in bars],
                alpha=alpha,
                hatch=["" if b.transport == "http" else "//" for b in bars],
                edgecolor="black",
                label=label,
            )
            ax.bar_label(drawn, labels=[fmt.format(v) for v in values], fontsize=7)
        ax.set_xticks(range(len(clients)), [c.name for c in clients])
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.margins(y=0.15)
        ax.legend(fontsize=8)
    fig.suptitle(f"Stream throughput: {stream.events:,} text deltas (median of {stream.repeat})")
    return _save(fig, out_dir / "stream_throughput.png")


def plot_toolloop(results: Results, out_dir: Path) -> list[Path]:
    loops = results.toolloop
    if loops is None:
        return []
    runs = len(loops["llmkit WS"].runs)
    fig, (all_ax, ws_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, names in ((all_ax, LOOPS), (ws_ax, [n for n in LOOPS if n.endswith("WS")])):
        for name in names:
            values = loops[name].per_turn("bytes_sent")
            ax.plot(range(1, len(values) + 1), values, marker=".", **_loop_style(name))
        ax.set_xlabel("turn (model call)")
        ax.set_ylabel("bytes sent")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    all_ax.set_title("all four loops", fontsize=10)
    ws_ax.set_title("WebSocket loops only (incremental input)", fontsize=10)
    fig.suptitle(f"Bytes sent per turn (median of {runs} runs)")
    paths = [_save(fig, out_dir / "toolloop_bytes.png")]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in LOOPS:
        values = [v * 1e3 for v in loops[name].per_turn("cpu")]
        ax.plot(range(1, len(values) + 1), values, marker=".", **_loop_style(name))
    ax.set_xlabel("turn (model call)")
    ax.set_ylabel("client CPU ms (log scale)")
    ax.set_yscale("log")
    ax.set_title(f"Client CPU per turn (median of {runs} runs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "toolloop_cpu.png"))
    return paths


def plot_memory(results: Results, out_dir: Path) -> Path | None:
    memory = results.memory
    if memory is None:
        return None
    fig, (mem_ax, time_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for transport in TRANSPORTS:
        sizes = memory[transport]
        label = "llmkit HTTP" if transport == "http" else "llmkit WS"
        color, marker, linestyle = TRANSPORT_LOOK[transport]
        xs = [r.words for r in sizes]
        walls = [r.wall for r in sizes]
        time_ax.plot(
            xs,
            walls,
            marker=marker,
            linestyle="none",
            color=color,
            fillstyle="none",
            label=f"{label} wall",
        )
        for ax, figure, scale in ((mem_ax, "peak_bytes", 1e-6), (time_ax, "cpu", 1.0)):
            ys = [getattr(r, figure) * scale for r in sizes]
            suffix = " CPU" if figure == "cpu" else ""
            ax.plot(xs, ys, marker=marker, linestyle="none", color=color, label=label + suffix)
            fit = linearity(sizes, figure)
            ends = [0, max(xs)]
            ax.plot(
                ends,
                [(fit.intercept + fit.slope * x) * scale for x in ends],
                color=color,
                linestyle=linestyle,
                linewidth=1,
                label=f"{label} fit (R² {fit.r2:.3f})",
            )
    mem_ax.set_title("peak RSS growth during generate() (MB)", fontsize=10)
    time_ax.set_title("generate() client CPU (filled, fitted) and wall (hollow), s", fontsize=10)
    for ax in (mem_ax, time_ax):
        ax.set_xlabel("tokens in the answer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    return _save(fig, out_dir / "memory.png")


def plot_ttft(results: Results, out_dir: Path) -> Path | None:
    ttft = results.ttft
    if ttft is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.2))
    names = [r.name for r in ttft]
    values = [r.median_us for r in ttft]
    colors = [COLORS[r.library] for r in ttft]
    hatches = ["" if r.transport == "http" else "//" for r in ttft]
    bars = ax.bar(names, values, color=colors, hatch=hatches, edgecolor="black")
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    ax.set_title("Median time to first text delta (µs), server ttft = 0")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.margins(y=0.15)
    return _save(fig, out_dir / "ttft.png")


def plot_all(results: Results, out_dir: Path) -> list[Path]:
    paths = [
        plot_stream(results, out_dir),
        *plot_toolloop(results, out_dir),
        plot_memory(results, out_dir),
        plot_ttft(results, out_dir),
    ]
    return [p for p in paths if p is not None]
