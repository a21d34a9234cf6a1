"""Structured output (``output_type=``) end to end, the same on every path.

The local server answers a request with ``text.format`` / ``response_format`` with a
JSON value that fits the schema, made from the conversation (strings: the last user
text; numbers: the last tool output, else the number of user messages). So one
structured call has one expected ``output``, whatever the path: Chat Completions, the
Responses API over HTTP and over WebSocket, each through `Provider` and `AsyncProvider`
(`tests/loop.py` `TRANSPORTS`), by `generate` and by `stream`.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import json
import uuid
from collections.abc import AsyncGenerator, Iterator
from typing import Annotated, Any, Literal, assert_type

import httpx
import pydantic
import pytest
from loop import ADD, TRANSPORTS, Transport, async_provider, provider

import llmkit
from llmkit._schema import output_schema
from llmkit._schema_parse import parse_output
from llmkit.openai._encode import encode_request
from llmkit.openai.chat._encode import encode_chat_request
from llmkit.stream import aparsed, parsed
from llmkit.testing import ResponsesServer, _values as values

TEXT = "Weather in Paris"


class Sky(enum.Enum):
    CLEAR = "clear"
    CLOUDY = "cloudy"


class Place(pydantic.BaseModel):
    city: str
    country: str | None = None


class Weather(pydantic.BaseModel):
    place: Place
    temperature_c: float
    sky: Sky
    hours: list[Literal["morning", "evening"]]
    note: str = "none"


EXPECTED = Weather(
    place=Place(city=TEXT, country=TEXT),
    temperature_c=1.0,
    sky=Sky.CLEAR,
    hours=["morning"],
    note=TEXT,
)
ANSWER = json.dumps(
    {
        "place": {"city": TEXT, "country": TEXT},
        "temperature_c": 1,
        "sky": "clear",
        "hours": ["morning"],
        "note": TEXT,
    }
)
"""The server's answer text for `Weather` (JSON spaced as models write it)."""


class Strict(pydantic.BaseModel):
    """Fits the schema the server answers to, but not this validator."""

    city: str

    @pydantic.field_validator("city")
    @classmethod
    def _known(cls, value: str) -> str:
        raise ValueError(f"unknown city {value!r}")


@pytest.fixture(params=TRANSPORTS, ids=lambda t: t.id)
def transport(request: pytest.FixtureRequest) -> Transport:
    assert isinstance(request.param, Transport)
    return request.param


@pytest.fixture
def model(server: ResponsesServer, transport: Transport) -> Iterator[llmkit.LanguageModel]:
    with provider(server, transport) as p:
        yield p.language_model("scripted-1")


def structured(model: llmkit.LanguageModel, how: str, output_type: Any) -> Any:
    """The call's ``output`` by ``generate`` or by ``stream``."""
    if how == "generate":
        return model.generate(TEXT, output_type=output_type).output
    with model.stream(TEXT, output_type=output_type) as stream:
        for _ in stream:
            pass
    return stream.response.output


@pytest.mark.parametrize("how", ["generate", "stream"])
def test_the_same_output_on_every_path(model: llmkit.LanguageModel, how: str) -> None:
    assert structured(model, how, Weather) == EXPECTED


@pytest.mark.parametrize(
    ("output_type", "expected"),
    [
        (list[int], [1]),
        (int | None, 1),
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": 1}),
        (dict[str, int], {}),
    ],
    ids=["list", "optional-int", "json-schema-dict", "open-dict"],
)
def test_other_output_types_on_every_path(
    model: llmkit.LanguageModel, output_type: Any, expected: Any
) -> None:
    response = model.generate(TEXT, output_type=output_type)
    assert isinstance(response, llmkit.ParsedResponse)
    assert response.output == expected


def test_generate_is_the_fold_of_stream(model: llmkit.LanguageModel) -> None:
    response = model.generate(TEXT, output_type=Weather)
    with model.stream(TEXT, output_type=Weather) as stream:
        parts = list(stream)
    streamed = stream.response
    assert streamed.output == response.output == EXPECTED
    assert streamed.text == response.text == ANSWER
    assert [(p.type, getattr(p, "text", None)) for p in streamed.content] == [("text", ANSWER)]
    assert parts[-1].type == "finish"
    assert streamed.finish_reason is response.finish_reason is llmkit.FinishReason.STOP
    assert streamed.usage.output_tokens == response.usage.output_tokens > 1


