"""llmkit: a Python SDK for LLM providers, with a first-class Responses WebSocket mode.

```python
import llmkit

with llmkit.Provider(use_responses_api=True) as provider:
    model = provider.language_model("gpt-5")
    response = model.generate(llmkit.Call("What is 2+2?"))
    print(response.text)
```
"""

from typing import TYPE_CHECKING, Any

from llmkit._deprecated import renamed as _renamed
from llmkit._otel import Telemetry
from llmkit._version import __version__
from llmkit.exceptions import (
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConnectError,
    ConnectionClosed,
    IncompleteStream,
    InternalServerError,
    LLMKitError,
    NotFoundError,
    OutputError,
    OutputValidationError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    RefusalError,
    ResponseFailed,
    SteerError,
    Timeout,
    TransportError,
    UsageError,
    WebSocketNotServed,
)
from llmkit.messages import (
    OLD_NAMES as _OLD_NAMES,
    AssistantMessage,
    Call,
    FilePart,
    FinishReason,
    FunctionTool,
    ImagePart,
    Message,
    ParsedResponse,
    ProviderItemPart,
    ProviderTool,
    ReasoningPart,
    Response,
    ResponseMetadata,
    SourcePart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    ToolResult,
    Usage,
    UserMessage,
    WarmupResult,
)
from llmkit.model import AsyncLanguageModel, LanguageModel
from llmkit.openai.async_provider import AsyncProvider
from llmkit.openai.provider import Provider
from llmkit.stream import (
    AsyncParsedStream,
    AsyncStream,
    CompactionStart,
    Finish,
    ParsedStream,
    ReasoningDelta,
    ReasoningEnd,
    ReasoningStart,
    Steered,
    SteerFailed,
    SteerPending,
    Stream,
    StreamPart,
    TextDelta,
    TextEnd,
    TextStart,
    ToolInputDelta,
    ToolInputEnd,
    ToolInputStart,
    Warnings,
    collect,
)
from llmkit.tool_loop import (
    AsyncToolLoop,
    CallableTool,
    ToolLoop,
    ToolLoopResult,
    ToolLoopStep,
    tool,
)

__all__ = [
    "APIError",
    "APIStatusError",
    "AssistantMessage",
    "AsyncLanguageModel",
    "AsyncParsedStream",
    "AsyncProvider",
    "AsyncStream",
    "AsyncToolLoop",
    "AuthenticationError",
    "BadRequestError",
    "Call",
    "CallableTool",
    "CompactionStart",
    "ConnectError",
    "ConnectionClosed",
    "FilePart",
    "Finish",
    "FinishReason",
    "FunctionTool",
    "ImagePart",
    "IncompleteStream",
    "InternalServerError",
    "LLMKitError",
    "LanguageModel",
    "Message",
    "NotFoundError",
    "OutputError",
    "OutputValidationError",
    "ParsedResponse",
    "ParsedStream",
    "PermissionDeniedError",
    "ProtocolError",
    "Provider",
    "ProviderItemPart",
    "ProviderTool",
    "RateLimitError",
    "ReasoningDelta",
    "ReasoningEnd",
    "ReasoningPart",
    "ReasoningStart",
    "RefusalError",
    "Response",
    "ResponseFailed",
    "ResponseMetadata",
    "SourcePart",
    "SteerError",
    "SteerFailed",
    "SteerPending",
    "Steered",
    "Stream",
    "StreamPart",
    "SystemMessage",
    "Telemetry",
    "TextDelta",
    "TextEnd",
    "TextPart",
    "TextStart",
    "Timeout",
    "ToolCall",
    "ToolInputDelta",
    "ToolInputEnd",
    "ToolInputStart",
    "ToolLoop",
    "ToolLoopResult",
    "ToolLoopStep",
    "ToolMessage",
    "ToolResult",
    "TransportError",
    "Usage",
    "UsageError",
    "UserMessage",
    "WarmupResult",
    "Warnings",
    "WebSocketNotServed",
    "__version__",
    "collect",
    "tool",
]

# Public objects say `llmkit.X` in reprs and docs, wherever they are defined.
for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = "llmkit"
del _name, _obj

if TYPE_CHECKING:
    # Deprecated: `ToolCall` under its old name, with a DeprecationWarning at run time.
    from llmkit.messages import ToolCallPart as ToolCallPart
else:

    def __getattr__(name: str) -> Any:
        return _renamed(__name__, name, _OLD_NAMES)
