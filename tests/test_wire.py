"""Tier 1: the Responses wire models (`llmkit.openai.wire`), payload by payload."""

from __future__ import annotations

import json
from typing import Any

import events as ev
import pytest

from llmkit.exceptions import ProtocolError
from llmkit.openai import wire

# Every documented event type (PROTOCOL.md §8.1, §8.2, §6) and the model it must parse to.
FAMILIES: dict[type[Any], tuple[str, ...]] = {
    wire.LifecycleEvent: (
        "response.queued",
        "response.created",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
        "response.done",
    ),
    wire.ItemEvent: ("response.output_item.added", "response.output_item.done"),
    wire.ContentPartEvent: ("response.content_part.added", "response.content_part.done"),
    wire.TextEvent: (
        "response.output_text.delta",
        "response.output_text.done",
        "response.refusal.delta",
        "response.refusal.done",
    ),
    wire.AnnotationAddedEvent: ("response.output_text.annotation.added",),
    wire.ToolInputEvent: (
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    ),
    wire.ReasoningSummaryPartEvent: (
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
    ),
    wire.ReasoningSummaryTextEvent: (
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
    ),
    wire.ReasoningTextEvent: ("response.reasoning_text.delta", "response.reasoning_text.done"),
    wire.HostedToolEvent: (
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.completed",
        "response.image_generation_call.partial_image",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_list_tools.failed",
        "response.shell_call_command.added",
        "response.shell_call_command.delta",
        "response.shell_call_command.done",
        "response.shell_call_output_content.delta",
        "response.shell_call_output_content.done",
        "response.apply_patch_call_operation_diff.delta",
        "response.apply_patch_call_operation_diff.done",
        "response.audio.delta",
        "response.audio.done",
        "response.audio.transcript.delta",
        "response.audio.transcript.done",
    ),
    wire.CompactionEvent: ("response.compaction.compacting",),
    wire.WebSocketOnlyEvent: (
        "response.steer.accepted",
        "response.steer.pending",
        "response.steer.failed",
        "response.inject.created",
        "response.inject.failed",
    ),
    wire.KeepaliveEvent: ("keepalive",),
    wire.ErrorEvent: ("error",),
}
ALL_TYPES = [(name, model) for model, names in FAMILIES.items() for name in names]
REQUIRED: dict[str, dict[str, Any]] = {
    "response.output_item.added": {"item": {"type": "message"}},
    "response.output_item.done": {"item": {"type": "message"}},
}


def test_the_event_table_is_exactly_the_documented_vocabulary() -> None:
    assert dict(ALL_TYPES) == wire.EVENT_MODELS


@pytest.mark.parametrize(("name", "model"), ALL_TYPES)
def test_every_known_type_parses_to_its_model(name: str, model: type[Any]) -> None:
    payload = {"type": name, "sequence_number": 7, **REQUIRED.get(name, {})}
    parsed = wire.parse_event(json.dumps(payload))
    assert type(parsed) is model
    assert parsed.type == name
    assert parsed.sequence_number == 7


@pytest.mark.parametrize(("name", "model"), ALL_TYPES)
def test_sequence_number_is_optional(name: str, model: type[Any]) -> None:
    parsed = wire.parse_event(json.dumps({"type": name, **REQUIRED.get(name, {})}))
    assert type(parsed) is model
    assert parsed.sequence_number is None


def test_bytes_payload_parses() -> None:
    parsed = wire.parse_event(ev.text_delta("msg_1", "Hi").encode())
    assert isinstance(parsed, wire.TextEvent)
    assert parsed.delta == "Hi"


def test_text_delta_fields() -> None:
    parsed = wire.parse_event(ev.text_delta("msg_1", "Hi", output_index=2, content_index=1))
    assert isinstance(parsed, wire.TextEvent)
    assert (parsed.item_id, parsed.output_index, parsed.content_index) == ("msg_1", 2, 1)
    assert (parsed.delta, parsed.text, parsed.refusal) == ("Hi", None, None)
    assert parsed.model_extra == {"logprobs": []}


def test_extra_fields_on_known_events_are_kept() -> None:
    payload = json.loads(ev.text_delta("msg_1", "Hi"))
    payload |= {"obfuscation": "xyz", "stream_id": "main"}
    parsed = wire.parse_event(json.dumps(payload))
    assert isinstance(parsed, wire.TextEvent)
    assert parsed.model_extra == {"logprobs": [], "obfuscation": "xyz", "stream_id": "main"}