def test_partial_output_grows_to_the_answer(model: llmkit.LanguageModel) -> None:
    with model.stream(TEXT, output_type=Weather) as stream:
        assert stream.partial_output is None  # nothing arrived yet
        seen: list[Any] = []
        for part in stream:
            if part.type == "text_delta":
                seen.append(stream.partial_output)
    assert len(seen) > 3
    assert seen[-1] == EXPECTED == stream.response.output
    assert any(isinstance(s, dict) for s in seen)  # a dict of the fields so far, first
    cities = [s.get("place", {}).get("city") for s in seen if isinstance(s, dict)]
    assert all(TEXT.startswith(c) for c in cities if c)  # the last string as far as it came


def test_a_refusal_is_a_refusal_error(
    server: ResponsesServer, model: llmkit.LanguageModel, transport: Transport
) -> None:
    server.faults.refuse_next("I can't share the weather.")
    with pytest.raises(llmkit.RefusalError) as caught:
        model.generate(TEXT, output_type=Weather)
    error = caught.value
    assert error.refusal == "I can't share the weather."
    assert isinstance(error, llmkit.OutputError) and not isinstance(error, llmkit.APIError)
    assert not error.retryable
    assert error.partial is not None
    assert error.partial.refusal == "I can't share the weather."
    assert error.partial.text == ""
    assert error.partial.finish_reason is llmkit.FinishReason.STOP
    assert error.partial.message.parts[0] == llmkit.TextPart(
        "I can't share the weather.", id=error.partial.message.parts[0].id, refusal=True
    )

    # The refusal belongs in the history: it replays exactly, and the next turn answers.
    history: list[llmkit.Message] = [
        llmkit.UserMessage(TEXT),
        error.partial.message,
        llmkit.UserMessage(TEXT),
    ]
    after = model.generate(llmkit.Call(history), output_type=Weather)
    assert after.output == EXPECTED.model_copy(update={"temperature_c": 2.0})
    assert server.stats.context_violations == 0
    if transport == "websocket":
        assert after.metadata.input_mode == "incremental"


