"""Several agents at once on one `AsyncProvider`, each an `AsyncToolLoop` task.

Each conversation keeps its own chain on its own pooled WebSocket connection, so every
step after the first sends only the new items, and the answers never mix.
"""

from __future__ import annotations

import asyncio

from _endpoint import endpoint

import llmkit


@llmkit.tool
async def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


def prompt(steps: int) -> str:
    return (
        f"Compute 1 + ... + {steps} with the add tool, one call per step, starting with "
        f"add(a=0, b=1). Then reply 'The answer is <sum>.' [steps={steps}]"
    )


async def main(base_url: str, model_id: str) -> None:
    async with llmkit.AsyncProvider(
        base_url=base_url, use_responses_api=True, websocket=True
    ) as provider:
        model = provider.language_model(model_id)
        loops = {n: llmkit.AsyncToolLoop(model, [add], max_steps=10) for n in (3, 4, 5)}
        results = await asyncio.gather(*(loop.run(prompt(n)) for n, loop in loops.items()))
    for result in results:
        modes = [step.metadata.input_mode for step in result.steps]
        print(f"{result.text} ({len(result.steps)} steps: {', '.join(modes)})")


with endpoint(__doc__) as where:
    asyncio.run(main(where.base_url, where.model))
