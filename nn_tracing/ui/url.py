"""Every page's settings in the address bar, declared once as a frozen dataclass.

A page declares its settings as a frozen dataclass whose fields are made with :func:`param`
(the short query-parameter name, the widget's session-state key, and what a valid value is),
and binds it with :class:`PageURL`::

    @dataclass(frozen=True, kw_only=True)
    class Settings:
        method: str = url.param("cluster", state.CLUSTERS_METHOD, choices=("kmeans", "hdbscan"))
        k: int = url.param("k", state.CLUSTERS_K, low=2, high=50)
        layers: tuple[str, ...] = url.param("layers", state.CLUSTERS_LAYERS, per_trace=True)

    URL = url.PageURL(Settings, page="clusters")

    URL.restore(active.ref)           # first: a URL new to this session fills the widget keys
    st.number_input("k", 2, 50, key=URL.key("k", active.ref))   # the widgets, bound by key
    URL.publish(settings, active.ref)  # last: the address bar shows what the widgets hold

So a widget's value goes into the address bar, and a shared link restores it.

**Types** (from the field's annotation): ``int``, ``float``, ``str``, ``bool`` (``1``/``0``),
an :class:`~enum.Enum` (by value), ``tuple[T, ...]`` (items joined by ``,``; a list in session
state, which is what ``st.multiselect`` holds), ``tuple[T1, T2]`` (fixed length, joined by
``sep``; a tuple in session state, what a range slider holds), and ``T | None`` (``None``:
left out of the URL).

**A URL is untrusted input.** Only the page's own parameters are read; every value is checked
(type, ``choices``, ``low``/``high``, finite numbers, at most ``max_length`` characters and
``max_items`` items); a bad value is dropped and its widget falls back to its default (the key
is removed from session state, so the page's own default applies). A value renamed since a link
was made is read under its new name (``aliases``). A URL is applied once:
when its page parameters (or the trace) change, not on every rerun, so the widgets stay free.

**Time-axis names.** A parameter whose name says ``epoch`` (``epoch``, ``color_epoch``) names a
point in time: on a step trace (:func:`nn_tracing.timeaxis.current_axis` is ``"step"``, set by
the page) the address bar says ``step`` (``color_step``) instead, and a link made with the
``epoch`` name still opens the same view. Epoch traces keep ``epoch``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from ..timeaxis import current_axis, time_word
from . import state

__all__ = ["PageURL", "Param", "at_defaults", "param", "query_name"]

#: Default bound on a parameter's text (characters).
MAX_LENGTH = 2000
#: Default bound on the items of a tuple parameter.
MAX_ITEMS = 256
#: A parameter's name: short, lower-case, stable (it is in links people share).
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
#: Names the app shell owns (see :mod:`nn_tracing.ui.app`): no page may take them.
RESERVED = frozenset({"trace", "neuron"})
_TRUE = {"1", "true"}
_FALSE = {"0", "false"}
_META = "nn_tracing.url"


@dataclass(frozen=True)
class Param:
    """How one setting travels in the URL (the metadata :func:`param` puts on a field).

    ``key`` is the widget's session-state key (``key:<trace ref>`` when ``per_trace``).
    """

    name: str
    key: str
    per_trace: bool = False
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    max_length: int = MAX_LENGTH
    max_items: int = MAX_ITEMS
    sep: str = ","
    keep_empty: bool = False
    aliases: tuple[tuple[str, str], ...] = ()

    def current(self, text: str) -> str:
        """``text`` under its current name (an old name in :attr:`aliases` becomes the new)."""
        return dict(self.aliases).get(text, text)


def param(
    name: str,
    key: str,
    *,
    default: Any = dataclasses.MISSING,
    per_trace: bool = False,
    choices: Iterable[Any] | None = None,
    low: float | None = None,
    high: float | None = None,
    max_length: int = MAX_LENGTH,
    max_items: int = MAX_ITEMS,
    sep: str = ",",
    keep_empty: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> Any:
    """A dataclass field carried in the URL as ``name``, bound to the widget key ``key``.

    Parameters
    ----------
    name
        The query parameter: short, lower-case, stable.
    key
        The widget's session-state key.
    default
        The dataclass default (optional: settings whose default depends on the trace have
        none; the page's widget supplies it).
    per_trace
        The widget belongs to one trace (its options are that trace's layers or epochs): its
        key is ``key:<trace ref>``.
    choices
        The allowed values (of every item, for a tuple).
    low, high
        Bounds of a number (of every item, for a tuple), inclusive.
    max_length, max_items
        Bounds on the parameter's text and on a tuple's items.
    sep
        What joins the items of a fixed-length tuple (``,`` or e.g. ``-`` for ``0-4``).
    keep_empty
        An empty tuple stays in the URL (``name=``) instead of being left out: for a
        selection whose default is not empty, so that choosing nothing survives a link.
    aliases
        Old names of values, ``{old text: current text}``: links made before a value was
        renamed keep working (the address bar then shows the current name).
    """
    meta = Param(
        name,
        key,
        per_trace=per_trace,
        choices=None if choices is None else tuple(choices),
        low=low,
        high=high,
        max_length=int(max_length),
        max_items=int(max_items),
        sep=sep,
        keep_empty=keep_empty,
        aliases=tuple(sorted((aliases or {}).items())),
    )
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={_META: meta})
    return dataclasses.field(default=default, metadata={_META: meta})


def query_name(name: str, axis: str | None = None) -> str:
    """The name a parameter has in the address bar on ``axis`` (the current axis by default):
    ``epoch`` in a name becomes ``step`` on a step trace (``query_name("epoch", "step")`` is
    ``"step"``); every other name, and every name on an epoch trace, is itself."""
    word = time_word(axis)
    return name.replace("epoch", word) if word != "epoch" else name


# -- one value ------------------------------------------------------------------------------
def _scalar(kind: Any, text: str, spec: Param) -> Any:
    """The value ``text`` means for the scalar type ``kind`` (``ValueError`` when it cannot)."""
    text = spec.current(text)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered not in _TRUE | _FALSE:
            raise ValueError(f"not a yes/no value: {text!r}")
        value: Any = lowered in _TRUE
    elif kind is int:
        value = int(text)
    elif kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {text!r}")
    elif kind is str:
        value = text
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        value = kind(text)
    else:  # pragma: no cover - PageURL checks the types up front
        raise TypeError(f"unsupported type {kind!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"not one of the choices: {text!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.low is not None and value < spec.low:
            raise ValueError(f"below {spec.low}: {text!r}")
        if spec.high is not None and value > spec.high:
            raise ValueError(f"above {spec.high}: {text!r}")
    return value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _shape(annotation: Any) -> tuple[bool, str, tuple[Any, ...]]:
    """``(optional, "scalar" | "items" | "fixed", item types)`` of a field's annotation."""
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) != 1 or len(rest) == len(args):
            raise TypeError(f"only T | None unions are supported, not {annotation!r}")
        optional, annotation = True, rest[0]
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return optional, "items", (args[0],)
        return optional, "fixed", tuple(args)
    return optional, "scalar", (annotation,)


def _supported(kind: Any) -> bool:
    return kind in (bool, int, float, str) or (
        isinstance(kind, type) and issubclass(kind, enum.Enum)
    )


@dataclass(frozen=True)
class _Field:
    """One URL field of a settings dataclass, resolved."""

    field: str
    spec: Param
    optional: bool
    shape: str
    kinds: tuple[Any, ...]

    def decode(self, text: str) -> Any:
        """The setting ``text`` means (tuples as tuples); ``ValueError`` when it is bad."""
        if len(text) > self.spec.max_length:
            raise ValueError("too long")
        if self.shape == "scalar":
            return _scalar(self.kinds[0], text, self.spec)
        if self.shape == "items":
            items = [t for t in text.split(",") if t]
            if len(items) > self.spec.max_items:
                raise ValueError("too many items")
            return tuple(_scalar(self.kinds[0], t, self.spec) for t in items)
        parts = text.split(self.spec.sep, len(self.kinds) - 1)
        if len(parts) != len(self.kinds):
            raise ValueError(f"needs {len(self.kinds)} items")
        return tuple(_scalar(k, t, self.spec) for k, t in zip(self.kinds, parts, strict=True))

    def encode(self, value: Any) -> str:
        """The URL text of a setting ("" for an empty tuple)."""
        if self.shape == "scalar":
            return _scalar_text(value)
        sep = "," if self.shape == "items" else self.spec.sep
        return sep.join(_scalar_text(v) for v in value)

    def widget_value(self, value: Any) -> Any:
        """What the widget holds in session state for a setting."""
        return list(value) if self.shape == "items" else value


class PageURL:
    """The URL binding of one page's settings dataclass.

    Parameters
    ----------
    settings
        A dataclass whose URL fields are made with :func:`param` (other fields are ignored).
    page
        The page's name (keeps which URL it last applied, per session).

    Raises
    ------
    TypeError, ValueError
        When a field's type is not supported, or parameter names are not short, unique and
        the page's own (``trace`` and ``neuron`` belong to the app shell).
    """

    def __init__(self, settings: type, *, page: str) -> None:
        if not dataclasses.is_dataclass(settings):
            raise TypeError(f"{settings!r} is not a dataclass")
        self.settings = settings
        self.page = page
        hints = typing.get_type_hints(settings)
        fields: dict[str, _Field] = {}
        for item in dataclasses.fields(settings):
            spec = item.metadata.get(_META)
            if spec is None:
                continue
            optional, shape, kinds = _shape(hints[item.name])
            if not all(_supported(k) for k in kinds):
                raise TypeError(f"{settings.__name__}.{item.name}: unsupported type {kinds}")
            if not _NAME.match(spec.name) or spec.name in RESERVED:
                raise ValueError(f"{settings.__name__}.{item.name}: bad name {spec.name!r}")
            fields[item.name] = _Field(item.name, spec, optional, shape, kinds)
        names = [f.spec.name for f in fields.values()]
        stepped = [query_name(n, "step") for n in names]
        if len(set(names)) != len(names) or len(set(stepped)) != len(stepped):
            raise ValueError(f"{settings.__name__}: a parameter name is used twice: {names}")
        self._fields = fields
        self._by_name = {f.spec.name: f for f in fields.values()}

    @property
    def names(self) -> tuple[str, ...]:
        """The page's query parameters."""
        return tuple(self._by_name)

    def key(self, field: str, ref: str = "") -> str:
        """The widget key of ``field`` (with ``:<ref>`` when the widget belongs to a trace)."""
        spec = self._fields[field].spec
        return state.epoch_key(spec.key, ref) if spec.per_trace else spec.key

    def read(self, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The settings the URL carries: ``{field: value}`` of the valid page parameters
        (``params``: ``st.query_params`` by default); bad values and other keys are left out."""
        found = {}
        for name, text in self._own(params).items():
            field = self._by_name[name]
            try:
                found[field.field] = field.decode(text)
            except (TypeError, ValueError):
                continue
        return found

    def restore(self, ref: str) -> None:
        """Put the URL's settings into the widget keys when the URL is new to this session
        (call before the widgets are drawn); a bad value removes its widget key, so the page's
        default applies."""
        params = self._own(None)
        fingerprint = json.dumps([ref, sorted(params.items())])
        applied = f"{state.URL_APPLIED}:{self.page}"
        if fingerprint == state.get(applied):
            return
        state.put(applied, fingerprint)
        for name, text in params.items():
            field = self._by_name[name]
            key = self.key(field.field, ref)
            try:
                value = field.decode(text)
            except (TypeError, ValueError):
                state.pop(key)
                continue
            state.put(key, field.widget_value(value))

    def publish(self, settings: Any, ref: str, *, hidden: Iterable[str] = ()) -> None:
        """Write ``settings`` into the address bar (call after the widgets are drawn).

        ``hidden``: fields that do not apply to these settings (left out of the URL, like
        ``None`` values and empty tuples).
        """
        wanted = self.params(settings, hidden=hidden)
        for name in self._by_name:
            shown = query_name(name)
            if shown != name and name in st.query_params:  # an old link's epoch= on a step trace
                del st.query_params[name]
            text = wanted.get(name)
            if text is None:
                if shown in st.query_params:
                    del st.query_params[shown]
            elif st.query_params.get(shown) != text:
                st.query_params[shown] = text
        current = self._own(None)
        state.put(f"{state.URL_APPLIED}:{self.page}", json.dumps([ref, sorted(current.items())]))

    def params(self, settings: Any, *, hidden: Iterable[str] = ()) -> dict[str, str]:
        """The query parameters of ``settings``: ``{name: text}`` (by declared name: see
        :func:`query_name` for the address bar's), without ``hidden`` fields, ``None`` values
        and empty tuples (unless the field keeps them: ``keep_empty``)."""
        hidden = set(hidden)
        out = {}
        for field in self._fields.values():
            value = getattr(settings, field.field)
            if field.field in hidden or value is None:
                continue
            text = field.encode(value)
            if text or field.spec.keep_empty:
                out[field.spec.name] = text
        return out

    def _own(self, params: Mapping[str, str] | None) -> dict[str, str]:
        """The page's own parameters of ``params`` (``st.query_params`` by default), by
        declared name: on a step trace ``step=`` is read as ``epoch=`` (which an old link may
        also carry; ``step=`` wins)."""
        source: Mapping[str, str] = st.query_params if params is None else params
        own = {k: str(v) for k, v in source.items() if k in self._by_name}
        if current_axis() != "epoch":
            for name in self._by_name:
                shown = query_name(name)
                if shown != name and shown in source:
                    own[name] = str(source[shown])
        return own


def at_defaults(settings: Any) -> set[str]:
    """The fields of a settings dataclass that hold their declared default: a page passes
    them to :meth:`PageURL.publish` as ``hidden``, so that its link carries only what differs
    from what a fresh visit shows (a page at its defaults adds nothing to the URL)."""
    return {
        item.name
        for item in dataclasses.fields(settings)
        if item.default is not dataclasses.MISSING and getattr(settings, item.name) == item.default
    }
