"""Widgets and session-state moves the Breadcrumbs tabs share.

* :func:`ensure` — a widget's key holds a valid value before the widget is drawn (a URL may
  have put anything there; the page's default replaces it).
* :func:`take_link` — a value a link brought for a widget whose key names a neuron or a layer
  (known only while the tab draws it) moves into that key.
* :func:`run_button` and :func:`asked` — a Compute/Prune button, and whether the results of
  the current parameters show (the button was pressed for them, or a link asked for them).
* :func:`show_metrics`, :func:`per_class_table`, :func:`flipped` — how an ablation's or an
  intervention's outcome is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from ...analysis.intervention import AblationResult
from ...views.breadcrumbs import Metric
from .. import state
from ..traces import ActiveTrace

__all__ = [
    "DEFAULT_REPEATS",
    "REQUESTED",
    "asked",
    "ensure",
    "flipped",
    "model_downloads",
    "per_class_table",
    "repeats_ok",
    "run_button",
    "show_metrics",
    "take_link",
]

#: Random orders of the curves, random prunings (by default; 5 to 200).
DEFAULT_REPEATS = 20
#: What a Compute/Prune button's callback leaves in the run key; the run that follows replaces
#: it with the parameters the widgets hold then (so a value typed just before the click counts).
REQUESTED = "requested"


def ensure(key: str, valid: Callable[[Any], bool], default: Any) -> None:
    """Put ``default`` into ``key`` unless it holds a valid value (before its widget)."""
    if not valid(state.get(key)):
        state.put(key, default)


def repeats_ok(value: Any) -> bool:
    """Whether ``value`` is a number of random repeats the sliders allow (5 to 200)."""
    return isinstance(value, int) and 5 <= value <= 200


def take_link(link: str, active: ActiveTrace, key: str, valid: Callable[[Any], bool]) -> None:
    """Move what the URL brought into the link key ``link`` (+ ":<trace ref>", see
    :class:`~.page.Settings`) into the widget key ``key``, when it is valid; call before the
    widget is drawn."""
    value = state.pop(state.epoch_key(link, active.ref))
    if value is not None and valid(value):
        state.put(key, value)


def run_button(where: Any, label: str, key: str, active: ActiveTrace, run: str) -> None:
    """A primary button (in the container ``where``) that asks for the results: its callback
    leaves :data:`REQUESTED` in the run key ``run`` (+ ":<trace ref>")."""
    where.button(
        label,
        key=key,
        type="primary",
        on_click=state.put,
        args=(state.epoch_key(run, active.ref), REQUESTED),
    )


def asked(active: ActiveTrace, link: str, run: str, params: tuple[Any, ...]) -> bool:
    """Whether the results of ``params`` show: their button was pressed (its callback left
    :data:`REQUESTED` in the run key ``run``; this run records the parameters there), or a link
    asked (the link key ``link`` holds ``True``), and the widgets still hold ``params``."""
    run_key = state.epoch_key(run, active.ref)
    if state.pop(state.epoch_key(link, active.ref)):
        state.put(run_key, REQUESTED)
    if state.get(run_key) == REQUESTED:
        state.put(run_key, params)
    return bool(state.get(run_key) == params)


def show_metrics(metrics: Sequence[Metric], n_columns: int) -> None:
    """``metrics`` side by side in ``n_columns`` columns."""
    for column, metric in zip(st.columns(n_columns), metrics, strict=False):
        column.metric(
            metric.label,
            metric.value,
            delta=metric.delta,
            help=metric.help,
            delta_color=metric.delta_color,
        )


def per_class_table(result: AblationResult) -> None:
    """Accuracy and mean class logits per class, before and after."""
    table = result.per_class()
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            column: st.column_config.NumberColumn(format="%+.3f" if "change" in column else "%.3f")
            for column in table.columns
            if column not in ("class", "n")
        },
    )


def flipped(result: AblationResult) -> None:
    """The probe samples whose prediction flipped (nothing when none did)."""
    if len(result.flipped):
        st.markdown(f"**The {len(result.flipped)} probe samples whose prediction flipped**")
        st.dataframe(result.flipped_frame(), hide_index=True, height=220)


def model_downloads(
    columns: Sequence[Any], stem: str, word: str, weights: bytes, config: bytes, keys: Sequence[str]
) -> None:
    """A changed model's two downloads, one per column: its weights (``<stem>.safetensors``)
    and the config that rebuilds it (``<stem>.json``); ``word`` names the change ("Pruned")."""
    columns[0].download_button(
        f"{word} weights (.safetensors)",
        weights,
        file_name=f"{stem}.safetensors",
        mime="application/octet-stream",
        on_click="ignore",
        key=keys[0],
    )
    columns[1].download_button(
        f"{word} config (.json)",
        config,
        file_name=f"{stem}.json",
        mime="application/json",
        on_click="ignore",
        key=keys[1],
    )
