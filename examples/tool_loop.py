"""An agent with a Python tool, run by `ToolLoop` over WebSocket mode.

Every step after the first sends only the new items (the tool results); the loop
reports each step's metadata.
"""

from __future__ import annotations

from _endpoint import endpoint

import llmkit


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


PROMPT = (
    "Compute 1 + 2 + 3 + 4 + 5 with the add tool, one call per step, starting with "
    "add(a=0, b=1). Then reply 'The answer is <sum>.' [steps=5]"
)

with endpoint(__doc__) as where:
    provider = llmkit.Provider(base_url=where.base_url, use_responses_api=True, websocket=True)
    with provider:
        loop = llmkit.ToolLoop(provider.language_model(where.model), [add], max_steps=10)
        result = loop.run(PROMPT)
    for step in result.steps:
        calls = ", ".join(f"{c.name}({c.arguments})" for c in step.response.tool_calls)
        meta = step.metadata
        print(f"step {step.number}: {calls or 'answer'} - {meta.bytes_sent} B {meta.input_mode}")
    print(result.text)
