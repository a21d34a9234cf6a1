"""Tier 1: output schemas for structured output (`llmkit._schema`), on a table of types.

Each row: a type, whether its schema can be strict, whether it is wrapped, its name, what
the schema must say, and an answer in the shape the schema asks for with the value it
parses to. Every strict schema is checked against OpenAI's strict-mode rules as a whole.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Generic, Literal, NotRequired, TypeVar

import pydantic
import pytest
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from llmkit._schema import NAME, OutputSchema, output_schema
from llmkit._schema_parse import parse_output, partial_output
from llmkit.exceptions import OutputValidationError, UsageError

Check = Callable[[dict[str, Any]], None]
V = TypeVar("V")


class Weather(BaseModel):
    city: str
    temperature_c: float


class Optionals(BaseModel):
    note: str | None = None
    count: int = 3
    tags: list[str] = Field(default_factory=list)


class Address(BaseModel):
    street: str
    zip: str


class Person(BaseModel):
    name: str
    home: Address
    work: Address | None = None


class Node(BaseModel):
    value: int
    children: list[Node] = []


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"] = "dog"
    good: bool


class Owner(BaseModel):
    pet: Cat | Dog = Field(discriminator="kind", description="the pet")


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Movie(TypedDict):
    title: str
    year: NotRequired[int]


class Counts(BaseModel):
    counts: dict[str, int]


class When(BaseModel):
    at: datetime.datetime
    day: datetime.date
    took: datetime.timedelta
    id: uuid.UUID


class Link(BaseModel):
    url: pydantic.HttpUrl


class Bounded(BaseModel):
    even: int = Field(ge=0, le=100, multiple_of=2)
    code: str = Field(min_length=2, max_length=4, pattern="^[A-Z]+$")
    some: list[int] = Field(min_length=1, max_length=3)


class Tags(BaseModel):
    tags: set[str]


class Pair(BaseModel):
    pair: tuple[int, str]


class Documented(BaseModel):
    level: int = Field(default=1, examples=[1, 2], description="how loud")


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    first_name: str = Field(alias="firstName")


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int


class Anything(BaseModel):
    data: Any


class Extra(BaseModel):
    x: Annotated[int, Field(json_schema_extra={"x-unit": "cm"})]


class Page(BaseModel, Generic[V]):
    items: list[V]


USER_SCHEMA: dict[str, Any] = {
    "title": "ticket",
    "type": "object",
    "properties": {"id": {"type": "integer"}, "note": {"type": "string", "default": ""}},
    "required": ["id"],
}


def nested(depth: int) -> dict[str, Any]:
    """A JSON schema of ``depth`` objects, each inside the last."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    return schema


def prop(*path: str | int) -> Callable[[dict[str, Any]], Any]:
    def get(schema: dict[str, Any]) -> Any:
        node: Any = schema
        for part in path:
            node = node[part]
        return node

    return get


def has(path: tuple[str | int, ...], expected: Any) -> Check:
    def check(schema: dict[str, Any]) -> None:
        assert prop(*path)(schema) == expected

    return check


def lacks(path: tuple[str | int, ...], key: str) -> Check:
    def check(schema: dict[str, Any]) -> None:
        assert key not in prop(*path)(schema)

    return check


NULL = {"type": "null"}


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    output_type: Any
    strict: bool
    wrapped: bool
    name: str
    checks: tuple[Check, ...]
    answer: Any  # a JSON value in the shape the sent schema asks for
    parsed: Any  # what parse_output makes of it
    warning: str = ""  # a part of the first warning


