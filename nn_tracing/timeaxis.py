"""The time axis of a trace: epochs or steps, and every label that names a point on it.

A trace records either at epochs (``meta["axis"] = "epoch"``, or no ``axis`` at all: every
trace written before steps existed) or at optimizer steps (``meta["axis"] = "step"``, see
:mod:`nn_tracing.step_schedule`). Internally a recorded point is one integer either way: the
``epoch`` column of ``trace.frame`` and ``trace.history``, ``trace.epochs``, the run
directory's ``epoch=<n>`` partitions and its ``epochs`` list hold the **step number** in a step
trace. What people read comes from this module: ``E_30`` or ``S_1200`` in signatures and
keys, "epoch" or "step" in axis titles, sliders and captions.

The formatting functions take ``axis=`` explicitly; without it they use the axis of the trace
being shown, set once per page run by the app (:func:`use_axis`) and carried into the analysis
worker's threads (:mod:`nn_tracing.work`). A library user who formats by hand passes ``axis``
or calls ``trace.time_key(n)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

__all__ = [
    "AXES",
    "PREFIXES",
    "axis_of",
    "current_axis",
    "time_key",
    "time_prefix",
    "time_range",
    "time_title",
    "time_word",
    "use_axis",
    "using_axis",
]

#: The axes a trace may count time in.
AXES: tuple[str, ...] = ("epoch", "step")
#: The letter that starts a key or signature on each axis: ``E_30``, ``S_1200``.
PREFIXES: dict[str, str] = {"epoch": "E", "step": "S"}

_CURRENT: ContextVar[str] = ContextVar("nn_tracing_time_axis", default="epoch")


def _checked(axis: str) -> str:
    if axis not in AXES:
        raise ValueError(f"axis={axis!r}: a trace counts time in one of {', '.join(AXES)}")
    return axis


def axis_of(source: Any) -> str:
    """The axis of a trace, or of a trace's ``meta`` dict (``"epoch"`` when it names none).

    Raises :class:`ValueError` for an ``axis`` that is neither ``"epoch"`` nor ``"step"``.
    """
    meta = source if isinstance(source, Mapping) else getattr(source, "meta", None)
    axis = meta.get("axis", "epoch") if isinstance(meta, Mapping) else "epoch"
    if axis is None:
        return "epoch"
    if not isinstance(axis, str):
        raise ValueError(f"axis={axis!r}: a trace counts time in one of {', '.join(AXES)}")
    return _checked(axis)


def current_axis() -> str:
    """The axis labels use when none is given (the shown trace's; ``"epoch"`` by default)."""
    return _CURRENT.get()


def use_axis(source: Any) -> str:
    """Make ``source``'s axis (a trace, a meta dict, or ``"epoch"``/``"step"``; ``None``:
    ``"epoch"``) the current one for the rest of this thread's context; returns it."""
    axis = "epoch" if source is None else source if isinstance(source, str) else axis_of(source)
    _CURRENT.set(_checked(axis))
    return axis


@contextlib.contextmanager
def using_axis(source: Any) -> Iterator[str]:
    """:func:`use_axis` for a ``with`` block, restored after it."""
    token = _CURRENT.set(_CURRENT.get())
    try:
        yield use_axis(source)
    finally:
        _CURRENT.reset(token)


def _resolve(axis: str | None) -> str:
    return _checked(axis) if axis is not None else _CURRENT.get()


def time_key(point: int, axis: str | None = None) -> str:
    """``E_<n>`` or ``S_<n>``: the key of one recorded point.

    >>> time_key(30), time_key(1200, "step")
    ('E_30', 'S_1200')
    """
    return f"{PREFIXES[_resolve(axis)]}_{int(point)}"


def time_prefix(axis: str | None = None) -> str:
    """``"E_"`` or ``"S_"``: what starts a key, for vectorised labels
    (``time_prefix() + frame["epoch"].astype(str)``)."""
    return PREFIXES[_resolve(axis)] + "_"


def time_word(axis: str | None = None, *, plural: bool = False) -> str:
    """``"epoch"`` / ``"step"`` (``"epochs"`` / ``"steps"`` with ``plural``)."""
    word = _resolve(axis)
    return word + "s" if plural else word


def time_title(axis: str | None = None, *, plural: bool = False) -> str:
    """``"Epoch"`` / ``"Step"``: :func:`time_word` capitalised, for labels and titles."""
    return time_word(axis, plural=plural).capitalize()


def time_range(points: list[int] | tuple[int, ...], axis: str | None = None) -> str:
    """``E_0…E_30`` (or one key when there is one point; ``""`` for none)."""
    if not points:
        return ""
    first, last = time_key(points[0], axis), time_key(points[-1], axis)
    return first if first == last else f"{first}…{last}"
