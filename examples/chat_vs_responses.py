"""The same agent code on Chat Completions, the Responses API, and WebSocket mode.

Only the `Provider` arguments differ; calls, results and exceptions are the same.
"""

from __future__ import annotations

from _endpoint import endpoint

import llmkit


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


# label: (use_responses_api, websocket)
PATHS = {
    "Chat Completions": (False, False),
    "Responses (HTTP)": (True, False),
    "Responses (WebSocket)": (True, True),
}

with endpoint(__doc__) as where:
    answers = {}
    for label, (responses, websocket) in PATHS.items():
        provider = llmkit.Provider(
            base_url=where.base_url, use_responses_api=responses, websocket=websocket
        )
        with provider:
            loop = llmkit.ToolLoop(provider.language_model(where.model), [add])
            result = loop.run("Add 1, 2 and 3 with the tool, one call per step [steps=3]")
        sent = sum(step.metadata.bytes_sent for step in result.steps)
        print(f"{label:<22} {len(result.steps)} steps, {sent:>5} B sent: {result.text}")
        answers[label] = result.text
    assert len(set(answers.values())) == 1, "the three paths disagree"