def test_unknown_type_is_passed_through_with_its_fields() -> None:
    parsed = wire.parse_event(
        ev.event("codex.rate_limits", sequence_number=3, primary={"used_percent": 5})
    )
    assert type(parsed) is wire.UnknownEvent
    assert parsed.type == "codex.rate_limits"
    assert parsed.sequence_number == 3
    assert parsed.model_extra == {"primary": {"used_percent": 5}}


@pytest.mark.parametrize(
    "name",
    ["response.compaction.in_progress", "response.compaction.completed", "response.compaction.x"],
)
def test_every_compaction_event_type_is_a_compaction_event(name: str) -> None:
    parsed = wire.parse_event(ev.event(name, item_id="cmp_1", output_index=2, phase="p"))
    assert type(parsed) is wire.CompactionEvent
    assert (parsed.type, parsed.item_id, parsed.output_index) == (name, "cmp_1", 2)
    assert parsed.model_extra == {"phase": "p"}


def test_a_malformed_compaction_event_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match=r"malformed 'response\.compaction\.compacting'"):
        wire.parse_event(ev.event("response.compaction.compacting", output_index="first"))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ('{"type": "response.output_text.delta", "delta": 5}', "malformed 'response.output_text"),
        ('{"type": "response.output_item.added"}', "malformed 'response.output_item.added'"),
        ('{"type": "response.created", "response": []}', "malformed 'response.created'"),
        ('{"type": "response.created", "sequence_number": "x"}', "malformed"),
        ('{"type": "error", "status": "teapot"}', "malformed 'error'"),
        ("not json", "not valid JSON"),
        ("", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ("[1, 2]", "not a JSON object: list"),
        ('"text"', "not a JSON object: str"),
        ("null", "not a JSON object: NoneType"),
        ("{}", "no string 'type'"),
        ('{"type": 3}', "no string 'type'"),
        ('{"delta": "x"}', "no string 'type'"),
    ],
)
def test_bad_payloads_are_protocol_errors(payload: str | bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        wire.parse_event(payload)
    assert info.value.partial is None


def test_lifecycle_event_carries_the_response_object() -> None:
    payload = ev.completed(
        "resp_9",
        output=[ev.message_item("msg_1", "Hi")],
        usage=ev.usage(3, 4, total_tokens=7, cached_tokens=1, reasoning_tokens=2),
        incomplete_details=None,
    )
    parsed = wire.parse_event(payload)
    assert isinstance(parsed, wire.LifecycleEvent)
    response = parsed.response
    assert (response.id, response.model, response.status) == ("resp_9", "gpt-test", "completed")
    assert response.output == [ev.message_item("msg_1", "Hi")]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 4)
    assert response.usage.total_tokens == 7
    assert response.usage.input_tokens_details == wire.InputTokensDetails(cached_tokens=1)
    assert response.usage.output_tokens_details == wire.OutputTokensDetails(reasoning_tokens=2)
    assert response.incomplete_details is None
    assert response.error is None


def test_lifecycle_event_without_response_gets_an_empty_one() -> None:
    parsed = wire.parse_event(ev.event("response.done"))
    assert isinstance(parsed, wire.LifecycleEvent)
    assert parsed.response == wire.ResponseObject()
    assert parsed.response.id is None


def test_response_done_is_a_lifecycle_event() -> None:
    parsed = wire.parse_event(ev.response_done("resp_7", status="completed"))
    assert isinstance(parsed, wire.LifecycleEvent)
    assert parsed.type == "response.done"
    assert (parsed.response.id, parsed.response.status) == ("resp_7", "completed")


def test_failed_and_incomplete_details() -> None:
    failed = wire.parse_event(ev.failed("server_error", "boom"))
    assert isinstance(failed, wire.LifecycleEvent)
    assert failed.response.error == wire.ResponseErrorInfo(code="server_error", message="boom")
    incomplete = wire.parse_event(ev.incomplete("max_output_tokens"))
    assert isinstance(incomplete, wire.LifecycleEvent)
    assert incomplete.response.incomplete_details == wire.IncompleteDetails(
        reason="max_output_tokens"
    )


