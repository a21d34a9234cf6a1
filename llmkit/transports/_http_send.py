"""The retrying send of the HTTP-SSE transports, with no I/O: shared by the sync and async shells.

`SendAttempts` keeps the bookkeeping of one request: which send failures are retried and
after how long, and which redirects are followed (over the pure rules of
`llmkit.transports._retry` and `llmkit.transports._origin`); `status_error_from` turns an
error answer into a typed and redacted `APIStatusError`. The shells send, read the
first bytes of an error body (`BodyPrefix`, `ERROR_BODY_LIMIT`), close responses and
sleep, so this module can be tested without a socket or a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import urljoin

import httpx

from llmkit._deadline import Deadline
from llmkit.exceptions import APIStatusError, ConnectError, Timeout, TransportError, redact
from llmkit.transports._error_body import error_from_body
from llmkit.transports._origin import MAX_REDIRECTS, origin, same_origin_redirect
from llmkit.transports._proxy import refused
from llmkit.transports._retry import RetryPolicy, should_retry_status

__all__ = [
    "DEFAULT_RETRY",
    "ERROR_BODY_LIMIT",
    "Answer",
    "BodyPrefix",
    "Redirect",
    "SendAttempts",
    "status_error_from",
]

# An error body is read only this far: it is for a message, not for storage, and a
# misbehaving proxy must not make the client buffer megabytes.
ERROR_BODY_LIMIT = 64 * 1024
# Failures that prove the request never reached the model, so sending it again is safe.
# RemoteProtocolError here means the server dropped the connection before any status line
# (typically a stale keep-alive connection).
_RETRYABLE_SEND_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)

# RetryPolicy is frozen, so every transport can share one default instance.
DEFAULT_RETRY = RetryPolicy()


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


def _send_error(exc: httpx.TransportError, secrets: Sequence[str]) -> TransportError:
    """Map an httpx failure that happened before any answer to the llmkit tree."""
    detail = redact(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"timed out before the server answered: {detail}")
    if isinstance(exc, httpx.ProxyError):  # httpcore: "407 Proxy Authentication Required"
        status = detail[:3]
        return refused(int(status) if status.isdigit() else None, detail)
    return ConnectError(f"could not get an answer from the server: {detail}")


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

    def failure(self, response: httpx.Response, raw: bytes) -> APIStatusError | ConnectError:
        """The error for an answer judged `Answer.FAIL`, from the first bytes of its body.

        A 407 comes from a proxy that forwards ``http://`` requests: it is the same
        `ConnectError` (not retryable) as a proxy's refusal of a tunnel, since the
        request never reached the server.

        A refused redirect says why and where it led (the origin only: a path or query
        can carry a token), is never retryable, and names no credential. It is an
        `APIStatusError`, not a `ConnectError`: the server did answer, with that status
        (kept on ``status_code`` and ``headers``), and a `TransportError` would say
        "retryable" although sending again meets the same redirect.
        """
        if response.status_code == 407:
            return refused(407, "HTTP 407 Proxy Authentication Required")
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
