"""Typed answers: `output_type=` on `generate`, `stream` and `ToolLoop`.

The model answers in JSON that follows the type's schema (strict where OpenAI allows it);
llmkit parses it: ``response.output`` is a validated `Weather`, ``stream.partial_output``
the answer so far, and a refusal or an answer that does not fit is a typed error.
"""

from __future__ import annotations

from typing import Literal

import pydantic
from _endpoint import endpoint

import llmkit


class Weather(pydantic.BaseModel):
    city: str
    temperature_c: float
    sky: Literal["clear", "cloudy", "rain"]


class Sum(pydantic.BaseModel):
    total: int


@llmkit.tool
def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


with (
    endpoint(__doc__) as where,
    llmkit.Provider(base_url=where.base_url, use_responses_api=True) as provider,
):
    model = provider.language_model(where.model)
    call = llmkit.Call("What is the weather in Paris?")

    response = model.generate(call, output_type=Weather)
    weather: Weather = response.output
    print(f"generate: {weather!r}")

    with model.stream(call, output_type=Weather) as stream:
        seen = 0
        for part in stream:
            if isinstance(part, llmkit.TextDelta) and stream.partial_output is not None:
                seen += 1
    print(f"stream: {seen} partial answers, then {stream.response.output!r}")

    try:
        model.generate(call, output_type=Weather)
    except llmkit.RefusalError as exc:  # the model may refuse
        print(f"refused: {exc.refusal}")
    except llmkit.OutputValidationError as exc:  # or answer with something else
        print(f"not a Weather ({exc.errors[0]['msg']}): {exc.text}")

    loop = llmkit.ToolLoop(model, [add], output_type=Sum, max_steps=10)
    result = loop.run("Add 1 + 2 + 3 + 4 + 5 with the add tool, one call per step [steps=5]")
    print(f"tool loop: {len(result.steps)} steps, total: {result.output.total}")
