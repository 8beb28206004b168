"""Renamed keywords: the old name keeps working for a while, with a ``DeprecationWarning``.

One word per idea across the library (``n_permutations``, never also ``n_shuffles``): when a
public keyword is renamed, the function takes the old one through ``**old`` and
:func:`renamed_keyword` maps it to the new.
"""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

__all__ = ["renamed_keyword"]

T = TypeVar("T")


def renamed_keyword(old_kwargs: dict[str, Any], old: str, new: str, value: T, where: str) -> T:
    """The value of keyword ``new``: ``value``, or ``old_kwargs[old]`` when the caller used the
    old name (with a :class:`DeprecationWarning`).

    Any other key of ``old_kwargs`` raises :class:`TypeError`, as Python does for an unknown
    keyword of ``where`` (the callable's name).
    """
    unknown = [key for key in old_kwargs if key != old]
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    if old not in old_kwargs:
        return value
    warnings.warn(f"{where}({old}=...) is deprecated: use {new}=", DeprecationWarning, stacklevel=3)
    return old_kwargs[old]  # type: ignore[no-any-return]
