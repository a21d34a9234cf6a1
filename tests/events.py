"""Builders for Responses API event payloads, as the JSON text a transport hands over.

Event builders return the payload string (an SSE ``data:`` value or a WebSocket text
frame); item, part and usage builders return plain dicts to nest inside events. Shapes
follow PROTOCOL.md §8 and the recorded streams under ``tests/data/recorded``. Optional
fields are left out unless given, so a test sees exactly what it asked for.

Whole-item helpers (`message_events`, `function_call_events`, `reasoning_events`) give
the tidy event sequence a real server sends for one output item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

JSON = dict[str, Any]

__all__ = [
    "JSON",
    "annotation_added",
    "args_delta",
    "args_done",
    "completed",
    "content_part_added",
    "content_part_done",
    "created",
    "custom_input_delta",
    "custom_input_done",
    "custom_tool_call_item",
    "error_flat",
    "error_nested",
    "event",
    "failed",
    "file_citation",
    "function_call_events",
    "function_call_item",
    "in_progress",
    "incomplete",
    "item_added",
    "item_done",
    "keepalive",
    "message_events",
    "message_item",
    "numbered",
    "output_text",
    "reasoning_events",
    "reasoning_item",
    "reasoning_text_delta",
    "reasoning_text_done",
    "refusal_delta",
    "refusal_done",
    "refusal_part",
    "response_done",
    "response_object",
    "summary_delta",
    "summary_done",
    "summary_part_added",
    "summary_part_done",
    "text_delta",
    "text_done",
    "url_citation",
    "usage",
]


def event(type_: str, **fields: Any) -> str:
    """Any event: ``{"type": type_, **fields}`` as JSON text."""
    return json.dumps({"type": type_, **fields})


def numbered(payloads: Iterable[str], start: int = 0) -> list[str]:
    """The payloads with ``sequence_number`` set in order, as a server numbers them."""
    out = []
    for number, payload in enumerate(payloads, start):
        data = json.loads(payload)
        data["sequence_number"] = number
        out.append(json.dumps(data))
    return out


# --------------------------------------------------------------------------- parts, items


def usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    *,
    total_tokens: int | None = None,
    cached_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> JSON:
    """A Response ``usage`` object; the detail objects appear only when a count is given."""
    data: JSON = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if total_tokens is not None:
        data["total_tokens"] = total_tokens
    details_in: JSON = {}
    if cached_tokens is not None:
        details_in["cached_tokens"] = cached_tokens
    if cache_write_tokens is not None:
        details_in["cache_write_tokens"] = cache_write_tokens
    if details_in:
        data["input_tokens_details"] = details_in
    if reasoning_tokens is not None:
        data["output_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return data


def url_citation(url: str, title: str, start_index: int = 0, end_index: int = 0) -> JSON:
    """A ``url_citation`` annotation."""
    return {
        "type": "url_citation",
        "url": url,
        "title": title,
        "start_index": start_index,
        "end_index": end_index,
    }


def file_citation(file_id: str, filename: str, index: int = 0) -> JSON:
    """A ``file_citation`` annotation."""
    return {"type": "file_citation", "file_id": file_id, "filename": filename, "index": index}


def output_text(text: str = "", annotations: Sequence[JSON] = ()) -> JSON:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": list(annotations)}


def refusal_part(refusal: str = "") -> JSON:
    """A ``refusal`` content part."""
    return {"type": "refusal", "refusal": refusal}


def message_item(
    id: str | None,
    content: str | Sequence[JSON] = (),
    *,
    phase: str | None = None,
    status: str = "completed",
) -> JSON:
    """An assistant ``message`` item; a str ``content`` is one ``output_text`` part."""
    parts = [output_text(content)] if isinstance(content, str) else list(content)
    item: JSON = {"type": "message", "role": "assistant", "status": status, "content": parts}
    if id is not None:
        item["id"] = id
    if phase is not None:
        item["phase"] = phase
    return item


def function_call_item(
    id: str | None, call_id: str, name: str, arguments: str = "", *, status: str = "completed"
) -> JSON:
    """A ``function_call`` item."""
    item: JSON = {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }
    if id is not None:
        item["id"] = id
    return item


def custom_tool_call_item(id: str | None, call_id: str, name: str, input: str = "") -> JSON:
    """A ``custom_tool_call`` item (free-form input)."""
    item: JSON = {"type": "custom_tool_call", "call_id": call_id, "name": name, "input": input}
    if id is not None:
        item["id"] = id
    return item


def reasoning_item(
    id: str | None,
    summary: Sequence[str] = (),
    *,
    content: Sequence[str] | None = None,
    encrypted_content: str | None = None,
) -> JSON:
    """A ``reasoning`` item with summary texts, optional raw texts and encrypted state."""
    item: JSON = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text} for text in summary],
    }
    if id is not None:
        item["id"] = id
    if content is not None:
        item["content"] = [{"type": "reasoning_text", "text": text} for text in content]
    if encrypted_content is not None:
        item["encrypted_content"] = encrypted_content
    return item


# --------------------------------------------------------------------------- lifecycle


def response_object(
    id: str | None = "resp_1",
    *,
    status: str = "in_progress",
    model: str | None = "gpt-test",
    output: Sequence[JSON] = (),
    usage: JSON | None = None,
    **extra: Any,
) -> JSON:
    """The Response object that lifecycle events carry."""
    data: JSON = {"object": "response", "status": status, "output": list(output)}
    if id is not None:
        data["id"] = id
    if model is not None:
        data["model"] = model
    if usage is not None:
        data["usage"] = usage
    return {**data, **extra}


def created(id: str | None = "resp_1", **fields: Any) -> str:
    """``response.created``."""
    return event("response.created", response=response_object(id, **fields))


def in_progress(id: str | None = "resp_1", **fields: Any) -> str:
    """``response.in_progress``."""
    return event("response.in_progress", response=response_object(id, **fields))


def completed(
    id: str | None = "resp_1",
    *,
    output: Sequence[JSON] = (),
    usage: JSON | None = None,
    **fields: Any,
) -> str:
    """``response.completed`` with the final ``output`` and ``usage``."""
    response = response_object(id, status="completed", output=output, usage=usage, **fields)
    return event("response.completed", response=response)


def incomplete(reason: str | None, id: str | None = "resp_1", **fields: Any) -> str:
    """``response.incomplete`` with ``incomplete_details.reason``."""
    details = None if reason is None else {"reason": reason}
    response = response_object(id, status="incomplete", incomplete_details=details, **fields)
    return event("response.incomplete", response=response)


def failed(code: str | None, message: str | None, id: str | None = "resp_1", **fields: Any) -> str:
    """``response.failed`` with ``response.error``."""
    response = response_object(
        id, status="failed", error={"code": code, "message": message}, **fields
    )
    return event("response.failed", response=response)


def response_done(id: str | None = "resp_1", **fields: Any) -> str:
    """``response.done``: the undocumented terminal event some backends send."""
    return event("response.done", response=response_object(id, **fields))


def keepalive() -> str:
    """An application-level ``keepalive`` event."""
    return event("keepalive")


def error_flat(code: str | None, message: str | None, param: str | None = None) -> str:
    """The documented flat ``error`` event: code/message/param at the top."""
    return event("error", code=code, message=message, param=param)


def error_nested(
    code: str | None,
    message: str | None,
    *,
    status: int | None = None,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> str:
    """The nested ``error`` event (real SSE and every WebSocket error frame)."""
    error: JSON = {"type": error_type, "code": code, "message": message, "param": param}
    if headers is not None:
        error["headers"] = headers
    if status is not None:
        fields["status"] = status
    return event("error", error=error, **fields)


# --------------------------------------------------------------------------- items


def item_added(item: JSON, output_index: int = 0) -> str:
    """``response.output_item.added``."""
    return event("response.output_item.added", item=item, output_index=output_index)


def item_done(item: JSON, output_index: int = 0) -> str:
    """``response.output_item.done``."""
    return event("response.output_item.done", item=item, output_index=output_index)


def content_part_added(
    item_id: str | None, part: JSON | None = None, output_index: int = 0, content_index: int = 0
) -> str:
    """``response.content_part.added`` (an empty ``output_text`` part by default)."""
    return event(
        "response.content_part.added",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        part=output_text() if part is None else part,
    )


def content_part_done(
    item_id: str | None, part: JSON, output_index: int = 0, content_index: int = 0
) -> str:
    """``response.content_part.done`` with the complete part."""
    return event(
        "response.content_part.done",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        part=part,
    )


def text_delta(
    item_id: str | None, delta: str, output_index: int = 0, content_index: int = 0
) -> str:
    """``response.output_text.delta``."""
    return event(
        "response.output_text.delta",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        delta=delta,
        logprobs=[],
    )


def text_done(item_id: str | None, text: str, output_index: int = 0, content_index: int = 0) -> str:
    """``response.output_text.done``."""
    return event(
        "response.output_text.done",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        text=text,
    )


def refusal_delta(
    item_id: str | None, delta: str, output_index: int = 0, content_index: int = 0
) -> str:
    """``response.refusal.delta``."""
    return event(
        "response.refusal.delta",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        delta=delta,
    )


def refusal_done(
    item_id: str | None, refusal: str, output_index: int = 0, content_index: int = 0
) -> str:
    """``response.refusal.done``."""
    return event(
        "response.refusal.done",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        refusal=refusal,
    )


def annotation_added(
    item_id: str | None,
    annotation: JSON | None,
    output_index: int = 0,
    content_index: int = 0,
    annotation_index: int = 0,
) -> str:
    """``response.output_text.annotation.added``."""
    return event(
        "response.output_text.annotation.added",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        annotation_index=annotation_index,
        annotation=annotation,
    )


def args_delta(item_id: str | None, delta: str, output_index: int = 0) -> str:
    """``response.function_call_arguments.delta``."""
    return event(
        "response.function_call_arguments.delta",
        item_id=item_id,
        output_index=output_index,
        delta=delta,
    )


def args_done(item_id: str | None, arguments: str, name: str, output_index: int = 0) -> str:
    """``response.function_call_arguments.done``."""
    return event(
        "response.function_call_arguments.done",
        item_id=item_id,
        output_index=output_index,
        arguments=arguments,
        name=name,
    )


def custom_input_delta(item_id: str | None, delta: str, output_index: int = 0) -> str:
    """``response.custom_tool_call_input.delta``."""
    return event(
        "response.custom_tool_call_input.delta",
        item_id=item_id,
        output_index=output_index,
        delta=delta,
    )


def custom_input_done(item_id: str | None, input: str, output_index: int = 0) -> str:
    """``response.custom_tool_call_input.done``."""
    return event(
        "response.custom_tool_call_input.done",
        item_id=item_id,
        output_index=output_index,
        input=input,
    )


def summary_part_added(item_id: str | None, summary_index: int = 0, output_index: int = 0) -> str:
    """``response.reasoning_summary_part.added``."""
    return event(
        "response.reasoning_summary_part.added",
        item_id=item_id,
        output_index=output_index,
        summary_index=summary_index,
        part={"type": "summary_text", "text": ""},
    )


def summary_part_done(
    item_id: str | None, text: str, summary_index: int = 0, output_index: int = 0
) -> str:
    """``response.reasoning_summary_part.done``."""
    return event(
        "response.reasoning_summary_part.done",
        item_id=item_id,
        output_index=output_index,
        summary_index=summary_index,
        part={"type": "summary_text", "text": text},
    )


def summary_delta(
    item_id: str | None, delta: str, summary_index: int = 0, output_index: int = 0
) -> str:
    """``response.reasoning_summary_text.delta``."""
    return event(
        "response.reasoning_summary_text.delta",
        item_id=item_id,
        output_index=output_index,
        summary_index=summary_index,
        delta=delta,
    )


def summary_done(
    item_id: str | None, text: str, summary_index: int = 0, output_index: int = 0
) -> str:
    """``response.reasoning_summary_text.done``."""
    return event(
        "response.reasoning_summary_text.done",
        item_id=item_id,
        output_index=output_index,
        summary_index=summary_index,
        text=text,
    )


def reasoning_text_delta(
    item_id: str | None, delta: str, content_index: int = 0, output_index: int = 0
) -> str:
    """``response.reasoning_text.delta`` (raw reasoning text)."""
    return event(
        "response.reasoning_text.delta",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        delta=delta,
    )


def reasoning_text_done(
    item_id: str | None, text: str, content_index: int = 0, output_index: int = 0
) -> str:
    """``response.reasoning_text.done``."""
    return event(
        "response.reasoning_text.done",
        item_id=item_id,
        output_index=output_index,
        content_index=content_index,
        text=text,
    )


# --------------------------------------------------------------------------- whole items


def message_events(
    item_id: str,
    chunks: Sequence[str],
    output_index: int = 0,
    *,
    phase: str | None = None,
    annotations: Sequence[JSON] = (),
) -> list[str]:
    """A one-part text message as a server streams it, from ``added`` to ``done``."""
    text = "".join(chunks)
    final = output_text(text, annotations)
    events = [
        item_added(message_item(item_id, [], phase=phase, status="in_progress"), output_index),
        content_part_added(item_id, output_text(), output_index),
    ]
    events += [text_delta(item_id, chunk, output_index) for chunk in chunks]
    events += [
        annotation_added(item_id, a, output_index, annotation_index=i)
        for i, a in enumerate(annotations)
    ]
    events += [
        text_done(item_id, text, output_index),
        content_part_done(item_id, final, output_index),
        item_done(message_item(item_id, [final], phase=phase), output_index),
    ]
    return events


def function_call_events(
    item_id: str, call_id: str, name: str, chunks: Sequence[str], output_index: int = 0
) -> list[str]:
    """A function call with streamed arguments, from ``added`` to ``done``."""
    arguments = "".join(chunks)
    return [
        item_added(function_call_item(item_id, call_id, name, status="in_progress"), output_index),
        *(args_delta(item_id, chunk, output_index) for chunk in chunks),
        args_done(item_id, arguments, name, output_index),
        item_done(function_call_item(item_id, call_id, name, arguments), output_index),
    ]


def reasoning_events(
    item_id: str,
    summaries: Sequence[Sequence[str]],
    output_index: int = 0,
    *,
    encrypted_content: str | None = None,
) -> list[str]:
    """A reasoning item with several streamed summary parts, from ``added`` to ``done``."""
    events = [item_added(reasoning_item(item_id), output_index)]
    for index, chunks in enumerate(summaries):
        text = "".join(chunks)
        events.append(summary_part_added(item_id, index, output_index))
        events += [summary_delta(item_id, chunk, index, output_index) for chunk in chunks]
        events.append(summary_done(item_id, text, index, output_index))
        events.append(summary_part_done(item_id, text, index, output_index))
    final = reasoning_item(
        item_id, ["".join(c) for c in summaries], encrypted_content=encrypted_content
    )
    events.append(item_done(final, output_index))
    return events
