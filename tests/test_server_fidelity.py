"""The official `openai` client (pinned) against the local server: every event parses typed.

openai 3.54.0's `responses.connect()` opens its `websockets` connection without a context
manager, which websockets 17.1+ flags with a DeprecationWarning on first send; that
warning is the client library's, so the WebSocket tests filter exactly that message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
)
from openai.types.responses.responses_server_event import (
    ResponseTextWsDelta,
    ResponseWsCompleted,
    ResponseWsCreated,
    ResponseWsError,
)
from pydantic import BaseModel

from llmkit.testing import ResponsesServer

WS_WARNING = pytest.mark.filterwarnings(
    "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning"
)
ADD_TOOL: Any = {
    "type": "function",
    "name": "add",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
    "strict": True,
}


@pytest.fixture
def client(server: ResponsesServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as c:
        yield c


def assert_fully_typed(event: BaseModel) -> None:
    """No field fell back to an untyped value (what an unknown or malformed shape gives)."""
    assert type(event).__module__.startswith("openai.types."), type(event)
    assert not event.model_extra or set(event.model_extra) <= {"obfuscation"}, event.model_extra
    response = getattr(event, "response", None)
    if response is not None:  # fields the real service sends but the SDK does not model
        assert set(response.model_extra or {}) <= {"frequency_penalty", "presence_penalty", "store"}


def test_sse_events_all_parse_typed(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="gpt-test",
            input="Add please [steps=1]",
            tools=[ADD_TOOL],
            reasoning={"effort": "low", "summary": "auto"},
            include=["reasoning.encrypted_content"],
            stream=True,
        )
    )
    for event in events:
        assert_fully_typed(event)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert any(isinstance(e, ResponseReasoningSummaryTextDeltaEvent) for e in events)
    assert any(isinstance(e, ResponseFunctionCallArgumentsDeltaEvent) for e in events)
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    reasoning, call = final.response.output
    assert isinstance(reasoning, ResponseReasoningItem) and reasoning.encrypted_content
    assert isinstance(call, ResponseFunctionToolCall)
    assert json.loads(call.arguments) == {"a": 0, "b": 1}
    usage = final.response.usage
    assert usage is not None and usage.output_tokens_details.reasoning_tokens > 0


def test_sse_text_stream_with_the_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model="m", input="hello") as stream:
        deltas = [e.delta for e in stream if isinstance(e, ResponseTextDeltaEvent)]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.output_text == "Echo: hello [user=1 assistant=0 tool_outputs=0 items=1]"


def test_non_streaming_create_and_store_chaining(client: openai.OpenAI) -> None:
    first = client.responses.create(model="m", input="one")
    second = client.responses.create(model="m", input="two", previous_response_id=first.id)
    assert second.output_text == "Echo: two [user=2 assistant=1 tool_outputs=0 items=3]"
    assert isinstance(second.output[0], ResponseOutputMessage)
    assert second.usage is not None and second.usage.input_tokens_details.cached_tokens > 0
    assert client.responses.retrieve(first.id).id == first.id


def test_generate_over_http_is_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="m", input="x", extra_body={"generate": False})
    assert info.value.code == "unsupported_parameter"
    assert info.value.request_id is not None and info.value.request_id.startswith("req_")


def test_http_error_event_raises_api_error(server: ResponsesServer, client: openai.OpenAI) -> None:
    server.faults.error_next(code="rate_limit_exceeded", message="Too many.", status=429)
    with pytest.raises(openai.APIError, match=r"Too many\."):
        list(client.responses.create(model="m", input="x", stream=True))


def _until_done(conn: Any) -> list[Any]:
    events = []
    for event in conn:
        events.append(event)
        if event.type in ("response.completed", "response.failed", "error"):
            break
    return events


@WS_WARNING
def test_websocket_chained_turns_on_one_connection(client: openai.OpenAI) -> None:
    with client.responses.connect() as conn:
        conn.response.create(model="m", input="one", store=False, tools=[ADD_TOOL])
        first = _until_done(conn)
        assert isinstance(first[0], ResponseWsCreated)
        assert isinstance(first[-1], ResponseWsCompleted)
        call = first[-1].response.output[0]
        assert isinstance(call, ResponseFunctionToolCall)
        conn.response.create(
            model="m",
            store=False,
            tools=[ADD_TOOL],
            previous_response_id=first[-1].response.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "1"}],
        )
        second = _until_done(conn)
    for event in first + second:
        assert_fully_typed(event)
    assert any(isinstance(e, ResponseTextWsDelta) for e in second)
    assert isinstance(second[-1], ResponseWsCompleted)
    assert second[-1].response.output_text.startswith("The answer is 1. ")


@WS_WARNING
def test_websocket_new_connection_loses_the_cache(client: openai.OpenAI) -> None:
    with client.responses.connect() as conn:
        conn.response.create(model="m", input="one", store=False)
        rid = _until_done(conn)[-1].response.id
    with client.responses.connect() as conn:
        conn.response.create(model="m", input="two", store=False, previous_response_id=rid)
        (error,) = _until_done(conn)
    assert isinstance(error, ResponseWsError)
    assert error.status == 400
    assert error.error.code == "previous_response_not_found"
    assert error.error.param == "previous_response_id"
    assert error.error.type == "invalid_request_error"


@WS_WARNING
def test_websocket_warmup_via_send(client: openai.OpenAI, server: ResponsesServer) -> None:
    with client.responses.connect() as conn:
        conn.send(
            {
                "type": "response.create",
                "model": "m",
                "input": "hi",
                "store": False,
                "generate": False,
            }
        )
        warm = _until_done(conn)
        assert [e.type for e in warm] == ["response.created", "response.completed"]
        done = warm[-1]
        assert isinstance(done, ResponseWsCompleted) and done.response.output == []
        assert done.response.usage is not None and done.response.usage.output_tokens == 0
        conn.response.create(
            model="m", input=[], store=False, previous_response_id=done.response.id
        )
        answer = _until_done(conn)[-1]
    assert isinstance(answer, ResponseWsCompleted)
    assert answer.response.output_text.startswith("Echo: hi [user=1 assistant=0")
    assert (server.stats.warmups, server.stats.generations) == (1, 1)
