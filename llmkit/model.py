"""`LanguageModel`: the provider-neutral model interface.

A model has one real method, `_stream`, which each provider implements. `stream` starts
it, `generate` is the fold of `stream` (the same parts, collected), so streaming and
non-streaming answers never disagree, and `warmup` prepares a connection for a
conversation where the transport can. Each takes a `Call`, or a plain string as
shorthand for ``Call(string)`` (one user message).

They also take ``max_duration=``: seconds the whole call may take (connect, retries, every
event), overriding the provider's; None keeps the provider's setting. When it runs
out the call raises `Timeout`, with what arrived on ``partial``.

And ``output_type=``: a structured call (a pydantic model class, any type pydantic's
`TypeAdapter` accepts, or a JSON schema dict). The schema goes out with the request
(``llmkit._schema``: strict where OpenAI allows it, else a warning); `stream` gives a
`ParsedStream`, `generate` a `ParsedResponse` whose ``output`` is the answer as that
type. The overloads below give ``T`` back to type checkers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, TypeVar, overload

from llmkit._otel import Site
from llmkit._schema import OutputSchema, output_schema
from llmkit.messages import Call, ParsedResponse, Response, WarmupResult
from llmkit.stream import AsyncParsedStream, AsyncStream, ParsedStream, Stream, aparsed, parsed

__all__ = ["AsyncLanguageModel", "LanguageModel"]

T = TypeVar("T")


def schema_of(output_type: Any) -> OutputSchema[Any] | None:
    """The `OutputSchema` of an ``output_type`` argument (None: a plain call).

    Raises:
        UsageError: the type has no JSON schema, or the dict is not JSON.
    """
    return None if output_type is None else output_schema(output_type)


class _Named:
    provider: str
    """The provider's name, e.g. ``"openai"``."""
    model_id: str
    """The model id sent to the provider."""
    _site: Site | None = None
    """Where the provider's calls go, for their traces (set by the provider)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.provider!r} model={self.model_id!r}>"


class LanguageModel(_Named, ABC):
    """A model of one provider, bound to a model id (``provider.language_model("gpt-5")``)."""

    @abstractmethod
    def _stream(
        self, call: Call | str, max_duration: float | None, output: OutputSchema[Any] | None
    ) -> Stream:
        """Start a streamed answer to ``call``, with ``output``'s schema in the request
        when given (its warnings in the stream's first part). What a provider implements;
        `stream` makes the result a `ParsedStream` for a structured call.

        Raises:
            UsageError: ``call`` cannot be encoded for this provider, or the provider is
                closed.
        """

    @overload
    def stream(
        self, call: Call | str, *, output_type: None = None, max_duration: float | None = None
    ) -> Stream: ...
    @overload
    def stream(
        self, call: Call | str, *, output_type: type[T], max_duration: float | None = None
    ) -> ParsedStream[T]: ...
    @overload
    def stream(
        self, call: Call | str, *, output_type: Any, max_duration: float | None = None
    ) -> ParsedStream[Any]: ...
    def stream(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> Stream:
        """Start a streamed answer to ``call``.

        Nothing is sent until the stream is iterated. Leaving early is safe.
        ``max_duration`` (seconds, None for the provider's setting) bounds the whole
        call from the start of the iteration: `Timeout` when it runs out. With
        ``output_type``: a `ParsedStream` (``partial_output`` while it runs,
        ``response.output`` at the end).

        Raises:
            UsageError: ``call`` cannot be encoded for this provider, ``output_type`` has
                no JSON schema, or the provider is closed (raised here, at once).
        """
        output = schema_of(output_type)
        stream = self._stream(call, max_duration, output)
        return stream if output is None else parsed(stream, output)

    @overload
    def generate(
        self, call: Call | str, *, output_type: None = None, max_duration: float | None = None
    ) -> Response: ...
    @overload
    def generate(
        self, call: Call | str, *, output_type: type[T], max_duration: float | None = None
    ) -> ParsedResponse[T]: ...
    @overload
    def generate(
        self, call: Call | str, *, output_type: Any, max_duration: float | None = None
    ) -> ParsedResponse[Any]: ...
    def generate(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> Response:
        """Answer ``call``: the parts of `stream`, folded into a `Response` (a
        `ParsedResponse` with ``output_type``).

        Raises:
            Timeout: a wait, or ``max_duration`` (the provider's when None), ran out.
            RefusalError: with ``output_type``: the model refused.
            OutputValidationError: with ``output_type``: the answer is not JSON, does not
                validate, or the model called tools instead of answering.
            LLMKitError: any failure, with ``partial`` holding what arrived before it.
        """
        stream: Stream = self.stream(call, output_type=output_type, max_duration=max_duration)
        with stream:
            return stream.until_done()

    @abstractmethod
    def warmup(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> WarmupResult:
        """Prepare the server for ``call`` without generating output, where supported.

        ``max_duration`` bounds it as it bounds `generate`; give the ``output_type`` of
        the calls that follow, so that their requests extend the warm-up's.
        """


class AsyncLanguageModel(_Named, ABC):
    """`LanguageModel` for asyncio (``AsyncProvider.language_model``): the same calls,
    responses, parts and exceptions, awaited."""

    @abstractmethod
    def _stream(
        self, call: Call | str, max_duration: float | None, output: OutputSchema[Any] | None
    ) -> AsyncStream:
        """As `LanguageModel._stream`."""

    @overload
    def stream(
        self, call: Call | str, *, output_type: None = None, max_duration: float | None = None
    ) -> AsyncStream: ...
    @overload
    def stream(
        self, call: Call | str, *, output_type: type[T], max_duration: float | None = None
    ) -> AsyncParsedStream[T]: ...
    @overload
    def stream(
        self, call: Call | str, *, output_type: Any, max_duration: float | None = None
    ) -> AsyncParsedStream[Any]: ...
    def stream(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> AsyncStream:
        """Start a streamed answer to ``call``: ``async with model.stream(call) as s``.

        Nothing is sent until the stream is iterated. Leaving early is safe.
        ``max_duration`` and ``output_type`` as for `LanguageModel.stream`.

        Raises:
            UsageError: ``call`` cannot be encoded for this provider, ``output_type`` has
                no JSON schema, or the provider is closed (raised here, at once).
        """
        output = schema_of(output_type)
        stream = self._stream(call, max_duration, output)
        return stream if output is None else aparsed(stream, output)

    @overload
    async def generate(
        self, call: Call | str, *, output_type: None = None, max_duration: float | None = None
    ) -> Response: ...
    @overload
    async def generate(
        self, call: Call | str, *, output_type: type[T], max_duration: float | None = None
    ) -> ParsedResponse[T]: ...
    @overload
    async def generate(
        self, call: Call | str, *, output_type: Any, max_duration: float | None = None
    ) -> ParsedResponse[Any]: ...
    async def generate(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> Response:
        """Answer ``call``: as `LanguageModel.generate`, awaited."""
        stream: AsyncStream = self.stream(call, output_type=output_type, max_duration=max_duration)
        async with stream:
            return await stream.until_done()

    @abstractmethod
    async def warmup(
        self, call: Call | str, *, output_type: Any = None, max_duration: float | None = None
    ) -> WarmupResult:
        """Prepare the server for ``call`` without generating output, where supported.

        ``max_duration`` and ``output_type`` as for `LanguageModel.warmup`.
        """
