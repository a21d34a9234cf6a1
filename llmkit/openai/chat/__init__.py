"""The OpenAI Chat Completions API: chunk models, protocol, encoder and options."""

from llmkit.openai.chat.protocol import ChatProtocol
from llmkit.openai.options import ChatOptions

__all__ = ["ChatOptions", "ChatProtocol"]
