"""The OpenAI provider: Responses and Chat Completions wire models, protocols, options."""

from llmkit.openai.chat.protocol import ChatProtocol
from llmkit.openai.options import ChatOptions, ContextManagement, ResponsesOptions
from llmkit.openai.protocol import ResponsesProtocol

__all__ = [
    "ChatOptions",
    "ChatProtocol",
    "ContextManagement",
    "ResponsesOptions",
    "ResponsesProtocol",
]
