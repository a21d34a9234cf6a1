"""Pydantic validation errors as one readable line."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["describe_validation_error"]


def describe_validation_error(exc: ValidationError, root: str = "value") -> str:
    """One ``field: message`` per problem, joined; ``root`` names a top-level problem."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in exc.errors()
    )
