"""Names kept for one more release after a rename: the new object, with a warning.

A module keeps a mapping of its old names and a module ``__getattr__`` that calls
`renamed`; the old names are in no ``__all__``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["renamed"]


def renamed(module: str, name: str, old_names: Mapping[str, Any]) -> Any:
    """What ``name``, an old name in ``module``, stands for now, with a `DeprecationWarning`
    pointing at the caller of the module ``__getattr__``.

    Raises:
        AttributeError: ``name`` is not an old name either.
    """
    target = old_names.get(name)
    if target is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(
        f"{name} is deprecated and will be removed in the next release; "
        f"use {target.__name__}, the same {type(target).__name__}",
        DeprecationWarning,
        stacklevel=3,
    )
    return target