def test_a_refusal_ends_the_stream_after_every_part(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    server.faults.refuse_next("No.")
    parts: list[llmkit.StreamPart] = []
    with (
        pytest.raises(llmkit.RefusalError, match="refused to answer: No"),
        model.stream(TEXT, output_type=Weather) as stream,
    ):
        for part in stream:
            parts.append(part)
    assert parts[-1].type == "finish"
    assert stream.partial_output is None
    with pytest.raises(llmkit.RefusalError) as again:  # the same error, parsed once
        stream.response  # noqa: B018
    assert again.value.refusal == "No."


@pytest.mark.parametrize("how", ["generate", "stream"])
def test_invalid_json_is_an_output_validation_error(
    server: ResponsesServer, model: llmkit.LanguageModel, how: str
) -> None:
    server.faults.invalid_json_next()
    with pytest.raises(llmkit.OutputValidationError) as caught:
        structured(model, how, Weather)
    error = caught.value
    assert error.partial is not None
    assert error.text == error.partial.text
    assert error.text == ANSWER[:-1]
    assert error.errors[0]["type"] == "json_invalid"
    assert "input" not in error.errors[0]
    assert not error.retryable


def test_an_answer_that_does_not_validate(model: llmkit.LanguageModel) -> None:
    with pytest.raises(llmkit.OutputValidationError) as caught:
        model.generate(TEXT, output_type=Strict)
    assert caught.value.text == json.dumps({"city": TEXT})
    assert caught.value.errors[0]["type"] == "value_error"
    assert caught.value.errors[0]["loc"] == ("city",)


def test_tool_calls_instead_of_an_answer(model: llmkit.LanguageModel) -> None:
    call = llmkit.Call("Sum 1..2 with add [steps=2]", tools=[ADD])
    with pytest.raises(llmkit.OutputValidationError) as caught:
        model.generate(call, output_type=Weather)
    assert caught.value.errors[0]["type"] == "tool_calls"
    assert caught.value.partial is not None
    assert caught.value.partial.tool_calls


def test_a_schema_that_cannot_be_strict_warns(model: llmkit.LanguageModel) -> None:
    with model.stream(TEXT, output_type=dict[str, int]) as stream:
        first = next(iter(stream))
        stream.until_done()
    assert isinstance(first, llmkit.Warnings)
    assert first.warnings == stream.response.warnings
    (warning,) = first.warnings
    assert warning.startswith("output_type sent with strict=false: #: an object with arbitrary")


def test_an_output_type_without_a_schema(model: llmkit.LanguageModel) -> None:
    class Opaque:
        pass

    with pytest.raises(llmkit.UsageError, match="has no JSON schema"):
        model.stream(TEXT, output_type=Opaque)
    with pytest.raises(llmkit.UsageError, match="must be JSON"):
        model.generate(TEXT, output_type={"type": "object", "default": Opaque()})


def test_structured_tool_loop_on_every_path(
    model: llmkit.LanguageModel, transport: Transport
) -> None:
    class Total(pydantic.BaseModel):
        total: int

    @llmkit.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    loop = llmkit.ToolLoop(model, [add], output_type=Total, max_steps=12, warmup=True)
    result = loop.run("Sum 1..10 with add [steps=10]")
    if transport == "websocket":  # the schema is part of every request, the warm-up's too
        assert result.warmup is not None and result.warmup.prepared
        assert {s.metadata.input_mode for s in result.steps} == {"incremental"}
    assert_type(result.output, Total)
    assert result.output == Total(total=55)
    assert result.finished and len(result.steps) == 11
    assert isinstance(result.response, llmkit.ParsedResponse)
    assert result.history[-1] == result.response.message
    streamed = loop.run("Sum 1..3 with add [steps=3]", on_part=lambda part: None)
    assert streamed.output == Total(total=6)


def test_a_structured_loop_that_runs_out_has_no_output(model: llmkit.LanguageModel) -> None:
    @llmkit.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    result = llmkit.ToolLoop(model, [add], output_type=int, max_steps=2).run(
        "Sum with add [steps=5]"
    )
    assert not result.finished
    with pytest.raises(llmkit.UsageError, match="max_steps"):
        result.output  # noqa: B018
    plain = llmkit.ToolLoop(model, [add], max_steps=1).run("x [steps=5]")
    assert plain.output is None


def test_a_refused_final_answer_keeps_the_loop_state(
    server: ResponsesServer, model: llmkit.LanguageModel
) -> None:
    @llmkit.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    loop = llmkit.ToolLoop(model, [add], output_type=int)
    server.faults.refuse_next("no")  # the tool call goes out as it is; the answer refuses
    with pytest.raises(llmkit.RefusalError):
        loop.run("Sum 1..1 with add [steps=1]")
    assert len(loop.steps) == 2
    assert loop.history[-1] == loop.steps[-1].response.message


def test_the_types_are_given_back() -> None:
    """Checked by mypy --strict: the overloads give ``T`` back, not Any."""

    def check(model: llmkit.LanguageModel, amodel: llmkit.AsyncLanguageModel) -> None:
        assert_type(model.generate("x"), llmkit.Response)
        assert_type(model.generate("x", output_type=Weather), llmkit.ParsedResponse[Weather])
        assert_type(model.generate("x", output_type=Weather).output, Weather)
        assert_type(model.generate("x", output_type=list[int]).output, list[int])
        assert_type(model.stream("x"), llmkit.Stream)
        assert_type(model.stream("x", output_type=Weather), llmkit.ParsedStream[Weather])
        assert_type(model.stream("x", output_type=Weather).response, llmkit.ParsedResponse[Weather])
        assert_type(amodel.stream("x", output_type=Weather), llmkit.AsyncParsedStream[Weather])
        assert_type(llmkit.ToolLoop(model, []).run("x").output, None)
        assert_type(llmkit.ToolLoop(model, [], output_type=Weather).run("x").output, Weather)
        assert_type(llmkit.AsyncToolLoop(amodel, [], output_type=int), llmkit.AsyncToolLoop[int])

    assert callable(check)


# -- asyncio in its own terms ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["chat", "http", "websocket"])
def test_async_stream_and_tool_loop(server: ResponsesServer, path: str) -> None:
    async def main() -> tuple[Any, list[Any], int]:
        async with async_provider(server, path) as p:
            model = p.language_model("scripted-1")
            partials: list[Any] = []
            async with model.stream(TEXT, output_type=Weather) as stream:
                async for _ in stream:
                    partials.append(stream.partial_output)
            loop = llmkit.AsyncToolLoop(model, [add_async], output_type=int, warmup=True)
            result = await loop.run("Sum 1..4 with add_async [steps=4]")
            return stream.response.output, partials, result.output

    output, partials, total = asyncio.run(main())
    assert output == EXPECTED == partials[-1]
    assert total == 10


async def add_async(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# -- encoding (no sockets) ---------------------------------------------------------------------


def test_responses_encoding() -> None:
    output = output_schema(Weather)
    body = encode_request("m", llmkit.Call("q"), output).body
    assert body["text"] == {
        "format": {
            "type": "json_schema",
            "name": "Weather",
            "schema": output.schema,
            "strict": True,
        }
    }
    verbose = llmkit.Call("q", provider_options={"openai": {"text_verbosity": "low"}})
    text = encode_request("m", verbose, output).body["text"]
    assert text["verbosity"] == "low" and text["format"]["name"] == "Weather"
    assert "text" not in encode_request("m", llmkit.Call("q")).body
    loose = encode_request("m", llmkit.Call("q"), output_schema(dict[str, int]))
    assert loose.body["text"]["format"]["strict"] is False
    assert loose.warnings == (
        "output_type sent with strict=false: #: an object with arbitrary keys "
        "(additionalProperties) cannot be strict",
    )


def test_chat_encoding() -> None:
    output = output_schema(list[int])
    body = encode_chat_request("m", llmkit.Call("q"), output).body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": output.schema, "strict": True},
    }
    both = llmkit.Call("q", provider_options={"openai": {"response_format": {"type": "text"}}})
    with pytest.raises(llmkit.UsageError, match="not both"):
        encode_chat_request("m", both, output)


# -- the stream, from scripted parts -----------------------------------------------------------


def scripted(*deltas: str, refusal: bool = False) -> list[llmkit.StreamPart]:
    usage, metadata = llmkit.Usage(), llmkit.ResponseMetadata()
    return [
        llmkit.TextStart("m", refusal=refusal),
        *(llmkit.TextDelta("m", d) for d in deltas),
        llmkit.TextEnd("m", "".join(deltas)),
        llmkit.Finish(llmkit.FinishReason.STOP, usage, metadata),
    ]


def test_parsed_stream_parses_once_and_partials_only_when_read() -> None:
    stream = parsed(
        llmkit.Stream(iter(scripted('{"value": [1', ", 2", "]}"))), output_schema(list[int])
    )
    with pytest.raises(llmkit.UsageError, match="not finished"):
        stream.response  # noqa: B018
    before: Any = stream.partial_output
    assert before is None
    next(stream), next(stream)
    first = stream.partial_output
    assert first == [1]  # a last number is kept as far as it came
    assert stream.partial_output is first  # the text did not grow: not parsed again
    assert stream.until_done().output == [1, 2]
    assert stream.response is stream.response  # parsed once


def test_an_empty_answer_and_a_cut_one() -> None:
    stream = parsed(llmkit.Stream(iter(scripted())), output_schema(Weather))
    with pytest.raises(llmkit.OutputValidationError) as caught:
        stream.until_done()
    assert caught.value.text == ""
    assert caught.value.errors[0]["type"] == "json_invalid"


def test_the_exception_tree() -> None:
    assert issubclass(llmkit.OutputError, llmkit.LLMKitError)
    assert llmkit.OutputError.__bases__ == (llmkit.LLMKitError,)  # its own branch
    assert issubclass(llmkit.RefusalError, llmkit.OutputError)
    assert issubclass(llmkit.OutputValidationError, llmkit.OutputError)
    error = llmkit.OutputValidationError("x", [{"type": "a", "msg": "one"}, {"msg": "two"}])
    assert str(error) == "the answer does not fit the output type (2 errors): one"
    assert repr(llmkit.RefusalError("no")) == "RefusalError('the model refused to answer: no')"


# -- the local server: answers that fit, the refusals it gives ---------------------------------


class Tree(pydantic.BaseModel):
    name: str
    children: list[Tree] = []


class Bounded(pydantic.BaseModel):
    small: int = pydantic.Field(ge=5, le=7)
    above: float = pydantic.Field(gt=0.5)
    below: int = pydantic.Field(lt=-3)
    step: int = pydantic.Field(multiple_of=4, ge=3)
    short: str = pydantic.Field(max_length=3)
    long: str = pydantic.Field(min_length=40)


class Cat(pydantic.BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(pydantic.BaseModel):
    kind: Literal["dog"]


@pytest.mark.parametrize(
    "output_type",
    [
        int,
        str,
        bool,
        list[int],
        Weather,
        Tree,
        Bounded,
        Cat | Dog,
        dict[str, int],
        tuple[int, str],
        datetime.datetime,
        uuid.UUID,
        datetime.date,
        Annotated[Cat | Dog, pydantic.Field(discriminator="kind")],
    ],
)
def test_the_server_answer_fits_the_type(output_type: Any) -> None:
    output = output_schema(output_type)
    seed = values.Seed("some user text that is long", 3)
    text = values.json_answer(output.schema, seed)
    parse_output(output, text)  # raises when the answer does not fit
    assert text == values.json_answer(output.schema, seed)  # deterministic


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "array", "items": {}}, "schema must be a JSON Schema of 'type: \"object\"'"),
        ({"anyOf": [{"type": "object"}]}, "got 'anyOf'"),
        ({"type": "object", "properties": {}}, "'additionalProperties' is required"),
        (
            {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
            "Missing 'a'",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/A"}},
                "required": ["a"],
                "additionalProperties": False,
                "$defs": {"A": {"type": "object", "properties": {}}},
            },
            "In context=('$defs', 'A'), 'additionalProperties'",
        ),
    ],
)
def test_the_server_refuses_a_schema_strict_mode_does_not_accept(
    server: ResponsesServer, schema: dict[str, Any], problem: str
) -> None:
    fmt = {"type": "json_schema", "name": "x", "schema": schema, "strict": True}
    responses = httpx.post(
        f"{server.base_url}/responses",
        json={"model": "m", "input": "q", "text": {"format": fmt}},
        timeout=10,
    )
    chat = httpx.post(
        f"{server.base_url}/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "q"}],
            "response_format": {"type": "json_schema", "json_schema": fmt},
        },
        timeout=10,
    )
    for answer, param in ((responses, "text.format.schema"), (chat, "response_format")):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "invalid_json_schema" and error["param"] == param
        assert error["message"].startswith("Invalid schema for response_format 'x': In context=")
        assert problem in error["message"]
    loose = {**fmt, "strict": False}
    body = {"model": "m", "input": "q", "text": {"format": loose}}
    assert httpx.post(f"{server.base_url}/responses", json=body, timeout=10).status_code == 200