TABLE = [
    Row(
        "model",
        Weather,
        True,
        False,
        "Weather",
        (
            has(
                (),
                {
                    "title": "Weather",
                    "type": "object",
                    "properties": {
                        "city": {"title": "City", "type": "string"},
                        "temperature_c": {"title": "Temperature C", "type": "number"},
                    },
                    "required": ["city", "temperature_c"],
                    "additionalProperties": False,
                },
            ),
        ),
        {"city": "Oslo", "temperature_c": -3.5},
        Weather(city="Oslo", temperature_c=-3.5),
    ),
    Row(
        "optional-fields",
        Optionals,
        True,
        False,
        "Optionals",
        (
            has(("required",), ["note", "count", "tags"]),
            has(("properties", "note", "anyOf"), [{"type": "string"}, NULL]),
            has(("properties", "count", "anyOf"), [{"type": "integer"}, NULL]),
            has(("properties", "count", "title"), "Count"),
            lacks(("properties", "note"), "default"),
        ),
        {"note": None, "count": None, "tags": ["a"]},
        Optionals(note=None, count=3, tags=["a"]),
    ),
    Row(
        "nested-models",
        Person,
        True,
        False,
        "Person",
        (
            has(("properties", "home"), {"$ref": "#/$defs/Address"}),
            has(("properties", "work", "anyOf"), [{"$ref": "#/$defs/Address"}, NULL]),
            has(("$defs", "Address", "additionalProperties"), False),
            has(("$defs", "Address", "required"), ["street", "zip"]),
        ),
        {"name": "Ann", "home": {"street": "Main", "zip": "1"}, "work": None},
        Person(name="Ann", home=Address(street="Main", zip="1")),
    ),
    Row(
        "recursive-model",
        Node,
        True,
        False,
        "Node",
        (
            lacks((), "$ref"),
            has(("type",), "object"),
            has(("properties", "children", "anyOf", 0, "items"), {"$ref": "#/$defs/Node"}),
            has(("$defs", "Node", "required"), ["value", "children"]),
        ),
        {"value": 1, "children": [{"value": 2, "children": None}]},
        Node(value=1, children=[Node(value=2)]),
    ),
    Row(
        "list-root",
        list[int],
        True,
        True,
        "output",
        (
            has(
                (),
                {
                    "type": "object",
                    "properties": {"value": {"type": "array", "items": {"type": "integer"}}},
                    "required": ["value"],
                    "additionalProperties": False,
                },
            ),
        ),
        {"value": [1, 2, 3]},
        [1, 2, 3],
    ),
    Row(
        "literal-root",
        Literal["yes", "no"],
        True,
        True,
        "output",
        (has(("properties", "value"), {"enum": ["yes", "no"], "type": "string"}),),
        {"value": "no"},
        "no",
    ),
    Row(
        "enum-root",
        Color,
        True,
        True,
        "Color",
        (has(("properties", "value", "enum"), ["red", "green"]),),
        {"value": "green"},
        Color.GREEN,
    ),
    Row(
        "union-root",
        Cat | Dog,
        True,
        True,
        "output",
        (
            has(
                ("properties", "value", "anyOf"),
                [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}],
            ),
            has(("$defs", "Cat", "required"), ["kind", "lives"]),
        ),
        {"value": {"kind": "dog", "good": True}},
        Dog(good=True),
    ),
    Row(
        "discriminated-union",
        Owner,
        True,
        False,
        "Owner",
        (
            lacks(("properties", "pet"), "oneOf"),
            lacks(("properties", "pet"), "discriminator"),
            has(("properties", "pet", "description"), "the pet"),
            has(("properties", "pet", "anyOf", 1), {"$ref": "#/$defs/Dog"}),
        ),
        {"pet": {"kind": "cat", "lives": None}},
        Owner(pet=Cat(lives=9)),
    ),
    Row(
        "dataclass",
        Point,
        True,
        False,
        "Point",
        (has(("required",), ["x", "y"]), has(("properties", "y", "anyOf", 1), NULL)),
        {"x": 1, "y": None},
        Point(x=1, y=0),
    ),
    Row(
        "typeddict",
        Movie,
        True,
        False,
        "Movie",
        (has(("required",), ["title", "year"]), has(("properties", "year", "anyOf", 1), NULL)),
        {"title": "Heat", "year": None},
        {"title": "Heat"},
    ),
    Row(
        "open-dict-root",
        dict[str, int],
        False,
        False,
        "output",
        (has((), {"additionalProperties": {"type": "integer"}, "type": "object"}),),
        {"a": 1},
        {"a": 1},
        "#: an object with arbitrary keys",
    ),
    Row(
        "open-dict-field",
        Counts,
        False,
        False,
        "Counts",
        (has(("required",), ["counts"]), lacks((), "additionalProperties")),
        {"counts": {"a": 1}},
        Counts(counts={"a": 1}),
        "#/properties/counts: an object with arbitrary keys",
    ),
    Row(
        "formats",
        When,
        True,
        False,
        "When",
        (
            has(("properties", "at", "format"), "date-time"),
            has(("properties", "day", "format"), "date"),
            has(("properties", "took", "format"), "duration"),
            has(("properties", "id", "format"), "uuid"),
        ),
        {
            "at": "2026-01-02T03:04:05Z",
            "day": "2026-01-02",
            "took": "PT1M",
            "id": "12345678-1234-5678-1234-567812345678",
        },
        When(
            at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            day=datetime.date(2026, 1, 2),
            took=datetime.timedelta(minutes=1),
            id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        ),
    ),
    Row(
        "unsupported-format-dropped",
        Link,
        True,
        False,
        "Link",
        (
            lacks(("properties", "url"), "format"),
            has(("properties", "url", "maxLength"), 2083),
        ),
        {"url": "https://example.com/"},
        Link(url=pydantic.HttpUrl("https://example.com/")),
    ),
    Row(
        "constrained",
        Bounded,
        True,
        False,
        "Bounded",
        (
            has(("properties", "even", "minimum"), 0),
            has(("properties", "even", "maximum"), 100),
            has(("properties", "even", "multipleOf"), 2),
            has(("properties", "code", "pattern"), "^[A-Z]+$"),
            has(("properties", "code", "minLength"), 2),
            has(("properties", "some", "minItems"), 1),
            has(("properties", "some", "maxItems"), 3),
        ),
        {"even": 4, "code": "AB", "some": [1]},
        Bounded(even=4, code="AB", some=[1]),
    ),
    Row(
        "unique-items",
        Tags,
        False,
        False,
        "Tags",
        (has(("properties", "tags", "uniqueItems"), True),),
        {"tags": ["a", "b"]},
        Tags(tags={"a", "b"}),
        "#/properties/tags: 'uniqueItems'",
    ),
    Row(
        "tuple",
        Pair,
        False,
        False,
        "Pair",
        (has(("properties", "pair", "prefixItems", 0), {"type": "integer"}),),
        {"pair": [1, "a"]},
        Pair(pair=(1, "a")),
        "#/properties/pair: 'prefixItems'",
    ),
    Row(
        "defaults-and-examples",
        Documented,
        True,
        False,
        "Documented",
        (
            has(
                ("properties", "level"),
                {
                    "anyOf": [{"type": "integer"}, NULL],
                    "title": "Level",
                    "description": "how loud",
                },
            ),
        ),
        {"level": 2},
        Documented(level=2),
    ),
    Row(
        "alias",
        Aliased,
        True,
        False,
        "Aliased",
        (has(("required",), ["firstName"]),),
        {"firstName": "Ada"},
        Aliased.model_validate({"firstName": "Ada"}),
    ),
    Row(
        "extra-allowed-is-closed",
        Loose,
        True,
        False,
        "Loose",
        (has(("additionalProperties",), False),),
        {"a": 1},
        Loose(a=1),
    ),
    Row(
        "any-field",
        Anything,
        False,
        False,
        "Anything",
        (has(("properties", "data"), {"title": "Data"}),),
        {"data": [1, {"b": None}]},
        Anything(data=[1, {"b": None}]),
        "#/properties/data: a schema without a type",
    ),
    Row(
        "unknown-keyword",
        Extra,
        False,
        False,
        "Extra",
        (has(("properties", "x", "x-unit"), "cm"),),
        {"x": 5},
        Extra(x=5),
        "#/properties/x: 'x-unit' is not supported",
    ),
    Row(
        "optional-model-root",
        Weather | None,
        True,
        True,
        "output",
        (has(("properties", "value", "anyOf", 1), NULL),),
        {"value": None},
        None,
    ),
    Row(
        "list-of-models-with-defaults",
        list[Cat],
        True,
        True,
        "output",
        (has(("properties", "value", "items"), {"$ref": "#/$defs/Cat"}),),
        {"value": [{"kind": "cat", "lives": None}, {"kind": "cat", "lives": 1}]},
        [Cat(lives=9), Cat(lives=1)],
    ),
    Row(
        "generic-model-name",
        Page[int],
        True,
        False,
        "Page_int_",
        (has(("properties", "items", "items"), {"type": "integer"}),),
        {"items": [1]},
        Page[int](items=[1]),
    ),
    Row(
        "user-json-schema",
        USER_SCHEMA,
        True,
        False,
        "ticket",
        (
            has(("required",), ["id", "note"]),
            has(("properties", "note"), {"anyOf": [{"type": "string"}, NULL]}),
        ),
        {"id": 7, "note": None},
        {"id": 7},
    ),
    Row(
        "user-json-schema-array-root",
        {"type": "array", "items": {"type": "string"}},
        True,
        True,
        "output",
        (has(("properties", "value", "items"), {"type": "string"}),),
        {"value": ["a"]},
        ["a"],
    ),
    Row(
        "user-json-schema-too-deep",
        nested(11),
        False,
        False,
        "output",
        (),
        json.loads('{"x":' * 11 + '"s"' + "}" * 11),
        json.loads('{"x":' * 11 + '"s"' + "}" * 11),
        "#: objects nested 11 deep",
    ),
]
IDS = [row.id for row in TABLE]


def objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every object schema in ``node``, at any depth."""
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield node
        for value in node.values():
            yield from objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from objects(value)


def keys(node: Any) -> Iterator[str]:
    """Every keyword used in a schema (property names excluded)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            if key in ("properties", "$defs"):
                for sub in value.values():
                    yield from keys(sub)
            else:
                yield from keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from keys(value)


def test_the_table_is_wide_enough() -> None:
    assert len(TABLE) >= 20
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_schema(row: Row) -> None:
    out = output_schema(row.output_type)
    assert (out.strict, out.wrapped, out.name) == (row.strict, row.wrapped, row.name)
    assert NAME.fullmatch(out.name)
    for check in row.checks:
        check(out.schema)
    assert out.schema["type"] == "object"
    assert out.strict == (not out.warnings)
    if row.warning:
        assert row.warning in out.warnings[0], out.warnings


@pytest.mark.parametrize("row", [r for r in TABLE if r.strict], ids=lambda r: r.id)
def test_strict_schema_follows_openai_rules(row: Row) -> None:
    schema = output_schema(row.output_type).schema
    assert "anyOf" not in schema
    for obj in objects(schema):
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    used = set(keys(schema))
    assert not used & {"default", "examples", "oneOf", "allOf", "discriminator", "prefixItems"}


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_round_trip(row: Row) -> None:
    out = output_schema(row.output_type)
    assert parse_output(out, json.dumps(row.answer)) == row.parsed


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_the_whole_answer_is_also_a_partial_answer(row: Row) -> None:
    out = output_schema(row.output_type)
    assert partial_output(out, json.dumps(row.answer)) == row.parsed


