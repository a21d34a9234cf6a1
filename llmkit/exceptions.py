"""Every error llmkit raises, under one root.

```
LLMKitError
├── UsageError            bad arguments or configuration (also a ValueError)
├── TransportError        could not talk to the server
│   ├── ConnectError
│   ├── Timeout
│   └── ConnectionClosed  the connection ended before a terminal event
│       └── WebSocketNotServed  closed right after the request, twice, before any event
├── APIError              the server answered with an error
│   ├── APIStatusError    an HTTP status (or a WebSocket error frame carrying one)
│   │   ├── BadRequestError          400
│   │   ├── AuthenticationError      401
│   │   ├── PermissionDeniedError    403
│   │   ├── NotFoundError            404
│   │   ├── RateLimitError           429
│   │   └── InternalServerError      >= 500
│   ├── ResponseFailed    response.failed, or an error event without a status
│   └── SteerError        a steer the server did not apply; .input carries it back
└── ProtocolError         the event stream broke the protocol (sans-I/O)
    └── IncompleteStream  the stream ended before a terminal event
```

Every exception has ``retryable`` (whether sending the same request again may succeed)
and ``partial``: the `Response` built from everything that arrived before the failure,
or ``None`` when nothing was underway. Foreign exceptions are mapped at the transport
boundary with ``raise ... from exc``, so the original stays on ``__cause__``.

No message built here may contain a credential: transports pass server text through
`redact` before it reaches an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmkit.messages import Response, UserMessage

__all__ = [
    "APIError",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "ConnectError",
    "ConnectionClosed",
    "IncompleteStream",
    "InternalServerError",
    "LLMKitError",
    "NotFoundError",
    "OutputError",
    "OutputValidationError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "RefusalError",
    "ResponseFailed",
    "Timeout",
    "TransportError",
    "UsageError",
    "WebSocketNotServed",
    "FRAGMENT",
    "redact",
    "redact_error",
    "redact_tree",
    "status_error",
]

_REDACTED = "[REDACTED]"


FRAGMENT = 8
"""The length of a run of a secret's characters that counts as part of it: text cut short
(a validation error quoting a value up to a width) can hold a long prefix of a key."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every non-trivial secret replaced by ``[REDACTED]``.

    A secret is also caught in part: every run of text made of `FRAGMENT`-character
    substrings of it (a truncated prefix, a suffix) is replaced too. The pieces are
    taken from each word of the secret, so an auth scheme (``Bearer``) is no piece.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            if secret in text:
                text = text.replace(secret, _REDACTED)
            for word in secret.split():  # "Bearer sk-...": pieces of the key, not "Bearer s"
                if len(word) >= FRAGMENT:
                    text = _redact_fragments(text, word)
    return text


def _redact_fragments(text: str, secret: str) -> str:
    """Replace every run of ``text`` covered by `FRAGMENT`-character pieces of ``secret``."""
    pieces = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    if not any(piece in text for piece in pieces):  # the common case, searched in C
        return text
    spans: list[tuple[int, int]] = []
    for piece in pieces:
        start = text.find(piece)
        while start >= 0:
            spans.append((start, start + FRAGMENT))
            start = text.find(piece, start + 1)
    spans.sort()
    out: list[str] = []
    done = 0
    run_start, run_end = spans[0]
    for start, end in [*spans[1:], (len(text) + 1, 0)]:
        if start <= run_end:
            run_end = max(run_end, end)
            continue
        out += [text[done:run_start], _REDACTED]
        done = run_end
        run_start, run_end = start, end
    out.append(text[done:])
    return "".join(out)


def redact_tree(value: Any, secrets: Sequence[str]) -> Any:
    """Redact every string in a decoded JSON value (escapes can hide a secret in text).

    A value nested too deeply to walk is replaced by its redacted text.
    """
    try:
        return _redact_tree(value, secrets)
    except RecursionError:
        return redact(repr(value), secrets)


