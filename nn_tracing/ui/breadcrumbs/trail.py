"""The Breadcrumbs page's first tab, "Attribution & trail": which neurons made this output.

The attribution per neuron (and per pixel for images), the breadcrumb trail as a graph and a
table (a row opens the neuron), the trail checked by ablation against random neurons, the
trail's scores over training ("since when"), and how far the four methods agree.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ... import viz
from ...analysis.attribution import Trail
from ...timeaxis import time_word
from ...views import breadcrumbs as views
from ...views.breadcrumbs import Target
from .. import state
from ..charts import neuron_table, show_chart
from ..links import open_picked
from ..text import guarded, md_escape
from ..traces import ActiveTrace
from .channels import pixel_section
from .work import agreement_of, attribution_of, since_when_of, trail_check_of, trail_of

__all__ = ["attribution_tab"]

_TRAIL_CAPTION = (
    "From the output (right) back to the input features (left): the {k} neurons of each layer "
    "with the largest |score|. Node border: the neuron's share of its layer's |score|; edge "
    "width: contribution flow = weight × upstream activation × downstream attribution "
    "(relative to the strongest between the same layers); orange positive, blue negative."
)


def attribution_tab(active: ActiveTrace, target: Target, chosen: dict[str, Any]) -> None:
    """Draw the tab; its settings (``compare``) go into ``chosen``."""
    trace = active.trace
    result = attribution_of(active, target)
    st.markdown(md_escape(target.describe(trace, len(result.samples)), 400))
    chart, image = views.attribution_charts(trace, result.frame(), target)
    event = show_chart(chart, select=viz.PICK, key=state.BREADCRUMBS_ATTRIBUTION_CHART)
    open_picked(active, event)
    if image is not None:
        event = show_chart(
            image,
            select=viz.PICK,
            key=state.BREADCRUMBS_IMAGE_CHART,
            width="content",
            height="content",
        )
        open_picked(active, event)
    with guarded("attributing to the pixels"):
        pixel_section(active, target, result)
    trail = _trail_section(active, target)
    with guarded("checking the trail by ablation"):
        _trail_check_section(active, target)
    with guarded("following the trail over training"):
        _since_when_section(active, target, trail)
    with st.expander("Do the four methods agree?"):
        compare = st.toggle(
            "Compute all four methods and compare their rankings", key=state.BREADCRUMBS_COMPARE
        )
        chosen["compare"] = bool(compare)
        if compare:
            with guarded("comparing the methods"):
                st.dataframe(
                    agreement_of(active, target),
                    hide_index=True,
                    column_config={
                        "spearman": st.column_config.NumberColumn(
                            "Spearman ρ of scores", format="%+.2f"
                        ),
                        "top_match": st.column_config.CheckboxColumn("same top neuron"),
                    },
                )


def _trail_section(active: ActiveTrace, target: Target) -> Trail:
    """The trail as a graph and a table; returns it."""
    st.subheader("The breadcrumb trail")
    trail = trail_of(active, target)
    with guarded("drawing the trail"):
        st.graphviz_chart(views.trail_dot(active.trace, trail))
        st.caption(_TRAIL_CAPTION.format(k=target.k))
        for note in trail.notes:
            st.caption(md_escape(note, 400))
    table = views.trail_table(active.trace, trail)
    st.markdown("**Trail neurons** — select a row to open the neuron")
    neuron_table(
        active.name,
        table,
        list(table["signature"]),
        key=state.BREADCRUMBS_TRAIL_TABLE,
        column_config={
            "score": st.column_config.NumberColumn(format="%+.4g"),
            "share": st.column_config.NumberColumn("share of layer", format="percent"),
            "activation": st.column_config.NumberColumn("mean activation", format="%.4g"),
            "name": st.column_config.TextColumn("feature"),
            "value": st.column_config.NumberColumn(
                "mean input",
                format="%.4g",
                help="an input's mean in the dataset's own units (mean activation: standardised, "
                "what the network reads)",
            ),
        },
    )
    return trail


def _trail_check_section(active: ActiveTrace, target: Target) -> None:
    st.subheader("Is the trail real? Ablate it against random neurons")
    check = trail_check_of(active, target)
    lines = [
        f"- **L_{md_escape(layer)}**: {sentence}"
        for layer, sentence in views.trail_check_sentences(active.trace, check)
    ]
    st.markdown("\n".join(lines) if lines else "Nothing to check: every layer is in the trail.")


def _since_when_section(active: ActiveTrace, target: Target, trail: Trail) -> None:
    st.subheader("Since when?")
    if len(active.trace.epochs_with_weights) < 2:
        st.info(
            f"Following the trail over training needs the weights of every recorded {time_word()}; "
            "this run kept only the final weights. Train with keep_weights=True (--keep-weights)."
        )
        return
    history = since_when_of(active, target, views.trail_neurons(trail))
    event = show_chart(
        views.since_when_chart(history), select=viz.PICK, key=state.BREADCRUMBS_SINCE_CHART
    )
    open_picked(active, event)