def test_non_strict_schema_is_as_pydantic_made_it() -> None:
    out = output_schema(list[dict[str, int]])
    assert not out.strict
    assert out.warnings == (
        "#/properties/value/items: an object with arbitrary keys (additionalProperties)"
        " cannot be strict",
    )
    inner = pydantic.TypeAdapter(list[dict[str, int]]).json_schema()
    assert out.schema == {
        "type": "object",
        "properties": {"value": inner},
        "required": ["value"],
        "additionalProperties": False,
    }


def test_non_strict_keeps_defaults_and_marks_no_nulls() -> None:
    out = output_schema(Counts | Optionals)
    assert not out.strict
    assert out.schema["$defs"]["Optionals"]["properties"]["count"]["default"] == 3
    # null is not "left out" when the schema sent did not offer it
    with pytest.raises(OutputValidationError):
        parse_output(out, '{"value": {"note": "n", "count": null, "tags": []}}')


def test_warnings_name_each_place_once() -> None:
    class Two(BaseModel):
        a: dict[str, int]
        b: set[int]
        c: dict[str, int]

    out = output_schema(list[Two])
    assert out.warnings == (
        "#/$defs/Two/properties/a: an object with arbitrary keys (additionalProperties)"
        " cannot be strict",
        "#/$defs/Two/properties/b: 'uniqueItems' is not supported in strict mode",
        "#/$defs/Two/properties/c: an object with arbitrary keys (additionalProperties)"
        " cannot be strict",
    )