def _redact_tree(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact(str(k), secrets): _redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(item, secrets) for item in value]
    return value


def redact_error(error: LLMKitError, secrets: Sequence[str]) -> None:
    """Redact, in place, every text of ``error`` that came from the server.

    A chained cause or context whose text holds a secret or a `FRAGMENT`-character
    piece of one (a validation error quoting the payload) is dropped from the traceback.
    """
    secrets = [s for s in secrets if s]
    if not secrets:
        return
    error.message = redact(error.message, secrets)
    error.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in error.args)
    if isinstance(error, APIError):
        for name in ("code", "param", "error_type"):
            value = getattr(error, name)
            if isinstance(value, str):
                setattr(error, name, redact(value, secrets))
        error.body = redact_tree(error.body, secrets)
    if isinstance(error, APIStatusError):
        error.headers = {k: redact(v, secrets) for k, v in error.headers.items()}
    if any(_leaks(link, secrets) for link in _chain(error)):
        error.__cause__ = None
        error.__suppress_context__ = True


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The causes and contexts a traceback of ``error`` shows, each once (chains can loop)."""
    seen = {id(error)}
    link = error
    while True:
        shown = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
        if shown is None or id(shown) in seen:
            return
        seen.add(id(shown))
        yield shown
        link = shown


def _leaks(exc: BaseException, secrets: Sequence[str]) -> bool:
    """Whether the text of ``exc`` (its message and arguments) holds a secret or a piece."""
    texts = [str(exc), *(repr(arg) for arg in exc.args)]
    return any(redact(text, secrets) != text for text in texts)


class LLMKitError(Exception):
    """Root of every llmkit exception."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        partial: Response | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial
        if retryable is not None:
            self.retryable = retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class UsageError(LLMKitError, ValueError):
    """The caller passed bad arguments or configuration. Never retryable."""


class TransportError(LLMKitError):
    """The client could not talk to the server."""

    retryable = True


class ConnectError(TransportError):
    """No connection could be established (refused, DNS, TLS, upgrade rejected)."""


class Timeout(TransportError):
    """A connect, read or write wait ran out. Not `TimeoutError`: builtins are not shadowed."""


class ConnectionClosed(TransportError):
    """The connection ended before the response reached a terminal event.

    ``code`` and ``reason`` are the WebSocket close code and reason when known.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        reason: str | None = None,
        partial: Response | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, partial=partial, retryable=retryable)
        self.code = code
        self.reason = reason


class WebSocketNotServed(ConnectionClosed):
    """WebSocket mode appears not to be served for this request.

    The server (often a gateway or proxy in front of it, or a model or account not
    enabled for WebSocket mode) closed the socket cleanly right after ``response.create``,
    before any event, and did so again when the request was resent on a new connection.
    Such a close does not prove the request never reached a model (a gateway may have
    forwarded it), so it is not sent a third time, nor over HTTP: the caller decides.
    Not retryable as it is; ``websocket=False`` on the provider serves it over HTTP.
    ``code`` and ``reason`` are those of the second close.
    """

    retryable = False


class APIError(LLMKitError):
    """The server answered with an error.

    ``code`` is the machine-readable code (``rate_limit_exceeded``, ...), ``message``
    the server's text, ``param`` the offending parameter, ``body`` the decoded error
    payload when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        body: Any = None,
        partial: Response | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, partial=partial, retryable=retryable)
        self.code = code
        self.param = param
        self.error_type = error_type
        self.body = body

    def __str__(self) -> str:
        return f"{self.message} (code: {self.code})" if self.code else self.message


