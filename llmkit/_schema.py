"""Structured output: a type becomes the JSON schema sent, and the answer becomes the type.

`output_schema` takes a pydantic model class, any type pydantic's `TypeAdapter` accepts,
or a JSON schema dict, and returns an `OutputSchema`: a name, the schema to send, whether
it can be sent with ``strict: true``, whether it was wrapped, and why not strict.
Reading the answer back (`parse_output`, `partial_output`) is ``llmkit._schema_parse``.
Provider-neutral and pure: no I/O.

The strict conversion follows OpenAI's "Supported schemas" for Structured Outputs
(https://platform.openai.com/docs/guides/structured-outputs#supported-schemas):

- the root is an object, never ``anyOf``: any other root is wrapped as the one required
  property ``value`` (``wrapped``), which parsing unwraps; a root ``$ref`` (a recursive
  model) is inlined;
- every object lists all its properties in ``required`` and has
  ``additionalProperties: false``; a property that may be left out is made a union with
  null, and a null there means "left out" (`parse_output` drops it, so the field's
  default applies). A property that already admits null keeps null as its value;
- ``$defs`` and ``$ref`` (recursive too) are kept; a ``$ref`` with sibling keywords and a
  one-element ``allOf`` are inlined; pydantic's discriminated ``oneOf`` becomes ``anyOf``;
- kept as they are: ``type``, ``enum``, ``const``, ``description``, ``title``, the
  string keywords ``pattern``, ``minLength``, ``maxLength``, ``format`` (only date-time,
  time, date, duration, email, hostname, ipv4, ipv6, uuid: another format, an annotation
  in JSON Schema, is dropped), the number keywords ``multipleOf``, ``(exclusive)maximum``
  and ``(exclusive)minimum``, and the array keywords ``items``, ``minItems``, ``maxItems``;
- annotations the API refuses or ignores are dropped: ``default`` ("'default' is not
  permitted"), ``examples``, ``deprecated``, ``readOnly``, ``writeOnly``, ``$schema``...;
- limits: 5000 object properties in all, 10 levels of object nesting, 1000 enum values,
  120,000 characters of property names, definition names, enum and const values, and a
  string enum of more than 250 values within 15,000 characters.

Anything else (an object with arbitrary keys such as ``dict[str, int]``, a tuple's
``prefixItems``, ``uniqueItems``, ``allOf``, ``not``, ``if``, an empty schema, an unknown
keyword, a limit passed) cannot be strict: the schema goes as pydantic made it (wrapped
when its root is not an object) with ``strict`` False and one warning per cause, each
naming its place as a JSON pointer into the schema sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar, overload

import pydantic

from llmkit.exceptions import UsageError

__all__ = ["WRAP_KEY", "OutputSchema", "output_schema"]

T = TypeVar("T")

WRAP_KEY = "value"
"""The property a non-object root is wrapped in."""
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What OpenAI accepts as a schema's name."""
MAX_PROPERTIES = 5000
MAX_DEPTH = 10
MAX_ENUM_VALUES = 1000
MAX_CHARS = 120_000
LARGE_ENUM, LARGE_ENUM_CHARS = 250, 15_000
FORMATS = frozenset(
    ("date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid")
)
KEPT = frozenset(
    {
        *("type", "enum", "const", "description", "title", "pattern", "minLength", "maxLength"),
        *("multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"),
        *("minItems", "maxItems"),
    }
)
"""Keywords strict mode supports as they are (and ``format`` of `FORMATS`)."""
DROPPED = frozenset(
    {
        *("default", "examples", "deprecated", "readOnly", "writeOnly", "$comment", "$schema"),
        *("$id", "contentMediaType", "contentEncoding"),
    }
)
"""Annotations left out of a strict schema (they do not change what is valid)."""
_HANDLED = frozenset(
    {
        *("properties", "required", "additionalProperties", "items", "anyOf", "oneOf", "$ref"),
        *("discriminator", "format"),
    }
)
_DEFS = ("$defs", "definitions")


