"""Tier 1: the exception tree, `retryable` defaults, `status_error` and `redact`."""

from __future__ import annotations

from typing import Any

import pytest

import llmkit
from llmkit.exceptions import (
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConnectError,
    ConnectionClosed,
    IncompleteStream,
    InternalServerError,
    LLMKitError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    ResponseFailed,
    Timeout,
    TransportError,
    UsageError,
    redact,
    status_error,
)
from llmkit.messages import Response, TextPart

# API.md's tree: (class, its parent in the tree).
TREE: list[tuple[type[Exception], type[Exception]]] = [
    (LLMKitError, Exception),
    (UsageError, LLMKitError),
    (UsageError, ValueError),
    (TransportError, LLMKitError),
    (ConnectError, TransportError),
    (Timeout, TransportError),
    (ConnectionClosed, TransportError),
    (APIError, LLMKitError),
    (APIStatusError, APIError),
    (AuthenticationError, APIStatusError),
    (PermissionDeniedError, APIStatusError),
    (NotFoundError, APIStatusError),
    (BadRequestError, APIStatusError),
    (RateLimitError, APIStatusError),
    (InternalServerError, APIStatusError),
    (ResponseFailed, APIError),
    (ProtocolError, LLMKitError),
    (IncompleteStream, ProtocolError),
]


@pytest.mark.parametrize(("cls", "parent"), TREE, ids=lambda c: c.__name__)
def test_tree(cls: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(cls, parent)


@pytest.mark.parametrize(
    ("cls", "not_parent"),
    [
        (ResponseFailed, APIStatusError),
        (IncompleteStream, TransportError),
        (ConnectionClosed, ProtocolError),
        (Timeout, TimeoutError),  # builtins are not shadowed
        (ConnectError, ConnectionError),
        (ProtocolError, APIError),
        (APIError, TransportError),
        (TransportError, ValueError),
    ],
    ids=lambda c: c.__name__,
)
def test_not_in_the_tree(cls: type[Exception], not_parent: type[Exception]) -> None:
    assert not issubclass(cls, not_parent)


def test_usage_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="bad"):
        raise UsageError("bad")


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (LLMKitError("x"), False),
        (UsageError("x"), False),
        (TransportError("x"), True),
        (ConnectError("x"), True),
        (Timeout("x"), True),
        (ConnectionClosed("x"), True),
        (APIError("x"), False),
        (ResponseFailed("x"), False),
        (ProtocolError("x"), False),
        (IncompleteStream("x"), True),
        (ConnectError("x", retryable=False), False),
        (ResponseFailed("x", retryable=True), True),
        (IncompleteStream("x", retryable=False), False),
    ],
    ids=repr,
)
def test_retryable_defaults(error: LLMKitError, retryable: bool) -> None:
    assert error.retryable is retryable


def test_retryable_override_is_per_instance() -> None:
    ConnectError("x", retryable=False)
    assert ConnectError("y").retryable is True
    assert TransportError.retryable is True


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (409, True),
        (422, False),
        (429, True),
        (500, True),
        (503, True),
        (599, True),
    ],
)
def test_status_retryable(status: int, retryable: bool) -> None:
    assert APIStatusError("x", status_code=status).retryable is retryable
    assert status_error(status, "x").retryable is retryable


@pytest.mark.parametrize(
    ("status", "headers", "retryable"),
    [
        (400, {"x-should-retry": "true"}, True),
        (500, {"x-should-retry": "false"}, False),
        (429, {"X-Should-Retry": "false"}, False),
        (503, {"x-should-retry": "maybe"}, True),
        (400, {"x-should-retry": "TRUE"}, False),  # only the exact values count
        (400, {"retry-after": "1"}, False),
        (400, None, False),
    ],
)
def test_x_should_retry_overrides(
    status: int, headers: dict[str, str] | None, retryable: bool
) -> None:
    assert APIStatusError("x", status_code=status, headers=headers).retryable is retryable


def test_explicit_retryable_beats_status_and_headers() -> None:
    error = status_error(500, "x", headers={"x-should-retry": "true"}, retryable=False)
    assert error.retryable is False


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (599, InternalServerError),
        (408, APIStatusError),
        (409, APIStatusError),
        (418, APIStatusError),
        (422, APIStatusError),
        (302, APIStatusError),
    ],
)
def test_status_error_class(status: int, cls: type[APIStatusError]) -> None:
    error = status_error(status, "msg")
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == "msg"