class APIStatusError(APIError):
    """An error answer with an HTTP status (also a WebSocket error frame with ``status``)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        body: Any = None,
        partial: Response | None = None,
        retryable: bool | None = None,
    ) -> None:
        if retryable is None:
            retryable = _status_retryable(status_code, headers)
        super().__init__(
            message,
            code=code,
            param=param,
            error_type=error_type,
            body=body,
            partial=partial,
            retryable=retryable,
        )
        self.status_code = status_code
        self.request_id = request_id
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        text = f"{self.status_code}: {super().__str__()}"
        return f"{text} [request id: {self.request_id}]" if self.request_id else text


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404."""


class RateLimitError(APIStatusError):
    """429."""


class InternalServerError(APIStatusError):
    """A status of 500 or more."""


class ResponseFailed(APIError):
    """The response ended with ``response.failed``, or an ``error`` event without a status.

    The model may have run and been billed: this is never replayed automatically.
    ``partial`` holds the output that arrived before the failure.
    """


class SteerError(APIError):
    """A steer (``Stream.steer``) the server did not apply, or that cannot be sent.

    ``input`` is the user input given to ``steer()``, as messages, so nothing the user
    typed is lost: send it with the next request. ``code`` is the server's
    (``steering_not_supported``, ``response_already_completed``, ``invalid_input``,
    ``too_many_pending_steers``, ``response_not_found``, ``response_not_active``,
    ``successor_creation_failed``) or llmkit's own ``response_already_completed`` for a
    steer given after the stream's response ended.
    """

    def __init__(
        self,
        message: str,
        *,
        input: tuple[UserMessage, ...] = (),
        code: str | None = None,
        partial: Response | None = None,
    ) -> None:
        super().__init__(message, code=code, partial=partial, retryable=False)
        self.input = input


class ProtocolError(LLMKitError):
    """The event stream broke the Responses or Chat protocol (bad JSON, bad shape)."""


class IncompleteStream(ProtocolError):
    """The stream ended before a terminal event. Never a silent finish."""

    retryable = True


class OutputError(LLMKitError):
    """The answer is not the structured output the call asked for (``output_type=``).

    Its own branch, not an `APIError`: the server answered, the response is complete, and
    only the caller's type says it is not an answer. ``partial`` is that whole `Response`
    (text, usage, metadata; ``partial.message`` still belongs in the history). Not
    retryable: the same request is likely to get the same answer.
    """


class RefusalError(OutputError):
    """The model refused to answer (a refusal part instead of the JSON asked for).

    ``refusal`` is the model's refusal text, also ``partial.refusal``.
    """

    def __init__(self, refusal: str, *, partial: Response | None = None) -> None:
        super().__init__(f"the model refused to answer: {refusal}", partial=partial)
        self.refusal = refusal


class OutputValidationError(OutputError):
    """The answer is not JSON, or does not validate as the output type.

    ``text`` is the model's text as it arrived; ``errors`` pydantic's error list without
    input values (``json_invalid`` when the text is not JSON; ``tool_calls`` when the
    model called tools instead of answering: `ToolLoop` runs them).
    """

    def __init__(
        self, text: str, errors: list[dict[str, Any]], *, partial: Response | None = None
    ) -> None:
        first = errors[0]["msg"] if errors else "no detail"
        count = f"{len(errors)} error" + ("s" if len(errors) != 1 else "")
        super().__init__(
            f"the answer does not fit the output type ({count}): {first}", partial=partial
        )
        self.text = text
        self.errors = errors


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

_RETRYABLE_STATUSES = frozenset({408, 409, 429})


def _status_retryable(status_code: int, headers: dict[str, str] | None) -> bool:
    should_retry = {k.lower(): v for k, v in (headers or {}).items()}.get("x-should-retry")
    if should_retry in ("true", "false"):
        return should_retry == "true"
    return status_code in _RETRYABLE_STATUSES or status_code >= 500


def status_error(status_code: int, message: str, **kwargs: Any) -> APIStatusError:
    """Build the `APIStatusError` subclass that matches ``status_code``."""
    cls = _STATUS_CLASSES.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    return cls(message, status_code=status_code, **kwargs)
