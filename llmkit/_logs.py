"""Credentials redacted from the debug logs of the libraries llmkit sends through.

At DEBUG, httpcore logs each response's headers (a server may echo the key in one),
httpx logs each URL (a gateway may take the key in its path), and websocket-client's
``enableTrace`` logs the whole handshake, ``Authorization`` included. Those records are
not llmkit's to build, so a `logging.Filter` is put on the loggers that emit them: it
rewrites a record's message with the secrets of every live provider redacted, before
any handler (the root logger's included) sees it.

The filter costs nothing while those loggers are off: logging checks the level before
it makes a record. Providers are held weakly, so the set of secrets is only the live
providers' and does not grow with every provider ever made.

What it cannot reach is listed in the README (section "Logging").
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence

from llmkit.exceptions import redact

__all__ = ["THIRD_PARTY_LOGGERS", "SecretFilter", "protect"]

THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "hpack",
    "hpack.hpack",
    "hpack.table",
    "websocket",
    "websockets.client",
)
"""Every logger of those libraries that may show a header or a URL. A filter on a logger
sees only the records made on that very logger, not its children's, so each is named."""


class _Registry:
    """The secrets of the live providers, each held by a weak reference to its owner.

    Dead entries are dropped whenever the registry is touched; no weakref callback is
    used, so a collection in any thread never mutates it mid-iteration.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[weakref.ref[object], tuple[str, ...]]] = []

    def add(self, owner: object, secrets: Sequence[str]) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e[0]() is not None]
            self._entries.append((weakref.ref(owner), tuple(secrets)))

    def secrets(self) -> list[str]:
        with self._lock:
            self._entries = [e for e in self._entries if e[0]() is not None]
            entries = self._entries
        return [secret for _, secrets in entries for secret in secrets]


_REGISTRY = _Registry()


class SecretFilter(logging.Filter):
    """Redact the live providers' secrets from a record's message; never drop a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _REGISTRY.secrets()
        if secrets:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: logging reports it, not us
                return True
            shown = redact(message, secrets)
            if shown != message:
                record.msg, record.args = shown, None
        return True


_FILTER = SecretFilter()
_installed = False
_install_lock = threading.Lock()


def protect(owner: object, secrets: Sequence[str]) -> None:
    """Redact ``secrets`` from the third-party loggers while ``owner`` lives.

    The filter is installed on `THIRD_PARTY_LOGGERS` the first time a secret is given.
    """
    secrets = [s for s in secrets if s]
    if not secrets:
        return
    _REGISTRY.add(owner, secrets)
    global _installed
    with _install_lock:
        if not _installed:
            for name in THIRD_PARTY_LOGGERS:
                logging.getLogger(name).addFilter(_FILTER)
            _installed = True
