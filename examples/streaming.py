"""Print an answer as it streams, then use the folded `Response`."""

from __future__ import annotations

from _endpoint import endpoint

import llmkit

with endpoint(__doc__) as where:
    with llmkit.Provider(base_url=where.base_url, use_responses_api=True) as provider:
        model = provider.language_model(where.model)
        with model.stream(llmkit.Call("Tell me a short story about a lighthouse.")) as stream:
            for part in stream:
                if isinstance(part, llmkit.TextDelta):
                    print(part.delta, end="", flush=True)
            print()
        response = stream.response  # the same Response generate() would have returned
    first_token = response.metadata.time_to_first_token or 0.0
    print(f"{response.usage.output_tokens} tokens, first after {first_token * 1000:.0f} ms")
