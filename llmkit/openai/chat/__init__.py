"""The OpenAI Chat Completions API: chunk models, protocol, encoder and options."""

from llmkit.openai.chat.options import ChatOptions
from llmkit.openai.chat.protocol import ChatProtocol

__all__ = ["ChatOptions", "ChatProtocol"]