def test_ref_with_description_is_inlined() -> None:
    class Home(BaseModel):
        address: Address = Field(description="where")

    out = output_schema(Home)
    assert out.strict
    address = out.schema["properties"]["address"]
    assert "$ref" not in address
    assert address["description"] == "where"
    assert address["required"] == ["street", "zip"]
    assert "$defs" not in json.dumps(address)


def test_unused_definition_of_an_inlined_root_is_dropped() -> None:
    schema = {"$defs": {"A": {"type": "object", "properties": {}}}, "$ref": "#/$defs/A"}
    out = output_schema(schema)
    assert out.schema == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("schema", "warning"),
    [
        (
            {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5001)}},
            "5001 object properties",
        ),
        ({"type": "object", "properties": {"e": {"enum": list(range(1001))}}}, "1001 enum values"),
        (
            {
                "type": "object",
                "properties": {"e": {"enum": ["x" * 61 + str(i) for i in range(251)]}},
            },
            "an enum of 251 values",
        ),
        (
            {"type": "object", "properties": {"x" * 120_001: {"type": "string"}}},
            "characters of names",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"allOf": [{"type": "string"}, {"minLength": 1}]}},
            },
            "'allOf'",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
            },
            "'oneOf' without",
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}},
            "only a $ref inside",
        ),
        ({"type": "object", "properties": {"a": True}}, "a boolean schema"),
        ({"type": "object", "properties": {"a": {"anyOf": "x"}}}, "'anyOf' must be a list"),
        ({"type": "object", "properties": ["a"]}, "'properties' must be an object"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "array", "items": [{"type": "string"}]}},
            },
            "array form of 'items'",
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope", "description": "d"}}},
            "does not resolve",
        ),
    ],
    ids=[
        "properties",
        "enum-values",
        "enum-chars",
        "chars",
        "allOf",
        "oneOf",
        "remote-ref",
        "bool",
        "anyof-not-list",
        "properties-not-object",
        "tuple-items",
        "bad-ref",
    ],
)
def test_what_cannot_be_strict(schema: dict[str, Any], warning: str) -> None:
    out = output_schema(schema)
    assert not out.strict
    assert any(warning in w for w in out.warnings), out.warnings


def test_a_warning_names_the_place_in_the_schema_sent() -> None:
    class Defaulted(BaseModel):
        d: dict[str, int] = {}

    out = output_schema(Defaulted)
    assert out.warnings == (
        "#/properties/d: an object with arbitrary keys (additionalProperties) cannot be strict",
    )
    assert out.schema["properties"]["d"]["additionalProperties"] == {"type": "integer"}


