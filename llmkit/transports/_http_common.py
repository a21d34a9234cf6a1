"""Every decision of the HTTP-SSE transports, with no I/O: the sync and async shells share it.

`llmkit.transports.http` and `llmkit.transports.async_http` differ only in how they wait
(``client.send`` or ``await client.send``, ``iter_bytes`` or ``aiter_bytes``, ``sleep``
or ``await sleep``). Everything they decide lives here, so a rule changed once holds for
both: which send failures are retried and after how long and which redirects are followed
(`SendAttempts`, over the pure rules of `llmkit.transports._retry` and
`llmkit.transports._origin`), how an error body becomes a typed and redacted
`APIStatusError` (`status_error_from`), how an httpx failure maps to the llmkit tree
(`SendAttempts`, `read_error`), and how body bytes become event payloads (`SSEDecoder`).

httpx is imported for its types and exception classes only. Functions that need a body
take bytes the shell has already read, and the shell closes responses and sleeps, so
this module can be tested without a socket or a clock.
"""

from __future__ import annotations

import codecs
import enum
import math
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, TypeVar
from urllib.parse import urljoin

import httpx

from llmkit._closing import closed_error
from llmkit._deadline import Deadline
from llmkit._headers import CREDENTIAL_HEADERS, check_headers
from llmkit.exceptions import (
    APIStatusError,
    ConnectError,
    ConnectionClosed,
    LLMKitError,
    ProtocolError,
    Timeout,
    TransportError,
    UsageError,
    redact,
)
from llmkit.transports._error_body import error_from_body
from llmkit.transports._origin import MAX_REDIRECTS, origin, same_origin_redirect
from llmkit.transports._retry import RetryPolicy, should_retry_status
from llmkit.transports._sse import SSEParser
from llmkit.transports.base import TransportRequest, join_url, json_text

__all__ = [
    "DEFAULT_RETRY",
    "ERROR_BODY_LIMIT",
    "READ_ERRORS",
    "SNIPPET_BYTES",
    "Answer",
    "BodyPrefix",
    "HTTPSettings",
    "PreparedRequest",
    "Redirect",
    "ResponseStream",
    "SSEDecoder",
    "SendAttempts",
    "content_type_error_from",
    "is_event_stream",
    "pick_client",
    "read_error",
    "refuse_if_closed",
    "silence",
    "status_error_from",
]

# An error body is read only this far: it is for a message, not for storage, and a
# misbehaving proxy must not make the client buffer megabytes.
ERROR_BODY_LIMIT = 64 * 1024
_SNIPPET_CHARS = 200
# Bytes read for a snippet: enough for _SNIPPET_CHARS characters of up to four bytes each.
SNIPPET_BYTES = _SNIPPET_CHARS * 4

# Failures that prove the request never reached the model, so sending it again is safe.
# RemoteProtocolError here means the server dropped the connection before any status line
# (typically a stale keep-alive connection).
_RETRYABLE_SEND_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)

# What reading a response body can raise; `read_error` maps each to the llmkit tree.
# DecodingError (a bad gzip body) and StreamError (a body read twice) are not
# TransportErrors, so they are named here.
READ_ERRORS = (httpx.TransportError, httpx.DecodingError, httpx.StreamError)

# RetryPolicy is frozen, so every transport can share one default instance.
DEFAULT_RETRY = RetryPolicy()

_ClientT = TypeVar("_ClientT", httpx.Client, httpx.AsyncClient)