@dataclass(frozen=True)
class OutputSchema(Generic[T]):
    """What to send for an output type, and how to read the answer back."""

    name: str
    """A valid schema name (``^[a-zA-Z0-9_-]{1,64}$``): the type's name, or "output"."""
    schema: dict[str, Any]
    """The JSON schema to send; its root is always an object."""
    strict: bool
    wrapped: bool
    """The type is not an object: the schema is ``{"value": <its schema>}``."""
    warnings: tuple[str, ...]
    """Why ``strict`` is False, one cause each, naming its place; empty when strict."""
    output_type: Any = field(repr=False)
    """The type (or the JSON schema dict) this was made from."""
    adapter: pydantic.TypeAdapter[Any] | None = field(default=None, repr=False, compare=False)
    """Validates the unwrapped answer; None for a JSON schema dict (parsed only)."""
    nulls: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)
    """Object pointer in `schema` -> properties made nullable here (null means left out)."""


@overload
def output_schema(output_type: type[T]) -> OutputSchema[T]: ...
@overload
def output_schema(output_type: Any) -> OutputSchema[Any]: ...
def output_schema(output_type: Any) -> OutputSchema[Any]:
    """The schema to send for ``output_type`` (strict where OpenAI allows it)."""
    adapter: pydantic.TypeAdapter[Any] | None = None
    if isinstance(output_type, Mapping):
        try:
            raw = json.loads(json.dumps(output_type))  # a deep copy; refuses what is not JSON
        except (TypeError, ValueError) as exc:
            raise UsageError(f"an output JSON schema must be JSON: {exc}") from None
        title = raw.get("title")
    else:
        try:
            adapter = pydantic.TypeAdapter(output_type)
            raw = adapter.json_schema()
        except pydantic.PydanticUserError as exc:  # no schema can be generated for it
            raise UsageError(f"output_type {output_type!r} has no JSON schema: {exc}") from None
        title = output_type.__name__ if isinstance(output_type, type) else raw.get("title")
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", title)[:64] if isinstance(title, str) else ""
    defs = {key: raw.pop(key) for key in _DEFS if isinstance(raw.get(key), dict)}
    body = _inline_root(raw, defs)
    kinds = _types(body)
    wrapped = not (kinds == {"object"} or (not kinds and "properties" in body)) or any(
        k in body for k in ("anyOf", "oneOf", "allOf")
    )
    convert = _Convert(defs)
    strict_body = convert.node(body, _At.of(f"/properties/{WRAP_KEY}" if wrapped else ""))
    strict_defs = {
        key: {n: convert.node(d, _At.of(f"/{key}/{_escape(n)}")) for n, d in defs[key].items()}
        for key in defs
    }
    strict_schema = _assemble(strict_body, strict_defs, wrapped)
    problems = convert.problems + _limits(strict_schema)
    strict = not problems
    return OutputSchema(
        name=name if NAME.match(name) else "output",
        schema=strict_schema if strict else _assemble(body, defs, wrapped),
        strict=strict,
        wrapped=wrapped,
        warnings=tuple(dict.fromkeys(problems)),
        output_type=output_type,
        adapter=adapter,
        nulls=convert.nulls if strict else {},
    )


class _At(NamedTuple):
    """A place: its pointer in the strict schema, and in the schema as pydantic made it."""

    sent: str
    src: str

    @staticmethod
    def of(pointer: str) -> _At:
        return _At(pointer, pointer)

    def down(self, sent: str, src: str | None = None) -> _At:
        return _At(self.sent + sent, self.src + (sent if src is None else src))


