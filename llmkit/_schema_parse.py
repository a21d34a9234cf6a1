"""Structured output, the way back: the model's text becomes the output type.

`parse_output` turns the final text into the type of an `OutputSchema` (made by
``llmkit._schema.output_schema``), `parse_response` a whole response (a refusal, tool
calls instead of an answer); `partial_output` turns the text streamed so far into
what can be said of it yet. A null in a property the strict schema made nullable means
"left out": it is dropped, so the field's default applies. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

import pydantic
import pydantic_core

from llmkit._schema import WRAP_KEY, OutputSchema, _escape, _resolve, _types
from llmkit.exceptions import OutputValidationError, RefusalError
from llmkit.messages import ParsedResponse, Response

__all__ = ["parse_output", "parse_response", "partial_output"]

T = TypeVar("T")


def parse_response(output: OutputSchema[T], response: Response) -> ParsedResponse[T]:
    """``response`` with its answer parsed as the output type: the end of a structured call.

    Raises:
        RefusalError: the model refused (a refusal part).
        OutputValidationError: the model called tools instead of answering, or its text
            is not JSON or does not validate; ``partial`` is ``response``.
    """
    refusal = response.refusal
    if refusal is not None:
        raise RefusalError(refusal, partial=response)
    text = response.text
    if response.tool_calls:
        message = "the model called tools instead of answering (ToolLoop runs them)"
        error = {"type": "tool_calls", "loc": (), "msg": message}
        raise OutputValidationError(text, [error], partial=response)
    try:
        value = parse_output(output, text)
    except OutputValidationError as exc:
        exc.partial = response
        raise
    fields = {f.name: getattr(response, f.name) for f in dataclasses.fields(Response)}
    return ParsedResponse(**fields, output=value)


def parse_output(output: OutputSchema[T], text: str) -> T:
    """The model's final text as the output type; `OutputValidationError` (without
    ``partial``) when it does not fit."""
    if output.adapter is not None and not output.wrapped and not output.nulls:
        try:
            return output.adapter.validate_json(text)  # type: ignore[no-any-return]
        except pydantic.ValidationError as exc:
            raise OutputValidationError(text, _errors(exc)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"Invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise OutputValidationError(
            text, [{"type": "json_invalid", "loc": (), "msg": message}]
        ) from None
    if output.wrapped:
        if not isinstance(data, dict) or WRAP_KEY not in data:
            missing = {"type": "missing", "loc": (WRAP_KEY,), "msg": "Field required"}
            raise OutputValidationError(text, [missing])
        data = data[WRAP_KEY]
    _drop_nulls(data, output)
    if output.adapter is None:
        return data  # type: ignore[no-any-return]
    try:
        return output.adapter.validate_json(json.dumps(data))  # type: ignore[no-any-return]
    except pydantic.ValidationError as exc:
        raise OutputValidationError(text, _errors(exc)) from None


def partial_output(output: OutputSchema[Any], text: str) -> Any:
    """What the text streamed so far says, or None while nothing parses yet.

    The text is read with pydantic-core's partial JSON parsing (an unfinished value is
    left out, an unfinished last string kept as far as it came; so is a last number, which
    may still grow). Then, for a type: the value as the type when it validates leniently
    (pydantic's partial validation drops an unfinished last item of a list or dict);
    otherwise, and for a JSON schema dict, the plain JSON value parsed so far (for a
    model: the dict of the fields so far). A wrapped answer is None until ``value`` starts.
    """
    try:
        data = pydantic_core.from_json(text, allow_partial="trailing-strings")
    except ValueError:
        return None
    if output.wrapped:
        if not isinstance(data, dict) or WRAP_KEY not in data:
            return None
        data = data[WRAP_KEY]
    _drop_nulls(data, output)
    if output.adapter is None:
        return data
    try:
        return output.adapter.validate_json(
            json.dumps(data), experimental_allow_partial="trailing-strings"
        )
    except pydantic.ValidationError:
        return data


def _drop_nulls(value: Any, output: OutputSchema[Any]) -> None:
    """Delete, in place, each null the model gave for a property it may leave out."""
    if output.nulls:
        root_at = f"/properties/{WRAP_KEY}" if output.wrapped else ""
        node = output.schema["properties"][WRAP_KEY] if output.wrapped else output.schema
        _walk(value, node, root_at, output)


def _follow(node: Any, at: str, schema: dict[str, Any]) -> tuple[Any, str]:
    """What ``node`` is once its $refs are followed, and where that is in ``schema``."""
    for _ in range(32):
        if not isinstance(node, dict) or not isinstance(node.get("$ref"), str):
            break
        at, node = node["$ref"][1:], _resolve(schema, node["$ref"])
    return node, at


def _walk(value: Any, node: Any, at: str, output: OutputSchema[Any]) -> None:
    node, at = _follow(node, at, output.schema)
    if not isinstance(node, dict) or not isinstance(value, dict | list):
        return
    properties = node.get("properties")
    if isinstance(value, dict) and isinstance(properties, dict):
        nullable = output.nulls.get(at, frozenset())
        for key in list(value):
            if value[key] is None and key in nullable:
                del value[key]
            elif key in properties:
                _walk(value[key], properties[key], f"{at}/properties/{_escape(key)}", output)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _walk(item, node["items"], f"{at}/items", output)
    else:  # a union: the branch of this shape, one with exactly these keys first
        branches = list(enumerate(node.get("anyOf", ())))
        branches.sort(key=lambda b: not _fits(value, b[1], output, exact=True))
        for i, branch in branches:
            if _fits(value, branch, output, exact=False):
                return _walk(value, branch, f"{at}/anyOf/{i}", output)


def _fits(value: Any, branch: Any, output: OutputSchema[Any], exact: bool) -> bool:
    """Whether a dict or list ``value`` has the shape of a union's ``branch``."""
    branch, _ = _follow(branch, "", output.schema)
    if not isinstance(branch, dict):
        return False
    if isinstance(branch.get("anyOf"), list):  # a union inside a union (made nullable)
        return any(_fits(value, b, output, exact) for b in branch["anyOf"])
    if isinstance(value, list):
        return "items" in branch or "array" in _types(branch)
    properties = branch.get("properties")
    if not isinstance(properties, dict) or not set(value) <= set(properties):
        return False
    if exact and set(value) != set(properties):
        return False
    return all(
        not isinstance(sub := properties[key], dict)
        or (sub.get("const", item) == item and item in sub.get("enum", [item]))
        for key, item in value.items()
    )


def _errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    return [dict(e) for e in exc.errors(include_url=False, include_input=False)]