def _header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """Collect credential values (`CREDENTIAL_HEADERS`) from ``headers``, with and without
    their auth scheme."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in CREDENTIAL_HEADERS:
            found.append(value)
            found.append(value.partition(" ")[2])  # "Bearer sk-..." -> "sk-..."
    return tuple(found)


class BodyPrefix:
    """The first ``limit`` bytes of a body, collected chunk by chunk.

    Only an error body or a snippet is read this way: for a message, not for storage.
    """

    __slots__ = ("_chunks", "_limit", "_size")

    def __init__(self, limit: int) -> None:
        self._chunks: list[bytes] = []
        self._limit = limit
        self._size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; return whether enough arrived to stop reading."""
        self._chunks.append(chunk)
        self._size += len(chunk)
        return self._size >= self._limit

    def value(self) -> bytes:
        """What arrived, cut at ``limit``."""
        return b"".join(self._chunks)[: self._limit]


def status_error_from(
    response: httpx.Response, raw: bytes, secrets: Sequence[str]
) -> APIStatusError:
    """Turn a non-2xx answer and the first bytes of its body into an `APIStatusError`.

    ``raw`` is what the shell read (at most `ERROR_BODY_LIMIT` bytes, possibly cut short
    by a broken connection: the status is still worth reporting).
    """
    fallback = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    return error_from_body(response.status_code, response.headers, raw, secrets, fallback=fallback)


def content_type_error_from(
    response: httpx.Response, raw_snippet: bytes, secrets: Sequence[str]
) -> ProtocolError:
    """Explain a 2xx answer that is not an event stream (e.g. ``stream`` was dropped).

    ``raw_snippet`` is the start of the body (`SNIPPET_BYTES`), quoted redacted.
    """
    content_type = response.headers.get("content-type", "")
    snippet = redact(raw_snippet.decode("utf-8", "replace"), secrets)[:_SNIPPET_CHARS]
    return ProtocolError(
        f"expected Content-Type text/event-stream, got {content_type!r}: {snippet!r}"
    )


def _send_error(exc: httpx.TransportError, secrets: Sequence[str]) -> TransportError:
    """Map an httpx failure that happened before any answer to the llmkit tree."""
    detail = redact(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"timed out before the server answered: {detail}")
    return ConnectError(f"could not get an answer from the server: {detail}")


def read_error(exc: Exception, deadline: Deadline | None = None) -> LLMKitError:
    """Map a failure while reading an event stream (one of `READ_ERRORS`) to the llmkit tree.

    The messages carry no server text, so nothing needs redacting. Raise the result
    ``from exc`` so the httpx cause stays inspectable. Once ``deadline`` passed, any
    failure is its `Timeout`: a read cut short by the deadline's watchdog fails too.
    """
    if deadline is not None and deadline.expired():
        return deadline.error()
    if isinstance(exc, httpx.TimeoutException):
        return Timeout("timed out waiting for the next event")
    if isinstance(exc, httpx.DecodingError):
        return ProtocolError("could not decode the response body")
    return ConnectionClosed("connection closed before the response finished")


def silence(idle_timeout: float, deadline: Deadline | None) -> Timeout:
    """What a stream raises when a chunk arrives but no event came for too long.

    Liveness is a complete event with data: SSE comments, blank lines and partial lines
    do not end a silence, so a server sending them (or one byte at a time) cannot keep
    a call waiting beyond ``idle_timeout`` (or past ``deadline``, whichever is first).
    """
    if deadline is not None and deadline.expired():
        return deadline.error()
    return Timeout(f"no event for {idle_timeout:g} seconds (comments and blank lines do not count)")


def idle_timeout(timeout: float | httpx.Timeout | None) -> float:
    """The longest silence between two events that ``timeout`` allows (inf: no limit)."""
    read = timeout.read if isinstance(timeout, httpx.Timeout) else timeout
    return math.inf if read is None else read


def capped_timeout(timeout: float | httpx.Timeout | None, deadline: Deadline) -> httpx.Timeout:
    """``timeout`` with every part shortened to what ``deadline`` leaves now.

    Raises:
        Timeout: the deadline passed.
    """
    parts = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
    return httpx.Timeout(
        connect=deadline.cap(parts.connect),
        read=deadline.cap(parts.read),
        write=deadline.cap(parts.write),
        pool=deadline.cap(parts.pool),
    )


