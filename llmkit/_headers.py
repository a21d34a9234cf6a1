"""The rules for an API key and header names and values, checked once at construction.

A value that breaks them would fail late and badly: httpx refuses it while sending, with
an error that quotes the whole value (the key, in a traceback); websocket-client sends it
as it is, so a newline ends the header and whatever follows becomes a header of its own
(injection). So every name and value is checked before a transport exists, and a
problem is a `UsageError` that says which argument or header is wrong and how, never
what the value is.

Pure functions, no I/O: the sync and async providers and the HTTP transport share them,
and `CREDENTIAL_HEADERS`, the one list of headers whose values are redacted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from llmkit.exceptions import UsageError

__all__ = [
    "API_KEY_ENV",
    "CREDENTIAL_HEADERS",
    "check_api_key",
    "check_headers",
    "key_from_environment",
]

API_KEY_ENV = "OPENAI_API_KEY"

CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "openai-api-key"}
)
"""Header names (lower case) whose values are credentials: the provider and the HTTP
transports redact them from anything shown (Azure's ``api-key``, a gateway's token)."""

# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Printable ASCII and the space: no control character (C0, DEL) and nothing beyond ASCII,
# which HTTP/1.1 would send as raw bytes the server decodes its own way.
_PRINTABLE = re.compile(r"[ -~]*")


def _problem(value: str) -> str | None:
    """What is wrong with ``value`` as a header value, or None. Never quotes it."""
    if _PRINTABLE.fullmatch(value):
        if value != value.strip(" "):
            return "has surrounding spaces"
        return None
    if value.endswith(("\n", "\r")):
        return "contains a control character (a trailing newline?)"
    if any(char < " " or char == "\x7f" for char in value):
        return "contains a control character"
    return "contains a character outside printable ASCII"


def check_api_key(api_key: str, *, source: str = "api_key") -> str:
    """Return ``api_key`` if it can be sent as ``Authorization: Bearer <key>``.

    An explicit key is not stripped: whitespace around it is a mistake of the code that
    loaded it, and sending a different key than the one given would hide that mistake.

    Raises:
        UsageError: not a string, or a control character, a non-ASCII character or
            surrounding whitespace in it. The message names ``source``, not the key.
    """
    if not isinstance(api_key, str):
        raise UsageError(f"{source} must be a string, not {type(api_key).__name__}")
    problem = _problem(api_key)  # other whitespace than spaces is a control character
    if problem is not None:
        raise UsageError(f"{source} {problem}; check how the key is loaded")
    return api_key


def key_from_environment(environ: Mapping[str, str]) -> str | None:
    """The key in ``OPENAI_API_KEY``, surrounding whitespace stripped; None when unset or blank.

    Stripping is safe here: a trailing newline or space comes from a shell ``export``,
    ``$(cat key.txt)`` or a ``.env`` file, never from the key, whose characters are
    printable and contain no whitespace.

    Raises:
        UsageError: a control or non-ASCII character inside the key.
    """
    value = environ.get(API_KEY_ENV, "").strip()
    return check_api_key(value, source=API_KEY_ENV) if value else None


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return ``headers`` as a dict once every name and value is valid.

    Names are RFC 9110 tokens; values are printable ASCII without surrounding spaces.
    CR and LF are refused in both, so no header can smuggle in another one.

    Raises:
        UsageError: the first bad header, named by its (valid) name or its position;
            the value is never quoted.
    """
    checked: dict[str, str] = {}
    for position, (name, value) in enumerate(headers.items()):
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise UsageError(
                f"header #{position + 1}: its name must be an HTTP token "
                "(letters, digits and !#$%&'*+-.^_`|~; no spaces or control characters)"
            )
        if not isinstance(value, str):
            raise UsageError(f"header {name!r}: its value must be a string")
        problem = _problem(value)
        if problem is not None:
            raise UsageError(f"header {name!r}: its value {problem}")
        checked[name] = value
    return checked
