"""One question, one answer: `generate()` on the Responses API."""

from __future__ import annotations

from _endpoint import endpoint

import llmkit

with endpoint(__doc__) as where:
    with llmkit.Provider(base_url=where.base_url, use_responses_api=True) as provider:
        model = provider.language_model(where.model)
        response = model.generate(
            llmkit.Call(
                [
                    llmkit.SystemMessage("You are terse."),
                    llmkit.UserMessage("What is the capital of France?"),
                ],
                max_output_tokens=200,
            )
        )
    print(response.text)
    print(f"finish: {response.finish_reason}, usage: {response.usage}")
    print(f"id: {response.id}, via {response.metadata.transport}")
