"""Warm a WebSocket connection up before the first turn (``generate: false``).

The warm-up sends the instructions, tools and history without generating; it is billed
for input tokens. The next turn then continues from it and sends only what is new.
Over HTTP (or on the Chat Completions path) `warmup` sends nothing and says so.
`ToolLoop(..., warmup=True)` does the same before a tool loop.
"""

from __future__ import annotations

from _endpoint import endpoint

import llmkit


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


with endpoint(__doc__) as where:
    provider = llmkit.Provider(base_url=where.base_url, use_responses_api=True, websocket=True)
    with provider:
        model = provider.language_model(where.model)
        call = llmkit.Call(
            [
                llmkit.SystemMessage("Use the add tool for arithmetic."),
                llmkit.UserMessage("Compute 0 + 1 with the tool [steps=1]"),
            ],
            tools=[add.spec],
        )
        warm = model.warmup(call)
        print(f"warm-up over {warm.transport}: {warm.response_id}, {warm.usage.input_tokens} in")
        response = model.generate(call)  # continues the warm-up: nothing new to send
        meta = response.metadata
        print(f"first turn: {meta.input_mode}, {meta.input_items_sent} items sent")
        print(f"the model calls: {[(c.name, c.arguments) for c in response.tool_calls]}")

        prompt = "Compute 1 + 2 with the tool, one call per number, from add(a=0, b=1) [steps=2]"
        result = llmkit.ToolLoop(model, [add], warmup=True).run(prompt)
        assert result.warmup is not None
        print(f"ToolLoop warmed up over {result.warmup.transport} first")
        print(result.text)
