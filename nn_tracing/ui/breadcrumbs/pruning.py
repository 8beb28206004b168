"""The Breadcrumbs page's "Pruning" tab: remove the least important neurons, for real.

k neurons of every hidden layer removed (new, narrower Linear layers) against k random ones,
the accuracy-against-k curve, and the pruned model's weights, config and trace to download.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ...analysis.intervention import FILLS, Pruning, prunable
from ...timeaxis import time_key
from ...views import breadcrumbs as views
from ...views.breadcrumbs import Pruned, Target
from .. import state
from ..charts import show_chart
from ..text import md_escape
from ..traces import ActiveTrace
from .channels import channel_pruning_tab, has_channels
from .widgets import (
    DEFAULT_REPEATS,
    asked,
    ensure,
    model_downloads,
    repeats_ok,
    run_button,
    show_metrics,
)
from .work import pruning_of

__all__ = ["pruning_tab"]

#: What a removed neuron gives the next layer, by fill.
_GIVES = {"zero": "nothing", "mean": "their mean (folded into biases)"}


def pruning_tab(active: ActiveTrace, target: Target, chosen: dict[str, Any]) -> None:
    """Draw the tab; its settings (k per hidden layer, fill, random prunings, whether the
    pruning shows) go into ``chosen``."""
    reason = prunable(views.model_at(active.trace, target.epoch))
    if reason is not None and has_channels(active):
        channel_pruning_tab(active, target, chosen)
        return
    if reason is not None:
        st.info(f"Structured pruning does not apply to this model: {md_escape(reason, 400)}.")
        return
    st.markdown(
        "Remove the k least important neurons of every hidden layer — the layers really get "
        "smaller (new, narrower Linear layers) — and compare with removing k random neurons "
        "(the same parameter savings)."
    )
    k, fill, repeats = _controls(active)
    run_button(st, "Prune", state.BREADCRUMBS_PRUNE_BUTTON, active, state.BREADCRUMBS_PRUNE_RUN)
    params = (target.epoch, tuple(sorted(k.items())), fill, repeats, target.method)
    shown = asked(active, state.BREADCRUMBS_LINK_PRUNED, state.BREADCRUMBS_PRUNE_RUN, params)
    chosen.update(prune=tuple(k.values()), prune_fill=fill, prune_repeats=repeats)
    chosen["pruned"] = True if shown else None
    if not shown:
        st.caption("Choose how many neurons to remove and press Prune.")
        return
    done = pruning_of(active, *params)
    _results(active, target, done.pruning, k)
    _downloads(active, done)


def _k_key(layer: str) -> str:
    return f"{state.BREADCRUMBS_PRUNE_K}:{layer}"


def _controls(active: ActiveTrace) -> tuple[dict[str, int], str, int]:
    """k per hidden layer (in layer order), what removed neurons give, random prunings."""
    hidden = views.hidden_layers(active.trace)
    linked = state.pop(state.epoch_key(state.BREADCRUMBS_LINK_PRUNE, active.ref))
    if linked is not None and len(linked) == len(hidden):  # k per layer, from a link
        for info, count in zip(hidden, linked, strict=True):
            if count < info.n_neurons:
                state.put(_k_key(info.name), count)
    columns = st.columns(len(hidden) + 2)
    k: dict[str, int] = {}
    for column, info in zip(columns, hidden, strict=False):
        high = info.n_neurons - 1
        ensure(
            _k_key(info.name),
            lambda v, high=high: isinstance(v, int) and 0 <= v <= high,
            views.default_prune_k(info),
        )
        k[info.name] = int(
            column.number_input(f"Remove from L_{info.name}", 0, high, key=_k_key(info.name))
        )
    fill = columns[-2].radio(
        "Removed neurons give",
        list(FILLS),
        key=state.BREADCRUMBS_PRUNE_FILL,
        format_func=_GIVES.get,
    )
    ensure(state.BREADCRUMBS_PRUNE_REPEATS, repeats_ok, DEFAULT_REPEATS)
    repeats = columns[-1].slider("Random prunings", 5, 200, key=state.BREADCRUMBS_PRUNE_REPEATS)
    return k, str(fill), int(repeats)


def _results(active: ActiveTrace, target: Target, pruning: Pruning, k: dict[str, int]) -> None:
    show_metrics(views.pruning_metrics(pruning), 4)
    st.markdown(views.pruning_sentence(pruning))
    show_chart(views.pruning_chart(active.trace, pruning, k))
    removed = views.removed_signatures(active.trace, target.epoch, pruning)
    st.caption("Removed: " + md_escape(", ".join(removed), 1500))


def _downloads(active: ActiveTrace, done: Pruned) -> None:
    stem = f"{active.name or 'trace'}-pruned"
    a, b, c = st.columns(3)
    model_downloads(
        (a, b),
        stem,
        "Pruned",
        done.weights,
        done.config,
        (state.BREADCRUMBS_DOWNLOAD_WEIGHTS, state.BREADCRUMBS_DOWNLOAD_CONFIG),
    )
    c.download_button(
        "Pruned trace on the probe (.nntrace)",
        done.trace,
        file_name=f"{stem}.nntrace",
        mime="application/zip",
        on_click="ignore",
        key=state.BREADCRUMBS_DOWNLOAD_TRACE,
        help=f"{time_key(0)} of this trace is the pruned model; upload it in the sidebar to "
        "explore it.",
    )