def test_an_object_without_a_type_and_null_in_an_enum() -> None:
    schema = {"properties": {"a": {"enum": ["x", None]}}}
    out = output_schema(schema)
    assert (out.strict, out.wrapped) == (True, False)
    assert out.schema == {
        "type": "object",
        "properties": {"a": {"enum": ["x", None]}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert parse_output(out, '{"a": null}') == {"a": None}


def test_nulls_are_left_out_inside_a_list_that_is_a_union_branch() -> None:
    class Either(BaseModel):
        v: list[Cat] | int = 0

    out = output_schema(Either)
    assert parse_output(out, '{"v": [{"kind": "cat", "lives": null}]}') == Either(v=[Cat()])
    assert parse_output(out, '{"v": null}') == Either()


def test_legacy_definitions_are_kept_at_the_root() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/definitions/S"}},
        "required": ["a"],
        "definitions": {"S": {"type": "object", "properties": {"b": {"type": "integer"}}}},
    }
    out = output_schema(schema)
    assert out.strict
    assert out.schema["properties"]["a"] == {"$ref": "#/definitions/S"}
    assert out.schema["definitions"]["S"]["required"] == ["b"]
    assert parse_output(out, '{"a": {"b": null}}') == {"a": {}}


def test_the_limits_themselves_are_strict() -> None:
    assert output_schema(nested(10)).strict
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}}
    assert output_schema(wide).strict
    assert output_schema(
        {"type": "object", "properties": {"e": {"enum": list(range(1000))}}}
    ).strict


def test_single_allof_is_merged() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"allOf": [{"$ref": "#/$defs/S"}], "description": "d"}},
        "$defs": {"S": {"type": "string"}},
    }
    out = output_schema(schema)
    assert out.strict
    assert out.schema["properties"]["a"] == {
        "anyOf": [{"type": "string"}, NULL],
        "description": "d",
    }


def test_name_is_cleaned_and_cut() -> None:
    assert (
        output_schema({"title": "my schema!", "type": "object", "properties": {}}).name
        == "my_schema_"
    )
    assert output_schema({"title": "x" * 80, "type": "object", "properties": {}}).name == "x" * 64
    assert output_schema({"title": "", "type": "object", "properties": {}}).name == "output"
    assert output_schema({"title": 3, "type": "object", "properties": {}}).name == "output"


def test_the_given_schema_is_not_changed() -> None:
    before = json.dumps(USER_SCHEMA)
    output_schema(USER_SCHEMA)
    assert json.dumps(USER_SCHEMA) == before


def test_output_schema_is_typed_and_frozen() -> None:
    out: OutputSchema[Weather] = output_schema(Weather)
    weather: Weather = parse_output(out, '{"city": "Rome", "temperature_c": 20}')
    assert weather.temperature_c == 20.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.strict = False  # type: ignore[misc]


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("output_type", [Weather, list[int], Optionals, USER_SCHEMA], ids=str)
def test_text_that_is_not_json(output_type: Any) -> None:
    out = output_schema(output_type)
    with pytest.raises(OutputValidationError) as caught:
        parse_output(out, '{"city": "Ro')
    assert caught.value.text == '{"city": "Ro'
    assert [e["type"] for e in caught.value.errors] == ["json_invalid"]
    assert "Invalid JSON" in str(caught.value)


def test_an_answer_that_does_not_validate() -> None:
    out = output_schema(Weather)
    text = '{"city": "secret-value", "temperature_c": "warm"}'
    with pytest.raises(OutputValidationError) as caught:
        parse_output(out, text)
    error = caught.value
    assert error.text == text
    assert [(e["type"], e["loc"]) for e in error.errors] == [("float_parsing", ("temperature_c",))]
    assert all("input" not in e and "url" not in e for e in error.errors)
    assert "warm" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_errors_of_a_wrapped_answer_are_placed_in_the_value() -> None:
    out = output_schema(list[int])
    with pytest.raises(OutputValidationError) as caught:
        parse_output(out, '{"value": [1, "x"]}')
    assert [e["loc"] for e in caught.value.errors] == [(1,)]
    assert str(caught.value).startswith("the answer does not fit the output type (1 error):")


@pytest.mark.parametrize("text", ["[1, 2]", '{"values": [1]}'])
def test_a_wrapped_answer_without_its_value(text: str) -> None:
    with pytest.raises(OutputValidationError) as caught:
        parse_output(output_schema(list[int]), text)
    assert caught.value.errors == [{"type": "missing", "loc": ("value",), "msg": "Field required"}]