def is_event_stream(response: httpx.Response) -> bool:
    """Whether ``response`` says it is ``text/event-stream`` (parameters ignored)."""
    content_type = response.headers.get("content-type", "").partition(";")[0]
    return "text/event-stream" in content_type.lower()


def pick_client(
    client: _ClientT | None,
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None,
    factory: Callable[..., _ClientT],
    *,
    verify: ssl.SSLContext | bool = True,
) -> tuple[_ClientT, bool]:
    """The httpx client a transport uses, and whether it owns (and so closes) it.

    A caller's ``client`` is shared and stays open; without one, ``factory`` makes a
    client over ``transport`` (``httpx.MockTransport`` in tests) that verifies TLS as
    ``verify`` says.

    Raises:
        UsageError: Both ``client`` and ``transport`` were given, or ``client`` is not a
            ``factory`` (an ``httpx.AsyncClient`` for the blocking transport, say: it
            would fail only at the first request, with an unrelated message).
    """
    if client is not None and transport is not None:
        raise UsageError("pass either client or transport, not both")
    if client is not None and isinstance(factory, type) and not isinstance(client, factory):
        kind = type(client)
        raise UsageError(
            f"http_client must be an httpx.{factory.__name__}, not {kind.__module__}."
            f"{kind.__qualname__}: Provider takes an httpx.Client, AsyncProvider an "
            "httpx.AsyncClient"
        )
    if client is None:
        return factory(transport=transport, verify=verify), True
    return client, False


def refuse_if_closed(closed: bool, client: httpx.Client | httpx.AsyncClient) -> None:
    """Refuse a request of a closed transport, or over a caller's client closed since.

    A provider closes its transport but leaves a caller's client open, so the
    transport's own flag, not the client's state, says whether the provider is closed.

    Raises:
        UsageError: the transport (so the provider) is closed, or the client is.
    """
    if closed:
        raise closed_error()
    if client.is_closed:
        raise UsageError("the httpx client given as http_client is closed")


class PreparedRequest(NamedTuple):
    """One request as it goes out, encoded once and resent unchanged by every retry."""

    url: str
    body: bytes
    headers: httpx.Headers
    timeout: float | httpx.Timeout
    secrets: tuple[str, ...]
    deadline: Deadline | None = None

    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """A fresh ``httpx.Request`` for one attempt (building one does no I/O); its
        timeouts never reach past the deadline.

        Raises:
            Timeout: the deadline passed.
        """
        timeout = self.timeout
        if self.deadline is not None:
            timeout = capped_timeout(timeout, self.deadline)
        return client.build_request(
            "POST", self.url, content=self.body, headers=self.headers, timeout=timeout
        )


class HTTPSettings:
    """What a transport adds to every request, fixed when the transport is made."""

    __slots__ = ("base_url", "headers", "idle_timeout", "retry", "secrets", "timeout")

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy,
        secrets: Sequence[str],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = httpx.Headers(
            {"Content-Type": "application/json", "Accept": "text/event-stream"}
        )
        self.headers.update(check_headers(headers or {}))
        self.timeout = timeout
        self.idle_timeout = idle_timeout(timeout)
        self.retry = retry
        self.secrets = (*secrets, *_header_secrets(self.headers))

    def prepare(self, request: TransportRequest) -> PreparedRequest:
        """Encode ``request`` and merge its headers over the transport's (request wins).

        A credential in the request's own headers joins the secrets to redact.
        """
        headers = self.headers
        secrets = self.secrets
        if request.headers:
            headers = headers.copy()
            headers.update(check_headers(request.headers))
            secrets = (*secrets, *_header_secrets(request.headers))
        return PreparedRequest(
            join_url(self.base_url, request.path),
            json_text(request.body).encode(),
            headers,
            self.timeout,
            secrets,
            request.deadline,
        )

    def describe(self, owner: object) -> str:
        """The repr of a transport: its class and base URL, the base URL redacted."""
        return f"{type(owner).__name__}(base_url={redact(self.base_url, self.secrets)!r})"


