"""`LanguageModel`: the provider-neutral model interface.

A model has one real method, `stream`. `generate` is the fold of `stream` (the same
parts, collected), so streaming and non-streaming answers never disagree, and
`warmup` prepares a connection for a conversation where the transport can. Each takes
a `Call`, or a plain string as shorthand for ``Call(string)`` (one user message).

They also take ``max_duration=``: seconds the whole call may take (connect, retries, every
event), overriding the provider's; None keeps the provider's setting. When it runs
out the call raises `Timeout`, with what arrived on ``partial``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from llmkit.messages import Call, Response, WarmupResult
from llmkit.stream import AsyncStream, Stream

__all__ = ["AsyncLanguageModel", "LanguageModel"]


class _Named:
    provider: str
    """The provider's name, e.g. ``"openai"``."""
    model_id: str
    """The model id sent to the provider."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.provider!r} model={self.model_id!r}>"


class LanguageModel(_Named, ABC):
    """A model of one provider, bound to a model id (``provider.language_model("gpt-5")``)."""

    @abstractmethod
    def stream(self, call: Call | str, *, max_duration: float | None = None) -> Stream:
        """Start a streamed answer to ``call``.

        Nothing is sent until the stream is iterated. Leaving early is safe.
        ``max_duration`` (seconds, None for the provider's setting) bounds the whole
        call from the start of the iteration: `Timeout` when it runs out.

        Raises:
            UsageError: ``call`` cannot be encoded for this provider, or the provider is
                closed (raised here, at once).
        """

    def generate(self, call: Call | str, *, max_duration: float | None = None) -> Response:
        """Answer ``call``: the parts of `stream`, folded into a `Response`.

        Raises:
            Timeout: a wait, or ``max_duration`` (the provider's when None), ran out.
            LLMKitError: any failure, with ``partial`` holding what arrived before it.
        """
        with self.stream(call, max_duration=max_duration) as stream:
            return stream.until_done()

    @abstractmethod
    def warmup(self, call: Call | str, *, max_duration: float | None = None) -> WarmupResult:
        """Prepare the server for ``call`` without generating output, where supported.

        ``max_duration`` bounds it as it bounds `generate`.
        """


class AsyncLanguageModel(_Named, ABC):
    """`LanguageModel` for asyncio (``AsyncProvider.language_model``): the same calls,
    responses, parts and exceptions, awaited."""

    @abstractmethod
    def stream(self, call: Call | str, *, max_duration: float | None = None) -> AsyncStream:
        """Start a streamed answer to ``call``: ``async with model.stream(call) as s``.

        Nothing is sent until the stream is iterated. Leaving early is safe.
        ``max_duration`` as for `LanguageModel.stream`.

        Raises:
            UsageError: ``call`` cannot be encoded for this provider, or the provider is
                closed (raised here, at once).
        """

    async def generate(self, call: Call | str, *, max_duration: float | None = None) -> Response:
        """Answer ``call``: the parts of `stream`, folded into a `Response`.

        Raises:
            Timeout: a wait, or ``max_duration`` (the provider's when None), ran out.
            LLMKitError: any failure, with ``partial`` holding what arrived before it.
        """
        async with self.stream(call, max_duration=max_duration) as stream:
            return await stream.until_done()

    @abstractmethod
    async def warmup(self, call: Call | str, *, max_duration: float | None = None) -> WarmupResult:
        """Prepare the server for ``call`` without generating output, where supported.

        ``max_duration`` bounds it as it bounds `generate`.
        """