def test_keepalive() -> None:
    parsed = wire.parse_event('{"type": "keepalive", "sequence_number": 12}')
    assert type(parsed) is wire.KeepaliveEvent
    assert parsed.sequence_number == 12


def test_tool_input_and_reasoning_events() -> None:
    done = wire.parse_event(ev.args_done("fc_1", '{"a":1}', "add", output_index=3))
    assert isinstance(done, wire.ToolInputEvent)
    assert (done.item_id, done.arguments, done.name, done.output_index, done.delta) == (
        "fc_1",
        '{"a":1}',
        "add",
        3,
        None,
    )
    custom = wire.parse_event(ev.custom_input_done("ct_1", "raw"))
    assert isinstance(custom, wire.ToolInputEvent)
    assert custom.input == "raw"
    summary = wire.parse_event(ev.summary_delta("rs_1", "why", summary_index=2))
    assert isinstance(summary, wire.ReasoningSummaryTextEvent)
    assert (summary.summary_index, summary.delta) == (2, "why")
    raw = wire.parse_event(ev.reasoning_text_done("rs_1", "think", content_index=1))
    assert isinstance(raw, wire.ReasoningTextEvent)
    assert (raw.content_index, raw.text) == (1, "think")
    part = wire.parse_event(ev.summary_part_added("rs_1", 1))
    assert isinstance(part, wire.ReasoningSummaryPartEvent)
    assert (part.summary_index, part.part) == (1, {"type": "summary_text", "text": ""})


def test_annotation_and_content_part_events() -> None:
    citation = ev.url_citation("https://x.test", "X", 1, 5)
    added = wire.parse_event(ev.annotation_added("msg_1", citation, annotation_index=4))
    assert isinstance(added, wire.AnnotationAddedEvent)
    assert (added.annotation, added.annotation_index) == (citation, 4)
    part = wire.parse_event(ev.content_part_done("msg_1", ev.refusal_part("no"), 1, 2))
    assert isinstance(part, wire.ContentPartEvent)
    assert (part.part, part.output_index, part.content_index) == (ev.refusal_part("no"), 1, 2)


# --------------------------------------------------------------------------- error events


def test_flat_error_event() -> None:
    parsed = wire.parse_event(ev.error_flat("rate_limit_exceeded", "slow down", "model"))
    assert isinstance(parsed, wire.ErrorEvent)
    assert parsed.error_code == "rate_limit_exceeded"
    assert parsed.error_message == "slow down"
    assert parsed.error_param == "model"
    assert parsed.error_type is None
    assert parsed.http_status is None
    assert parsed.error_headers == {}


def test_nested_error_event_with_status_and_headers() -> None:
    payload = ev.error_nested(
        "previous_response_not_found",
        "Previous response with id 'resp_abc' not found.",
        status=400,
        param="previous_response_id",
        headers={"x-request-id": "req_1", "retry-after": "1"},
        stream_id="main",
        sequence_number=2,
    )
    parsed = wire.parse_event(payload)
    assert isinstance(parsed, wire.ErrorEvent)
    assert parsed.error_code == "previous_response_not_found"
    assert parsed.error_message == "Previous response with id 'resp_abc' not found."
    assert parsed.error_param == "previous_response_id"
    assert parsed.error_type == "invalid_request_error"
    assert parsed.http_status == 400
    assert parsed.error_headers == {"x-request-id": "req_1", "retry-after": "1"}
    assert parsed.model_extra == {"stream_id": "main"}


def test_status_code_is_an_alias_of_status() -> None:
    parsed = wire.parse_event(ev.error_nested("usage_limit_reached", "limit", status_code=429))
    assert isinstance(parsed, wire.ErrorEvent)
    assert parsed.http_status == 429
    both = wire.parse_event(ev.error_nested("x", "y", status=400, status_code=429))
    assert isinstance(both, wire.ErrorEvent)
    assert both.http_status == 400  # status wins