class Answer(enum.Enum):
    """What `SendAttempts.answered` tells the shell to do with a response; a float instead
    means: close the response, wait that many seconds, send again; a `Redirect`: close
    it and send the same request to the redirect's URL."""

    USE = "use"  # a 2xx answer: hand it on
    FAIL = "fail"  # final: read its body, raise `SendAttempts.failure`


class Redirect(NamedTuple):
    """A redirect to follow: the same POST, body and headers, to ``url`` (same origin)."""

    url: str


# Followed: they keep the method and body. 301, 302 and 303 would turn the POST into a
# GET (browsers and httpx do so), which is never what an API call means.
_KEEPS_METHOD = frozenset({307, 308})


class SendAttempts:
    """The bookkeeping of one request: attempts against a `RetryPolicy`, and redirects.

    Retries happen only here, before a single event was read: once a payload stream has
    yielded, the model has run and a replay would run it again. Connect failures and
    retryable statuses (`should_retry_status`) share one budget of ``max_retries``.

    Redirects are decided here too, whatever client sends (the shell sends with
    ``follow_redirects=False``, so a caller's ``httpx.Client(follow_redirects=True)``
    cannot carry an ``api-key`` header to another host): a 307 or 308 within the
    origin of the request's URL is followed, at most `MAX_REDIRECTS` times; any other
    redirect is a final `APIStatusError` (see `failure`).
    """

    __slots__ = (
        "_attempt",
        "_deadline",
        "_origin_url",
        "_redirects",
        "_refusal",
        "_retry",
        "_secrets",
    )

    def __init__(
        self,
        retry: RetryPolicy,
        secrets: Sequence[str],
        *,
        url: str = "",
        deadline: Deadline | None = None,
    ) -> None:
        self._attempt = 0
        self._retry = retry
        self._secrets = secrets
        self._origin_url = url
        self._redirects = 0
        self._refusal: str | None = None
        self._deadline = deadline

    def send_failed(self, exc: httpx.TransportError) -> float:
        """``client.send`` raised ``exc``: return the seconds to wait before sending again.

        Raises:
            ConnectError, Timeout: ``exc`` mapped (`_send_error`), ``from exc``, when it
                may have reached the model or the retries are spent; the deadline's
                `Timeout` once it passed.
        """
        if self._deadline is not None and self._deadline.expired():
            raise self._deadline.error() from exc
        if not isinstance(exc, _RETRYABLE_SEND_ERRORS) or self._attempt >= self._retry.max_retries:
            raise _send_error(exc, self._secrets) from exc
        delay = self._retry.delay(self._attempt)
        self._attempt += 1
        return delay

    def answered(self, response: httpx.Response) -> Answer | float | Redirect:
        """Judge an answer: `Answer.USE`, `Answer.FAIL`, seconds to wait and retry, or a
        `Redirect` to follow.

        A server-requested wait (``retry-after``) is honoured through `RetryPolicy.delay`.
        """
        if response.is_success:
            return Answer.USE
        if response.is_redirect:  # 301, 302, 303, 307 or 308 with a Location
            return self._redirect(response)
        retry = self._attempt < self._retry.max_retries and should_retry_status(
            response.status_code, response.headers
        )
        if not retry:
            return Answer.FAIL
        delay = self._retry.delay(self._attempt, response.headers)
        self._attempt += 1
        return delay

    def _redirect(self, response: httpx.Response) -> Answer | Redirect:
        status = response.status_code
        current = str(response.request.url)
        target = same_origin_redirect(self._origin_url, current, response.headers["location"])
        if target is None:
            self._refusal = "it leads to another origin, and the request carries credentials"
        elif status not in _KEEPS_METHOD:
            self._refusal = f"a {status} would resend the POST as a GET"
        elif self._redirects >= MAX_REDIRECTS:
            self._refusal = f"more than {MAX_REDIRECTS} redirects"
        else:
            self._redirects += 1
            return Redirect(target)
        return Answer.FAIL

    def failure(self, response: httpx.Response, raw: bytes) -> APIStatusError:
        """The error for an answer judged `Answer.FAIL`, from the first bytes of its body.

        A refused redirect says why and where it led (the origin only: a path or query
        can carry a token), is never retryable, and names no credential. It is an
        `APIStatusError`, not a `ConnectError`: the server did answer, with that status
        (kept on ``status_code`` and ``headers``), and a `TransportError` would say
        "retryable" although sending again meets the same redirect.
        """
        error = status_error_from(response, raw, self._secrets)
        if self._refusal is not None:
            location = urljoin(str(response.request.url), response.headers["location"])
            scheme, host, port = origin(location)
            where = redact(f"{scheme}://{host}:{port}", self._secrets)
            error.message = (
                f"did not follow the {response.status_code} redirect to {where}: {self._refusal}"
            )
            error.args = (error.message,)
            error.retryable = False
        return error

    def pause(self, delay: float) -> float:
        """The back-off before the next attempt: ``delay``, never reaching the deadline.

        Raises:
            Timeout: the deadline would pass during the back-off (the call ends now).
        """
        return delay if self._deadline is None else self._deadline.pause(delay)