def test_json_object_and_the_non_streaming_answers(server: ResponsesServer) -> None:
    fmt = {"type": "json_object"}
    responses = httpx.post(
        f"{server.base_url}/responses",
        json={"model": "m", "input": "q", "text": {"format": fmt}},
        timeout=10,
    ).json()
    assert responses["output"][0]["content"][0]["text"] == '{"answer": "q"}'
    assert responses["text"] == {"format": fmt}  # echoed, as the service does
    server.faults.refuse_next("nope")
    chat = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "q"}], "response_format": fmt},
        timeout=10,
    ).json()
    assert chat["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": "nope",
    }


SEED = values.Seed("abc", 3)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (True, None),
        ({"allOf": [{"type": "integer"}], "minimum": 5}, 5),
        ({"type": ["null", "string"]}, "abc"),
        ({"type": ["null"]}, None),
        ({"properties": {"a": {"type": "boolean"}}}, {"a": True}),
        ({"anyOf": [{"type": "null"}]}, None),
        ({"$ref": "#/$defs/missing"}, None),
        ({"$ref": "https://example.com/schema"}, None),
        ({"$ref": "#/$defs/n", "$defs": {"n": 7}}, None),
        ({"type": "integer", "multipleOf": 5, "maximum": 4}, 0),
        ({"type": "integer", "exclusiveMaximum": 2.5}, 2),
        ({"type": "integer", "exclusiveMinimum": 9}, 10),
        ({"type": "number", "exclusiveMaximum": 1.0}, 1.0 - 1e-9),
        ({"type": "number", "minimum": 4.5}, 4.5),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 0}, []),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [3, 3]),
        ({"type": "string", "format": "email"}, "user@example.com"),
        ({"type": "object"}, {}),
        ({"type": "mystery"}, None),
        ({}, None),
    ],
)
def test_a_value_for_each_kind_of_schema(schema: Any, expected: Any) -> None:
    assert values.value_for(schema, SEED) == expected


def test_a_recursive_schema_ends() -> None:
    node = {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}}
    value = values.value_for(node, SEED)
    depth = 0
    while value is not None:
        value, depth = value["next"], depth + 1
    assert 1 < depth <= values.MAX_DEPTH + 1
    endless = {"$ref": "#"}
    assert values.value_for(endless, SEED) is None


def test_an_async_parsed_stream_from_bare_parts() -> None:
    async def parts(items: list[llmkit.StreamPart]) -> AsyncGenerator[llmkit.StreamPart, None]:
        for item in items:
            yield item

    async def main() -> tuple[Any, Any]:
        whole = aparsed(llmkit.AsyncStream(parts(scripted('{"value": 4}'))), output_schema(int))
        cut = aparsed(llmkit.AsyncStream(parts(scripted('{"value": 4}')[:-1])), output_schema(int))
        async for _ in cut:  # no finish part: nothing to parse at the end
            pass
        return (await whole.until_done()).output, cut.partial_output

    output, partial = asyncio.run(main())
    assert output == 4 and partial == 4