def test_a_null_where_null_was_never_offered_is_an_error() -> None:
    out = output_schema(Weather)
    with pytest.raises(OutputValidationError):
        parse_output(out, '{"city": null, "temperature_c": 1}')


def test_a_user_schema_answer_is_only_parsed() -> None:
    out = output_schema(USER_SCHEMA)
    assert out.adapter is None
    assert parse_output(out, '{"id": "not an int", "extra": 1}') == {"id": "not an int", "extra": 1}


class Plain:
    """A class pydantic has no schema for."""


@pytest.mark.parametrize(
    "bad",
    [Callable[[], int], Plain, 3, {"type": object()}],
    ids=["callable", "plain-class", "number", "not-json"],
)
def test_an_output_type_without_a_schema(bad: Any) -> None:
    with pytest.raises(UsageError):
        output_schema(bad)


def test_nulls_left_out_only_where_offered_deep_in_unions() -> None:
    class Box(BaseModel):
        content: Cat | Dog | None = None
        many: list[Cat | Dog]

    out = output_schema(Box)
    assert out.strict
    text = json.dumps(
        {
            "content": {"kind": "cat", "lives": None},
            "many": [{"kind": "dog", "good": False}, {"kind": "cat", "lives": None}],
        }
    )
    assert parse_output(out, text) == Box(content=Cat(), many=[Dog(good=False), Cat()])


class Tagged(BaseModel):
    kind: Literal["a"]
    n: int = 0


class OtherTagged(BaseModel):
    kind: Literal["b"]
    n: int | None


class Wide(BaseModel):
    n: int = 0
    extra: str = ""


class Narrow(BaseModel):
    n: int | None


@pytest.mark.parametrize(
    ("output_type", "answer", "expected"),
    [
        (Tagged | OtherTagged, {"kind": "b", "n": None}, OtherTagged(kind="b", n=None)),
        (Tagged | OtherTagged, {"kind": "a", "n": None}, Tagged(kind="a")),
        (Wide | Narrow, {"n": None}, Narrow(n=None)),
        (Wide | Narrow, {"n": None, "extra": None}, Wide()),
    ],
    ids=["by-constant", "by-constant-left-out", "by-exact-keys", "by-exact-keys-left-out"],
)
def test_a_null_is_left_out_by_the_union_branch_the_answer_is_of(
    output_type: Any, answer: dict[str, Any], expected: BaseModel
) -> None:
    out = output_schema(output_type)
    assert out.strict
    assert parse_output(out, json.dumps({"value": answer})) == expected


# --- partial answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output_type", "text", "expected"),
    [
        (Weather, "", None),
        (Weather, "  ", None),
        (Weather, '{"city": "Par', {"city": "Par"}),
        (Weather, '{"city": "Paris", "temperature_c": 2', Weather(city="Paris", temperature_c=2)),
        (Weather, '{"city": "Paris", "tempera', {"city": "Paris"}),
        (list[int], '{"val', None),
        (list[int], '{"value": [1, 2, 3', [1, 2, 3]),
        (list[Cat], '{"value": [{"kind": "cat", "lives": null}, {"kind": "ca', [Cat()]),
        (str, '{"value": "hel', "hel"),
        (Movie, '{"title": "He', {"title": "He"}),
        (Optionals, '{"note": null, "count": null, "ta', Optionals(note=None, count=3)),
        (USER_SCHEMA, '{"id": 1, "note": null', {"id": 1}),
        (Color, '{"value": "gre', "gre"),
    ],
    ids=[
        "empty",
        "blank",
        "trailing-string",
        "all-fields",
        "unfinished-key",
        "wrapped-before-value",
        "wrapped-list",
        "unfinished-last-item",
        "wrapped-string",
        "typeddict",
        "left-out-nulls",
        "user-schema",
        "unfinished-enum",
    ],
)
def test_partial_output(output_type: Any, text: str, expected: Any) -> None:
    assert partial_output(output_schema(output_type), text) == expected