class SSEDecoder:
    """Body bytes in, event payloads out: incremental UTF-8 decoding under `SSEParser`.

    SSE is UTF-8 whatever charset the header claims; bad bytes become U+FFFD. This is the
    hot path of every stream, so there is no wrapper to call per chunk: a shell holds the
    two bound methods in locals and runs ``parse(decode(chunk))``, then `end`.
    """

    __slots__ = ("_parser", "_utf8", "decode", "parse")

    def __init__(self) -> None:
        self._parser = SSEParser()
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.parse: Callable[[str], list[str]] = self._parser.feed
        """The payloads of the events completed by the next decoded text."""
        self.decode: Callable[[bytes], str] = self._utf8.decode
        """The text of the next chunk (a character split across chunks waits for its end)."""

    def end(self) -> list[str]:
        """End of the body: the payloads still held. An unterminated event is dropped."""
        return [*self.parse(self._utf8.decode(b"", final=True)), *self._parser.flush()]


class ResponseStream:
    """What the sync and async payload streams share: the response and its facts.

    Subclasses add the iteration and closing, the only parts that wait. Per chunk they
    compare the clock with the end of the allowed silence: ``idle_timeout`` seconds
    after the last event with data, and never later than ``deadline`` (see `silence`).
    """

    __slots__ = ("_bytes_sent", "_deadline", "_idle_timeout", "_response", "_secrets")

    def __init__(
        self,
        response: httpx.Response,
        *,
        bytes_sent: int,
        secrets: Sequence[str] = (),
        idle_timeout: float = math.inf,
        deadline: Deadline | None = None,
    ) -> None:
        self._response = response
        self._bytes_sent = bytes_sent
        self._secrets = tuple(secrets)
        self._idle_timeout = idle_timeout
        self._deadline = deadline

    def limits(self) -> tuple[float, float]:
        """The longest silence and the deadline (``time.monotonic``; inf for none).

        A shell keeps both in locals; per chunk it then does one clock reading and one
        comparison: after an event the silence ends at ``min(now + idle, deadline)``,
        and a chunk without an event after that instant raises `silence`.
        """
        deadline = self._deadline
        return self._idle_timeout, math.inf if deadline is None else deadline.at

    @property
    def bytes_sent(self) -> int:
        """Bytes of request body written to the server (the final attempt's body)."""
        return self._bytes_sent

    @property
    def secrets(self) -> tuple[str, ...]:
        """What to redact from server text that reaches an exception."""
        return self._secrets

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self._response.status_code})"