def test_error_headers_merge_top_level_and_nested() -> None:
    payload = ev.error_nested(
        "rate_limit_exceeded",
        "slow",
        status=429,
        headers={"retry-after": "2", "x-a": "nested"},
    )
    data = json.loads(payload) | {"headers": {"x-a": "top", "x-b": "top"}}
    parsed = wire.parse_event(json.dumps(data))
    assert isinstance(parsed, wire.ErrorEvent)
    assert parsed.error_headers == {"x-a": "nested", "x-b": "top", "retry-after": "2"}
    top_only = wire.parse_event(ev.event("error", status=429, headers={"retry-after": "3"}))
    assert isinstance(top_only, wire.ErrorEvent)
    assert top_only.error_headers == {"retry-after": "3"}


def test_nested_fields_win_and_flat_fields_are_the_fallback() -> None:
    data = {
        "type": "error",
        "code": "flat_code",
        "message": "flat message",
        "param": "flat_param",
        "error": {"code": "nested_code", "message": None, "param": None},
    }
    parsed = wire.parse_event(json.dumps(data))
    assert isinstance(parsed, wire.ErrorEvent)
    assert parsed.error_code == "nested_code"
    assert parsed.error_message == "flat message"
    assert parsed.error_param == "flat_param"
    assert parsed.error_type is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (ev.event("error"), "error event without a message (code: None)"),
        (ev.error_flat("boom", ""), "error event without a message (code: boom)"),
        (ev.error_nested("nested", None), "error event without a message (code: nested)"),
        (ev.error_nested(None, "", status=500), "error event without a message (code: None)"),
    ],
)
def test_error_message_is_never_blank(payload: str, expected: str) -> None:
    parsed = wire.parse_event(payload)
    assert isinstance(parsed, wire.ErrorEvent)
    assert parsed.error_message == expected


# --------------------------------------------------------------------------- items


def test_parse_message_item() -> None:
    item = wire.parse_item(
        ev.message_item(
            "msg_1",
            [ev.output_text("Hi", [ev.url_citation("https://a.test", "A")]), ev.refusal_part("no")],
            phase="final_answer",
        )
    )
    assert isinstance(item, wire.MessageItem)
    assert (item.id, item.role, item.status, item.phase) == (
        "msg_1",
        "assistant",
        "completed",
        "final_answer",
    )
    typed = [wire.parse_content(part) for part in item.content]
    assert typed == [
        wire.OutputText(
            type="output_text", text="Hi", annotations=[ev.url_citation("https://a.test", "A")]
        ),
        wire.Refusal(type="refusal", refusal="no"),
    ]


def test_parse_content_ignores_unknown_kinds() -> None:
    assert wire.parse_content({"type": "output_audio", "data": "..."}) is None
    assert wire.parse_content({}) is None


def test_parse_function_call_item() -> None:
    item = wire.parse_item(ev.function_call_item("fc_1", "call_1", "add", '{"a":1}'))
    assert item == wire.FunctionCallItem(
        type="function_call",
        id="fc_1",
        call_id="call_1",
        name="add",
        arguments='{"a":1}',
        status="completed",
    )


def test_parse_custom_tool_call_item() -> None:
    item = wire.parse_item(ev.custom_tool_call_item("ctc_1", "call_2", "grep", "foo|bar"))
    assert item == wire.CustomToolCallItem(
        type="custom_tool_call", id="ctc_1", call_id="call_2", name="grep", input="foo|bar"
    )


def test_parse_reasoning_item() -> None:
    item = wire.parse_item(
        ev.reasoning_item("rs_1", ["a", "b"], content=["raw"], encrypted_content="enc")
    )
    assert isinstance(item, wire.ReasoningItem)
    assert item.id == "rs_1"
    assert [s.text for s in item.summary] == ["a", "b"]
    assert item.content is not None
    assert [(c.type, c.text) for c in item.content] == [("reasoning_text", "raw")]
    assert item.encrypted_content == "enc"


def test_parse_other_item_keeps_everything() -> None:
    raw = {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"q": "x"}}
    item = wire.parse_item(raw)
    assert type(item) is wire.OtherItem
    assert (item.type, item.id) == ("web_search_call", "ws_1")
    assert item.model_extra == {"status": "completed", "action": {"q": "x"}}


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "function_call", "name": "f"},  # no call_id
        {"type": "custom_tool_call", "call_id": "c"},  # no name
        {"type": "reasoning", "summary": "not a list"},
        {"no": "type"},
    ],
)
def test_malformed_items_fail_validation(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        wire.parse_item(raw)
