"""A value that fits a JSON schema: the scripted models' structured answers (pure, no I/O).

A request with ``text.format`` (Responses) or ``response_format`` (Chat) of type
``json_schema`` is answered with `value_for` its schema, rendered as JSON text: the same
request always gets the same answer, and it fits the schema, so the client's parse of
it is what a test checks. What the value says comes from the conversation (``Seed``):
strings are the last user text, numbers the last tool output (or the number of user
messages), so a client that sent the wrong context gets a different answer here too.

Covered: ``type`` (one or a list), ``enum``, ``const``, ``anyOf`` / ``oneOf`` (the first
branch that is not null; null when the recursion runs deep), ``allOf`` (the first
branch), local ``$ref`` (``#/$defs/...``, ``#/definitions/...``), objects (every
property, the required and the optional ones), arrays (``minItems`` items, at least one
unless ``maxItems`` is 0 or the recursion runs deep; a tuple's ``prefixItems``), string
``minLength`` / ``maxLength`` and the common ``format`` values, number bounds. A
``pattern`` is not followed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "Seed",
    "format_problem",
    "json_answer",
    "requested_format",
    "requested_schema",
    "strict_problem",
    "value_for",
]

MAX_DEPTH = 6
"""Nesting past which an optional part (a nullable branch, a list) is left empty."""

_FORMATS = {
    "date-time": "2026-01-02T03:04:05Z",
    "date": "2026-01-02",
    "time": "03:04:05",
    "duration": "P1D",
    "email": "user@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/",
}


@dataclass(frozen=True, slots=True)
class Seed:
    """What the answer's values are made of."""

    text: str
    """Every string: the last user text."""
    number: int | float
    """Every number: the last tool output as a number, else the count of user messages."""


def requested_format(request: dict[str, Any]) -> dict[str, Any] | None:
    """A Responses-style request's ``text.format``, when it is an object."""
    text = request.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    return fmt if isinstance(fmt, dict) else None


