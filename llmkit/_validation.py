"""Pydantic validation errors as one readable line that quotes no input value."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["describe_validation_error"]


def describe_validation_error(exc: ValidationError, root: str = "value") -> str:
    """One ``field: message`` per problem, joined; ``root`` names a top-level problem.

    Built from ``loc`` and ``msg`` only: ``str(exc)`` quotes each input value (cut at
    a width), and a value from a server can hold a credential. Raise the result
    ``from None`` for the same reason: the chained `ValidationError` would quote it.
    """
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in exc.errors()
    )
