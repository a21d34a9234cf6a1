"""What the HTTP-SSE payload streams decide, with no I/O: shared by the sync and async shells.

A 2xx answer must be an event stream (`is_event_stream`, else `content_type_error_from`
quotes the start of its body); body bytes become event payloads (`SSEDecoder`); a
silence too long, or a failed read, becomes an error of the llmkit tree (`silence`,
`read_error`). `ResponseStream` holds the facts both payload streams share; the shells
add only the iteration and closing, the parts that wait.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Callable, Sequence

import httpx

from llmkit._deadline import Deadline
from llmkit.exceptions import ConnectionClosed, LLMKitError, ProtocolError, Timeout, redact
from llmkit.transports._sse import SSEParser

__all__ = [
    "READ_ERRORS",
    "SNIPPET_BYTES",
    "ResponseStream",
    "SSEDecoder",
    "content_type_error_from",
    "is_event_stream",
    "read_error",
    "silence",
]

_SNIPPET_CHARS = 200
# Bytes read for a snippet: enough for _SNIPPET_CHARS characters of up to four bytes each.
SNIPPET_BYTES = _SNIPPET_CHARS * 4

# What reading a response body can raise; `read_error` maps each to the llmkit tree.
# DecodingError (a bad gzip body) and StreamError (a body read twice) are not
# TransportErrors, so they are named here.
READ_ERRORS = (httpx.TransportError, httpx.DecodingError, httpx.StreamError)


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


def is_event_stream(response: httpx.Response) -> bool:
    """Whether ``response`` says it is ``text/event-stream`` (parameters ignored)."""
    content_type = response.headers.get("content-type", "").partition(";")[0]
    return "text/event-stream" in content_type.lower()


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
