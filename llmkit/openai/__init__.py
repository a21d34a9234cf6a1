"""The OpenAI provider: Responses API wire models, protocol, encoder and options."""

from llmkit.openai.options import ResponsesOptions
from llmkit.openai.protocol import ResponsesProtocol

__all__ = ["ResponsesOptions", "ResponsesProtocol"]
