"""Steer a running response: add user input while the model answers (WebSocket mode).

`stream.steer(text)` queues the input into the running response; the server stops it at
a safe point and continues by itself with a successor response that sees the input (a
`Steered` part marks the switch). `response.messages` then hold the history as the
server holds it (the first answer, the steer input, the successor's answer), so the
next turn sends only what is new. Input the server did not apply comes back on
`stream.unapplied_steers`: here it goes with the next request, so nothing is lost.
Against a real endpoint steering needs a model that supports it (``gpt-6-astra``).
"""

from __future__ import annotations

from _endpoint import endpoint

import llmkit

STEER = "Also mention the keeper's dog"

with endpoint(__doc__) as where:
    provider = llmkit.Provider(base_url=where.base_url, use_responses_api=True, websocket=True)
    with provider:
        model = provider.language_model(where.model)
        history: list[llmkit.Message] = [
            llmkit.UserMessage("Tell me a short story about a lighthouse on a rocky coast.")
        ]
        steered = False
        with model.stream(llmkit.Call(history)) as stream:
            for part in stream:
                if isinstance(part, llmkit.TextDelta):
                    print(part.delta, end="", flush=True)
                    if not steered:  # from any thread; here, after the first words
                        stream.steer(STEER)
                        steered = True
                elif isinstance(part, llmkit.Steered):
                    print(f"\n[steered: {part.previous_response_id} -> {part.response_id}]")
                elif isinstance(part, llmkit.SteerFailed):
                    print(f"\n[not steered: {part.error.code}]")
        print()
        response = stream.response
        history += response.messages  # the server's history, steer input included
        if stream.unapplied_steers:  # too late, or refused: ask again, nothing lost
            history += stream.unapplied_steers
            response = model.generate(llmkit.Call(history))
            history += response.messages
        print(f"history: {' / '.join(type(m).__name__ for m in history)}")

        history.append(llmkit.UserMessage("Thanks!"))
        following = model.generate(llmkit.Call(history))
        meta = following.metadata
        print(f"next turn: {meta.input_mode}, {meta.input_items_sent} items sent")
