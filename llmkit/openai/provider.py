"""`Provider`: configuration and clients, shared by the models it hands out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Generic, TypedDict, TypeVar

import httpx

from llmkit._closing import Closing, closed_error
from llmkit._deadline import check_durations
from llmkit._headers import (
    CREDENTIAL_HEADERS,
    check_api_key,
    check_headers,
    key_from_environment,
)
from llmkit._logs import protect
from llmkit._otel import Site, Telemetry
from llmkit._version import __version__
from llmkit.exceptions import UsageError, redact
from llmkit.model import AsyncLanguageModel, LanguageModel
from llmkit.openai._recovery import Cooldown
from llmkit.openai._websocket import WebSocketSession
from llmkit.openai.chat.model import ChatModel
from llmkit.openai.model import ResponsesModel
from llmkit.transports._retry import RetryPolicy
from llmkit.transports._tls import Verify, tls_contexts
from llmkit.transports.base import websocket_url
from llmkit.transports.factory import (
    HTTPSettings,
    ProxyTypes,
    Transports,
    WebSocketSettings,
    httpx_proxy,
    proxy_routes,
)

__all__ = ["Provider", "ProviderBase", "SessionSettings", "WebSocketWiring", "Wiring"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)
ModelT = TypeVar("ModelT", LanguageModel, AsyncLanguageModel)


class ProviderBase(Generic[ClientT, ModelT]):
    """An OpenAI-compatible provider: where to connect, how to authenticate, which API.

    Args:
        api_key: Sent as ``Authorization: Bearer``. Default: ``OPENAI_API_KEY``, with
            surrounding whitespace stripped (a shell or ``.env`` artefact); may be None
            for local servers. A key given here is used as it is: surrounding
            whitespace, a control character or a non-ASCII character is a `UsageError`.
        base_url: Default: ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.
        use_responses_api: True for the Responses API, False for Chat Completions.
        websocket: True for Responses WebSocket mode (needs ``use_responses_api=True``).
        headers: Extra headers for every HTTP request and WebSocket handshake. Names
            must be HTTP tokens, values printable ASCII without CR/LF (no header can
            inject another); else a `UsageError` that names the header, not its value.
        timeout: Seconds, or an `httpx.Timeout`. Over a stream the read timeout is the
            longest silence allowed between two events: only an event with data ends a
            silence (SSE comment keep-alives do not), so it must exceed the longest
            gap between events. Every set value must be > 0.
        max_duration: Seconds one whole call may take (connect, pool wait, retries,
            every event, a fallback to HTTP), or None for no limit (the default: long
            reasoning streams keep working). When it runs out the call raises
            `Timeout`, with what arrived on ``partial``. A call's own
            ``max_duration=`` overrides it.
        max_retries: HTTP retries (408/409/429/5xx, connect errors) before any event.
        http_client: An httpx client to use (proxies, TLS settings, a mock transport):
            `httpx.Client` for `Provider`, `httpx.AsyncClient` for `AsyncProvider`.
            The provider leaves it open when it closes. Its TLS settings serve HTTP;
            WebSocket mode takes its SSL context too when it can be found (httpx's own
            transports), otherwise give ``verify``.
        verify: TLS verification, as in httpx: True (httpx's default CA bundle), a CA
            bundle path, an `ssl.SSLContext`, or False (no verification). It applies
            to the httpx client llmkit creates and to WebSocket mode; with
            ``http_client``, to WebSocket mode only (the client keeps its own).
        proxy: An HTTP proxy, as in httpx: a URL (``str`` or `httpx.URL`,
            ``http://`` or ``https://``, optionally ``user:password@``) or an
            `httpx.Proxy`. It serves HTTP and both WebSocket transports (a ``CONNECT``
            tunnel); with ``http_client``, WebSocket mode only (the client keeps its
            own). A SOCKS proxy is a `UsageError`. The credentials are redacted from
            every exception, repr and log line; a proxy's 407 is a `ConnectError` that
            is not retryable.
        trust_env: Without ``proxy``, honour the environment's ``HTTPS_PROXY``,
            ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case) as httpx does,
            for HTTP and WebSocket mode alike (``wss://`` as ``https://``). False: no
            proxy from the environment on any path.
        ws_max_connections: WebSocket connections kept open at most; each carries up to
            16 responses at once on lanes (one conversation's cache per lane), or one at a
            time without lanes, so parallel conversations keep their caches.
        ws_max_age: Seconds after which a connection is replaced before sending (the
            server ends connections at 60 minutes).
        ws_cooldown: Seconds on HTTP after a failed WebSocket connect; doubles with each
            further failure up to ``ws_cooldown_max``, and resets on success.
        ws_keepalive: Seconds an idle WebSocket connection waits before a client ping;
            a connection whose peer shows no sign of life as long after it is closed
            (so a dead peer is found before a turn is sent into it). Server pings are
            answered while a connection sits idle between turns (a slow tool) either
            way, so the connection and its cache survive. None: no client pings.
        ws_lanes: Run several conversations on one connection at once, each on its own
            ``stream_id`` lane with its own cache head, where the server supports it
            (learned per connection from its first answer; a server that refuses or
            ignores lanes gets one response at a time, and no call fails for it).
            False: always one response at a time per connection.
        telemetry: Where the OpenTelemetry spans and metrics of its calls go, and whether
            they record message content (`llmkit.Telemetry`). Default: the globally
            configured providers (with the ``llmkit[otel]`` extra), else nothing is
            recorded.

    Raises:
        UsageError: an invalid combination of settings, or an invalid key or header.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        use_responses_api: bool = False,
        websocket: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_duration: float | None = None,
        max_retries: int = 2,
        http_client: ClientT | None = None,
        verify: Verify | None = None,
        proxy: ProxyTypes | None = None,
        trust_env: bool = True,
        ws_max_connections: int = 4,
        ws_max_age: float = 55 * 60,
        ws_cooldown: float = 30.0,
        ws_cooldown_max: float = 600.0,
        ws_keepalive: float | None = 20.0,
        ws_lanes: bool = True,
        telemetry: Telemetry | None = None,
    ) -> None:
        if websocket and not use_responses_api:
            raise UsageError(
                "websocket=True needs use_responses_api=True: "
                "WebSocket mode is a Responses API feature"
            )
        check_durations(
            timeout=timeout,
            max_duration=max_duration,
            ws_max_age=ws_max_age,
            ws_cooldown=ws_cooldown,
            ws_cooldown_max=ws_cooldown_max,
            ws_keepalive=ws_keepalive,
        )
        if max_retries < 0:
            raise UsageError("max_retries must be >= 0")
        if ws_max_connections < 1:
            raise UsageError("ws_max_connections must be >= 1")
        self._api_key = (
            check_api_key(api_key) if api_key is not None else key_from_environment(os.environ)
        )
        headers = check_headers(headers or {})
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        if not self.base_url.startswith(("http://", "https://")):
            raise UsageError(f"base_url must start with http:// or https://, not {self.base_url!r}")
        self.use_responses_api = use_responses_api
        self.websocket = websocket
        self.timeout = timeout
        self.max_duration = max_duration
        self.max_retries = max_retries
        request_headers = {"User-Agent": f"llmkit/{__version__}", **headers}
        if self._api_key:
            request_headers["Authorization"] = f"Bearer {self._api_key}"
        # Credentials passed as headers (Azure's api-key, a gateway's token) are redacted too.
        secrets = [self._api_key] if self._api_key else []
        secrets += [
            value for name, value in headers.items() if name.lower() in CREDENTIAL_HEADERS and value
        ]
        self._secrets = tuple(secrets)
        http_tls, websocket_tls = tls_contexts(
            verify, http_client, self.base_url, websocket=websocket
        )
        if http_client is not None and not websocket and (proxy is not None or not trust_env):
            raise UsageError(
                "proxy and trust_env apply to the http_client llmkit creates and to "
                "WebSocket mode; with your own http_client set them on it: "
                "httpx.Client(proxy=..., trust_env=...)"
            )
        # One decision for every transport (the libraries would each read the
        # environment their own way); only the transports llmkit drives are looked up.
        http_proxy, websocket_proxy = proxy_routes(
            proxy,
            trust_env=trust_env,
            urls=(
                None if http_client is not None else self.base_url,
                websocket_url(self.base_url) if websocket else None,
            ),
        )
        for route in (http_proxy, websocket_proxy):
            secrets += route.secrets if route is not None else ()
        protect(self, secrets)  # from httpcore's and websocket-client's debug logs too
        self._site = Site(self.base_url, telemetry)  # the host and port only, for traces
        connect_timeout, read_timeout, pool_timeout = _timeouts(timeout)
        self._open(
            Wiring(
                http=HTTPSettings(
                    base_url=self.base_url,
                    headers=request_headers,
                    timeout=timeout,
                    retry=RetryPolicy(max_retries=max_retries),
                    secrets=secrets,
                    verify=True if http_tls is None else http_tls,
                    proxy=httpx_proxy(http_proxy),
                    trust_env=False,  # the proxy is decided above, for every transport
                ),
                http_client=http_client,
                websocket=WebSocketWiring(
                    endpoint=WebSocketSettings(
                        url=websocket_url(self.base_url),
                        headers=request_headers,
                        connect_timeout=connect_timeout,
                        read_timeout=read_timeout,
                        secrets=secrets,
                        ssl_context=websocket_tls,
                        keepalive=ws_keepalive,
                        proxy=websocket_proxy,
                    ),
                    session=SessionSettings(
                        max_connections=ws_max_connections,
                        max_age=ws_max_age,
                        wait_timeout=pool_timeout,
                        cooldown=Cooldown(initial=ws_cooldown, maximum=ws_cooldown_max),
                        lanes=ws_lanes,
                    ),
                )
                if websocket
                else None,
            )
        )

    _closed = False
    """Set by ``close``/``aclose``: the provider and its models refuse every call."""

    transports: ClassVar[Transports] = Transports()
    """Builds every transport of the provider; replace it (in a subclass) to test a
    provider over other transports."""

    def _open(self, wiring: Wiring[ClientT]) -> None:
        raise NotImplementedError  # pragma: no cover - each provider builds its transports

    def language_model(self, model_id: str) -> ModelT:
        """A model of this provider.

        Raises:
            UsageError: ``model_id`` is empty, or the provider is closed.
        """
        if self._closed:
            raise closed_error()
        if not model_id:
            raise UsageError("model_id must be a non-empty string")
        model = self._model(model_id)
        model._site = self._site
        return model

    def _model(self, model_id: str) -> ModelT:
        raise NotImplementedError  # pragma: no cover - each provider makes its models

    def __repr__(self) -> str:
        api = "responses" if self.use_responses_api else "chat"
        base_url = redact(self.base_url, self._secrets)
        return (
            f"{type(self).__name__}(base_url={base_url!r}, api={api!r}, websocket={self.websocket})"
        )


class SessionSettings(TypedDict):
    """The arguments of a WebSocket session, sync or async, besides its transport."""

    max_connections: int
    max_age: float
    wait_timeout: float | None
    cooldown: Cooldown
    lanes: bool


@dataclass(frozen=True, slots=True)
class WebSocketWiring:
    """What WebSocket mode is built from: the transport's endpoint and the session's rules."""

    endpoint: WebSocketSettings
    session: SessionSettings


@dataclass(frozen=True, slots=True)
class Wiring(Generic[ClientT]):
    """The transports' settings, derived once from a provider's arguments."""

    http: HTTPSettings
    http_client: ClientT | None
    websocket: WebSocketWiring | None


def _timeouts(timeout: float | httpx.Timeout) -> tuple[float | None, float | None, float | None]:
    """Connect, read (between two events) and pool (waiting for a connection)."""
    if isinstance(timeout, httpx.Timeout):
        return timeout.connect, timeout.read, timeout.pool
    return timeout, timeout, timeout


class Provider(ProviderBase[httpx.Client, LanguageModel], Closing):
    __doc__ = ProviderBase.__doc__

    def _open(self, wiring: Wiring[httpx.Client]) -> None:
        self._http = self.transports.http(wiring.http, wiring.http_client)
        self._websocket: WebSocketSession | None = None
        if wiring.websocket is not None:
            transport = self.transports.websocket(wiring.websocket.endpoint)
            self._websocket = WebSocketSession(transport=transport, **wiring.websocket.session)

    def _model(self, model_id: str) -> LanguageModel:
        if not self.use_responses_api:
            return ChatModel(model_id, http=self._http, max_duration=self.max_duration)
        return ResponsesModel(
            model_id, http=self._http, websocket=self._websocket, max_duration=self.max_duration
        )

    def close(self) -> None:
        """Close the HTTP client and every WebSocket connection. Safe to call twice.

        Every later call, of models obtained before too, raises a `UsageError`; a
        stream still open ends with an `LLMKitError` and reconnects nothing.
        """
        self._closed = True
        self._http.close()
        if self._websocket is not None:
            self._websocket.close()
