"""Every example script runs against the local server, as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
EXPECTED = {
    "generate.py": "Echo: What is the capital of France?",
    "streaming.py": "Echo: Tell me a short story about a lighthouse.",
    "tool_loop.py": "The answer is 15.",
    "warmup.py": "first turn: incremental, 0 items sent",
    "chat_vs_responses.py": "Responses (WebSocket)",
    "structured_output.py": "tool loop: 6 steps, total: 15",
    "async_agents.py": "(6 steps: full, incremental, incremental, incremental, incremental,",
    "otel.py": "invoke_agent ToolLoop",
    "steer.py": "Echo: Also mention the keeper's dog",
}


def test_every_example_is_checked() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_the_example_runs(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert EXPECTED[script] in done.stdout
    assert done.stderr == ""