def requested_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a Responses-style request asks its answer to fit, or None.

    ``text.format`` of type ``json_schema`` gives its ``schema``; ``json_object`` gives an
    object of one string (answered with ``{"answer": <text>}``).
    """
    fmt = requested_format(request)
    if fmt is None:
        return None
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return dict(fmt["schema"])
    if fmt.get("type") == "json_object":
        return {"type": "object", "properties": {"answer": {"type": "string"}}}
    return None


def json_answer(schema: dict[str, Any], seed: Seed) -> str:
    """The answer's text: `value_for` the schema as JSON, spaced as models write it (so
    that it streams as several word-sized deltas)."""
    return json.dumps(value_for(schema, seed), ensure_ascii=False)


def value_for(schema: Any, seed: Seed, root: Any = None, depth: int = 0) -> Any:
    """A JSON value that fits ``schema`` (``root`` holds the definitions of a ``$ref``)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None  # `true` (anything) or `false` (nothing): null is as good as any
    if depth > 4 * MAX_DEPTH:
        return None
    if "$ref" in schema:
        target = _resolve(root, schema["$ref"])
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return value_for({**(target or {}), **rest}, seed, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            return value_for(_branch(branches, depth), seed, root, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        return value_for({**all_of[0], **merged}, seed, root, depth + 1)
    return _typed(schema, _kind(schema), seed, root, depth)


def _typed(schema: dict[str, Any], kind: str | None, seed: Seed, root: Any, depth: int) -> Any:
    match kind:
        case "object":
            properties = schema.get("properties")
            if not isinstance(properties, dict):
                return {}
            return {name: value_for(sub, seed, root, depth + 1) for name, sub in properties.items()}
        case "array" if isinstance(schema.get("prefixItems"), list):  # a tuple
            return [value_for(item, seed, root, depth + 1) for item in schema["prefixItems"]]
        case "array":
            low = schema.get("minItems", 0)
            high = schema.get("maxItems", 1 if depth < MAX_DEPTH else 0)
            count = max(low, min(1 if depth < MAX_DEPTH else 0, high))
            items = schema.get("items", {})
            return [value_for(items, seed, root, depth + 1) for _ in range(count)]
        case "string":
            return _string(schema, seed.text)
        case "integer" | "number":
            return _number(schema, seed.number, integer=kind == "integer")
        case "boolean":
            return True
        case _:
            return None


def _kind(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        return "object"
    return kind if isinstance(kind, str) else None


def _branch(branches: list[Any], depth: int) -> Any:
    """The first branch that is not null; null itself once the nesting runs deep."""
    nulls = [b for b in branches if isinstance(b, dict) and b.get("type") == "null"]
    others = [b for b in branches if b not in nulls]
    if nulls and (depth >= MAX_DEPTH or not others):
        return nulls[0]
    return others[0] if others else branches[0]


def _resolve(root: Any, ref: Any) -> dict[str, Any] | None:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None


def _string(schema: dict[str, Any], text: str) -> str:
    value = _FORMATS.get(str(schema.get("format")), text)
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if isinstance(high, int):
        value = value[:high]
    if isinstance(low, int) and len(value) < low:
        value += "x" * (low - len(value))
    return value


def _number(schema: dict[str, Any], seed: int | float, *, integer: bool) -> int | float:
    value: int | float = math.floor(seed) if integer else seed
    step = schema.get("multipleOf")
    low = _bound(schema, "minimum", "exclusiveMinimum", integer, +1)
    high = _bound(schema, "maximum", "exclusiveMaximum", integer, -1)
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    if isinstance(step, int | float) and step > 0:
        value = math.ceil(value / step) * step
        if high is not None and value > high:
            value -= step
    return int(value) if integer else value


def _bound(
    schema: dict[str, Any], inclusive: str, exclusive: str, integer: bool, side: int
) -> int | float | None:
    if isinstance(schema.get(inclusive), int | float):
        bound: int | float = schema[inclusive]
        return (math.ceil(bound) if side > 0 else math.floor(bound)) if integer else bound
    if isinstance(schema.get(exclusive), int | float):
        edge: int | float = schema[exclusive]
        if integer:
            return math.floor(edge) + 1 if side > 0 else math.ceil(edge) - 1
        return edge + side * max(abs(edge) * 1e-9, 1e-9)
    return None


def format_problem(fmt: Any) -> str | None:
    """The service's 400 text for a ``json_schema`` format it refuses, or None (a
    ``strict: true`` schema that breaks `strict_problem`'s rules)."""
    if (
        not isinstance(fmt, dict)
        or fmt.get("type") != "json_schema"
        or fmt.get("strict") is not True
    ):
        return None
    problem = strict_problem(fmt.get("schema"))
    if problem is None:
        return None
    return f"Invalid schema for response_format '{fmt.get('name')}': {problem}"


def strict_problem(schema: Any, root: Any = None, where: tuple[str, ...] = ()) -> str | None:
    """Why the service would refuse ``schema`` with ``strict: true``, or None.

    The rules it checks first: the root is an object (not ``anyOf``), and every object
    has ``additionalProperties: false`` and lists each of its properties in
    ``required``. The text follows the service's ("In context=(...), ...").
    """
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    context = f"In context={where!r}, "
    if not where and ("anyOf" in schema or _kind(schema) != "object"):
        return (
            context
            + "schema must be a JSON Schema of 'type: \"object\"', got "
            + ("'anyOf'." if "anyOf" in schema else f"'type: \"{schema.get('type')}\"'.")
        )
    properties = schema.get("properties")
    if _kind(schema) == "object" or isinstance(properties, dict):
        if schema.get("additionalProperties") is not False:
            return context + "'additionalProperties' is required to be supplied and to be false."
        missing = [k for k in properties or {} if k not in (schema.get("required") or [])]
        if missing:
            return (
                context + "'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
    children: list[tuple[tuple[str, ...], Any]] = []
    for name, sub in (properties or {}).items():
        children.append(((*where, "properties", name), sub))
    if isinstance(schema.get("items"), dict):
        children.append(((*where, "items"), schema["items"]))
    for key in ("anyOf", "$defs", "definitions"):
        value = schema.get(key)
        entries = enumerate(value) if isinstance(value, list) else (value or {}).items()
        children += [((*where, key, str(k)), sub) for k, sub in entries]
    for place, sub in children:
        problem = strict_problem(sub, root, place)
        if problem is not None:
            return problem
    return None