def test_status_error_passes_every_field() -> None:
    partial = Response(content=(TextPart("so far"),))
    error = status_error(
        429,
        "Rate limit reached",
        request_id="req_1",
        headers={"retry-after": "2"},
        code="rate_limit_exceeded",
        param="model",
        error_type="requests",
        body={"error": {"code": "rate_limit_exceeded"}},
        partial=partial,
    )
    assert isinstance(error, RateLimitError)
    assert (error.request_id, error.headers) == ("req_1", {"retry-after": "2"})
    assert (error.code, error.param, error.error_type) == (
        "rate_limit_exceeded",
        "model",
        "requests",
    )
    assert error.body == {"error": {"code": "rate_limit_exceeded"}}
    assert error.partial is partial
    assert error.retryable is True


def test_status_error_headers_are_copied() -> None:
    headers = {"a": "1"}
    error = APIStatusError("x", status_code=400, headers=headers)
    headers["b"] = "2"
    assert error.headers == {"a": "1"}
    assert APIStatusError("x", status_code=400).headers == {}


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (LLMKitError("plain"), "plain"),
        (APIError("bad thing"), "bad thing"),
        (APIError("bad thing", code="oops"), "bad thing (code: oops)"),
        (ResponseFailed("failed", code="server_error"), "failed (code: server_error)"),
        (APIStatusError("nope", status_code=400), "400: nope"),
        (status_error(401, "who", code="invalid_api_key"), "401: who (code: invalid_api_key)"),
        (
            status_error(429, "slow", code="rate_limit_exceeded", request_id="req_9"),
            "429: slow (code: rate_limit_exceeded) [request id: req_9]",
        ),
        (status_error(500, "err", request_id="req_1"), "500: err [request id: req_1]"),
    ],
    ids=repr,
)
def test_str(error: LLMKitError, text: str) -> None:
    assert str(error) == text


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (UsageError("bad 'x'"), "UsageError(\"bad 'x'\")"),
        (status_error(404, "gone"), "NotFoundError('gone')"),
        (IncompleteStream("cut"), "IncompleteStream('cut')"),
    ],
)
def test_repr(error: LLMKitError, text: str) -> None:
    assert repr(error) == text


def test_repr_uses_the_public_module_name() -> None:
    assert llmkit.RateLimitError is RateLimitError
    assert RateLimitError.__module__ == "llmkit"
    assert RateLimitError.__qualname__ == "RateLimitError"


def test_partial_and_connection_closed_fields() -> None:
    partial = Response(content=(TextPart("x"),))
    error = ConnectionClosed("closed", code=1011, reason="server error", partial=partial)
    assert (error.code, error.reason, error.partial) == (1011, "server error", partial)
    assert error.retryable is True
    assert ConnectionClosed("closed").partial is None
    assert (ConnectionClosed("c").code, ConnectionClosed("c").reason) == (None, None)
    assert LLMKitError("x").partial is None
    assert LLMKitError("x").message == "x"


def test_api_error_defaults() -> None:
    error = APIError("x")
    assert (error.code, error.param, error.error_type, error.body) == (None, None, None, None)


def test_cause_is_kept_when_raised_from() -> None:
    original = OSError("refused")
    with pytest.raises(ConnectError) as info:
        try:
            raise original
        except OSError as exc:
            raise ConnectError("could not connect") from exc
    assert info.value.__cause__ is original


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("key sk-abcdef used", ["sk-abcdef"], "key [REDACTED] used"),
        ("sk-abcd and sk-abcd again", ["sk-abcd"], "[REDACTED] and [REDACTED] again"),
        ("a bcde", ["a", "bcd", "bcde"], "a [REDACTED]"),  # short secrets are ignored
        ("value abc", ["abc"], "value abc"),
        ("none here", [None, ""], "none here"),
        ("no secret", ["sk-zzzz"], "no secret"),
        ("one sk-1111 two tok-2222", ["sk-1111", "tok-2222"], "one [REDACTED] two [REDACTED]"),
        ("abcd", ["abcd"], "[REDACTED]"),
    ],
)
def test_redact(text: str, secrets: list[str | None], expected: str) -> None:
    assert redact(text, secrets) == expected


def test_redact_accepts_any_iterable() -> None:
    def secrets() -> Any:
        yield "secret-1"

    assert redact("x secret-1 y", secrets()) == "x [REDACTED] y"
