"""The Breadcrumbs page's "Intervention" tab: "add the +1 ourselves".

Clamp or scale one neuron, or edit one weight, and see what the network does: probe accuracy,
flipped predictions, what changed layer by layer, per class, and for 2-D inputs the decision
boundary before and after.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ...analysis.intervention import Intervention
from ...timeaxis import time_key
from ...views import breadcrumbs as views
from ...views.breadcrumbs import Target
from .. import state
from ..charts import show_chart
from ..text import md_escape
from ..traces import ActiveTrace
from .recycling import recycle_section
from .widgets import ensure, flipped, per_class_table, show_metrics, take_link
from .work import intervention_of, trail_of

__all__ = ["KINDS", "intervention_tab"]

#: The changes the tab offers.
KINDS = {
    "clamp": "clamp a neuron",
    "scale": "scale a neuron",
    "weight": "edit a weight",
    "recycle": "recycle dormant neurons",
}


def intervention_tab(active: ActiveTrace, target: Target, chosen: dict[str, Any]) -> None:
    """Draw the tab; its settings (the change, the neuron or the weight, the value) go into
    ``chosen``."""
    trace = active.trace
    st.markdown(
        "“Add the +1 ourselves”: change one neuron or one weight and see what the network does."
    )
    kind = str(
        st.segmented_control(
            "Change",
            list(KINDS),
            key=state.BREADCRUMBS_KIND,
            default="clamp",
            required=True,
            format_func=KINDS.get,
        )
    )
    chosen["change"] = kind
    if kind == "recycle":
        recycle_section(active, target, chosen)
        return
    change = (
        _neuron_controls(active, target, kind, chosen)
        if kind in ("clamp", "scale")
        else _weight_controls(active, target.epoch, chosen)
    )
    if change is None:
        return
    result = intervention_of(active, target.epoch, change)
    show_metrics(views.intervention_metrics(result), 3)
    st.markdown("**What changed, layer by layer** (activations on the probe set)")
    st.dataframe(result.layer_changes(trace.layers), hide_index=True)
    names = trace.class_names
    comparison = result.comparison(names)
    boundary = views.boundary_chart(trace, result)
    if boundary is not None:
        show_chart(boundary, width="content")
    else:
        st.caption("The decision boundary is drawn for datasets with two input features.")
    st.markdown("**Per class** — accuracy, and the mean class logit on its own and on all samples")
    per_class_table(comparison)
    confusion = views.confusion_chart(comparison, names) if boundary is None else None
    if confusion is not None:
        show_chart(confusion, width="content")
    flipped(comparison)


def _neuron_controls(
    active: ActiveTrace, target: Target, kind: str, chosen: dict[str, Any]
) -> Intervention | None:
    """The neuron to clamp or scale (a trail neuron by default) and the value."""
    trace, epoch = active.trace, target.epoch
    options = views.neuron_options(trace, with_inputs=False)
    if not options:
        st.info("This network has no hidden neuron to change.")
        return None
    if state.get(state.BREADCRUMBS_NEURON) not in options:
        hidden = [n for n in trail_of(active, target).neurons() if n in options]
        state.put(state.BREADCRUMBS_NEURON, hidden[0] if hidden else options[0])
    left, right = st.columns([3, 2])
    neuron = int(
        left.selectbox(
            "Neuron",
            options,
            key=state.BREADCRUMBS_NEURON,
            format_func=lambda n: views.signature(trace, epoch, n),
        )
    )
    default, high, origin = views.clamp_default(trace, epoch, neuron, kind)
    key = f"{state.BREADCRUMBS_VALUE}:{kind}:{neuron}"
    take_link(state.BREADCRUMBS_LINK_VALUE, active, key, lambda v: isinstance(v, float))
    value = float(
        right.number_input(
            "Clamp to" if kind == "clamp" else "Multiply by",
            value=default,
            step=0.1,
            key=key,
            help="its largest probe activation at "
            f"{time_key(views.model_state(trace, epoch))}: {high:.4g}",
        )
    )
    right.caption(f"Starts at {default:g}: {md_escape(origin, 200)}.")
    chosen.update(unit=neuron, value=value)
    return Intervention(kind, value, neuron=neuron)


def _weight_controls(
    active: ActiveTrace, epoch: int, chosen: dict[str, Any]
) -> Intervention | None:
    """The weight to edit (layer, row, column) and its new value."""
    trace = active.trace
    names = [info.name for info in views.weight_layers(trace)]
    if not names:
        st.info("Editing one weight needs a Linear layer; this network has none.")
        return None
    ensure(state.BREADCRUMBS_WEIGHT_LAYER, lambda v: v in names, names[0])
    a, b, c, d = st.columns([2, 3, 3, 2])
    layer = trace.layer(a.selectbox("Layer", names, key=state.BREADCRUMBS_WEIGHT_LAYER))
    row_key = f"{state.BREADCRUMBS_WEIGHT_ROW}:{layer.name}"
    column_key = f"{state.BREADCRUMBS_WEIGHT_COLUMN}:{layer.name}"
    take_link(state.BREADCRUMBS_LINK_ROW, active, row_key, lambda v: v in layer.ids)
    take_link(state.BREADCRUMBS_LINK_COLUMN, active, column_key, lambda v: v < layer.fan_in)
    neuron = int(
        b.selectbox(
            "Neuron (row)",
            list(layer.ids),
            key=row_key,
            format_func=lambda n: views.signature(trace, epoch, n),
        )
    )
    labels = views.column_labels(trace, epoch, layer)
    column = int(
        c.selectbox(
            "Reads from (column)",
            list(range(layer.fan_in)),
            key=column_key,
            format_func=labels.__getitem__,
        )
    )
    row = neuron - layer.first_id
    current = views.weight_value(trace, epoch, layer, row, column)
    key = f"{state.BREADCRUMBS_VALUE}:weight:{layer.name}:{row}:{column}"
    take_link(state.BREADCRUMBS_LINK_VALUE, active, key, lambda v: isinstance(v, float))
    value = float(
        d.number_input(
            "Set to", value=round(current, 4), step=0.1, key=key, help=f"now {current:.4g}"
        )
    )
    chosen.update(weight_layer=layer.name, weight_row=neuron, weight_column=column, value=value)
    return Intervention("weight", value, layer=layer.name, row=row, column=column)