class _Convert:
    """Builds the strict form of one schema, noting every reason it cannot be strict."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.problems: list[str] = []
        self.nulls: dict[str, frozenset[str]] = {}

    def problem(self, at: _At, why: str) -> None:
        self.problems.append(f"#{at.src}: {why}")

    def node(self, schema: Any, at: _At) -> Any:
        if not isinstance(schema, dict):
            self.problem(at, "a boolean schema cannot be strict")
            return schema
        schema = self._flatten(schema, at)
        if not any(
            k in schema for k in ("type", "enum", "const", "anyOf", "oneOf", "$ref", "properties")
        ):
            self.problem(at, "a schema without a type (any value) cannot be strict")
        out = self._keywords(schema, at)
        if "$ref" in schema:
            if not str(schema["$ref"]).startswith("#"):
                self.problem(at, "only a $ref inside the schema can be strict")
            out["$ref"] = schema["$ref"]
        if isinstance(schema.get("items"), dict):
            out["items"] = self.node(schema["items"], at.down("/items"))
        elif "items" in schema:
            self.problem(at, "an array form of 'items' (a tuple) cannot be strict")
        self._unions(schema, out, at)
        if (
            "properties" in schema
            or "additionalProperties" in schema
            or _types(schema) == {"object"}
        ):
            self._object(schema, out, at)
        return out

    def _keywords(self, schema: dict[str, Any], at: _At) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in KEPT or (key == "format" and value in FORMATS):
                out[key] = value
            elif key not in DROPPED and key not in _HANDLED:
                self.problem(at, f"{key!r} is not supported in strict mode")
        return out

    def _flatten(self, schema: dict[str, Any], at: _At) -> dict[str, Any]:
        """Inline a one-element ``allOf`` and a ``$ref`` that has sibling keywords."""
        for _ in range(32):
            all_of = schema.get("allOf")
            rest = {k: v for k, v in schema.items() if k not in DROPPED}
            if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
                del rest["allOf"]
                schema = {**all_of[0], **rest}
            elif "$ref" in rest and len(rest) > 1:
                target = _resolve({"$defs": {}, **self.defs}, rest.pop("$ref"))
                if target is None:
                    self.problem(at, "a $ref that does not resolve")
                    return rest
                schema = {**target, **rest}
            else:
                return rest
        self.problem(at, "$refs nested too deep to inline")
        return schema

    def _unions(self, schema: dict[str, Any], out: dict[str, Any], at: _At) -> None:
        if "oneOf" in schema and ("discriminator" not in schema or "anyOf" in schema):
            self.problem(at, "'oneOf' without a discriminator cannot be strict")
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if key in schema and not isinstance(branches, list):
                self.problem(at, f"{key!r} must be a list")
            elif isinstance(branches, list) and "anyOf" not in out:
                out["anyOf"] = [
                    self.node(b, at.down(f"/anyOf/{i}", f"/{key}/{i}"))
                    for i, b in enumerate(branches)
                ]

    def _object(self, schema: dict[str, Any], out: dict[str, Any], at: _At) -> None:
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        if not isinstance(properties, dict):
            self.problem(at, "'properties' must be an object")
            return
        if isinstance(extra, dict) or ("properties" not in schema and extra is not False):
            self.problem(
                at, "an object with arbitrary keys (additionalProperties) cannot be strict"
            )
        required = set(schema.get("required", ()))
        converted: dict[str, Any] = {}
        nullable: list[str] = []
        for name, sub in properties.items():
            here = at.down(f"/properties/{_escape(name)}")
            if name in required or self._admits_null(sub):
                converted[name] = self.node(sub, here)
                continue
            inner = self.node(sub, here.down("/anyOf/0", ""))
            lifted = {
                k: inner.pop(k)
                for k in ("title", "description")
                if isinstance(inner, dict) and k in inner
            }
            converted[name] = {"anyOf": [inner, {"type": "null"}], **lifted}
            nullable.append(name)
        if "type" not in out:
            out["type"] = "object"
        out["properties"] = converted
        out["required"] = list(converted)
        out["additionalProperties"] = False
        if nullable:
            self.nulls[at.sent] = frozenset(nullable)

    def _admits_null(self, schema: Any, depth: int = 0) -> bool:
        if not isinstance(schema, dict) or depth > 32:
            return True
        if "null" in _types(schema) or schema.get("const", 0) is None:
            return True
        if None in schema.get("enum", ()) or not schema:
            return True
        branches = [
            *schema.get("anyOf", ()),
            *schema.get("oneOf", ()),
            *schema.get("allOf", ())[:1],
        ]
        if "$ref" in schema:
            branches.append(_resolve({"$defs": {}, **self.defs}, schema["$ref"]))
        return any(self._admits_null(b, depth + 1) for b in branches if b is not None)


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    return {kind} if isinstance(kind, str) else set(kind) if isinstance(kind, list) else set()


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _resolve(root: Mapping[str, Any], ref: Any) -> Any:
    """The schema a local ``$ref`` names in ``root``, or None."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _inline_root(raw: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The root schema with a root ``$ref`` replaced by what it names (a recursive model)."""
    ref = raw.get("$ref")
    target = _resolve(defs, ref) if str(ref).startswith(tuple(f"#/{k}/" for k in _DEFS)) else None
    if not isinstance(target, dict):
        return raw
    body = {**target, **{k: v for k, v in raw.items() if k != "$ref"}}
    key, _, name = str(ref)[2:].partition("/")
    name = name.replace("~1", "/").replace("~0", "~")
    others = [d for n, d in defs[key].items() if n != name]
    if ref not in set(_refs([body, others])):
        del defs[key][name]  # nothing refers to it any more
        if not defs[key]:
            del defs[key]
    return body


def _refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` anywhere in ``node``."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _assemble(body: Any, defs: dict[str, Any], wrapped: bool) -> dict[str, Any]:
    if not wrapped:
        return {**body, **defs}
    wrapper = {"type": "object", "properties": {WRAP_KEY: body}, "required": [WRAP_KEY]}
    return {**wrapper, "additionalProperties": False, **defs}


def _limits(schema: dict[str, Any]) -> list[str]:
    """What of OpenAI's size limits the strict schema passes."""
    properties = enums = chars = 0
    problems: list[str] = []
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        properties += len(node.get("properties", {}))
        chars += sum(map(len, node.get("properties", {})))
        chars += sum(len(n) for key in _DEFS for n in node.get(key, {}))
        values = node.get("enum", [])
        enums += len(values)
        strings = sum(len(v) for v in values if isinstance(v, str))
        const = node.get("const")
        chars += strings + (len(const) if isinstance(const, str) else 0)
        if len(values) > LARGE_ENUM and strings > LARGE_ENUM_CHARS:
            problems.append(
                f"#: an enum of {len(values)} values has over {LARGE_ENUM_CHARS} characters"
            )
        stack.extend([*node.get("properties", {}).values(), node.get("items")])
        stack.extend(
            [*node.get("anyOf", ()), *(d for k in _DEFS for d in node.get(k, {}).values())]
        )
    if properties > MAX_PROPERTIES:
        problems.append(f"#: {properties} object properties, over the limit of {MAX_PROPERTIES}")
    if enums > MAX_ENUM_VALUES:
        problems.append(f"#: {enums} enum values, over the limit of {MAX_ENUM_VALUES}")
    if chars > MAX_CHARS:
        problems.append(f"#: {chars} characters of names and values, over {MAX_CHARS}")
    depth = _depth(schema, schema, (), {})
    if depth > MAX_DEPTH:
        problems.append(f"#: objects nested {depth} deep, over the limit of {MAX_DEPTH}")
    return problems


def _depth(node: Any, root: dict[str, Any], seen: tuple[str, ...], memo: dict[str, int]) -> int:
    """Levels of nested objects in ``node``, through $refs (a recursion counts once)."""
    if not isinstance(node, dict):
        return 0
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return 0
        if ref not in memo:
            memo[ref] = _depth(_resolve(root, ref), root, (*seen, ref), memo)
        return memo[ref]
    here = 1 if "properties" in node else 0
    children = [*node.get("properties", {}).values(), node.get("items"), *node.get("anyOf", ())]
    return here + max((_depth(c, root, seen, memo) for c in children), default=0)
