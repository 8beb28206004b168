"""The probe sample explained on the Breadcrumbs page ("one probe sample"): its image (for
images), its true and predicted class, and its inputs in the dataset's units (standardised
beside them). Widgets and layout only: :mod:`nn_tracing.views.probe_sample` builds it."""

from __future__ import annotations

import streamlit as st

from ...views import probe_sample as views
from ..charts import show_chart
from ..traces import ActiveTrace
from .work import predictions_of

__all__ = ["sample_panel"]

#: Inputs listed at most (an image's pixels are shown as the image instead).
MAX_FEATURE_ROWS = 20


def sample_panel(active: ActiveTrace, epoch: int, index: int) -> None:
    """Draw what the explained sample is: image (or inputs), true and predicted class."""
    trace = active.trace
    if trace.probe is None:
        return
    predicted = predictions_of(active.key, epoch, trace)
    sample = views.probe_sample(trace, epoch, index, predicted)
    image = views.sample_image_chart(trace, sample)
    left, right = st.columns([1, 4]) if image is not None else (None, st.container())
    if left is not None and image is not None:
        with left:
            show_chart(image, width="content", height="content")
    with right:
        (st.warning if sample.misclassified else st.info)(
            views.sample_sentence(trace, sample, predicted)
        )
        if image is None:
            features = views.sample_features(trace, sample).head(MAX_FEATURE_ROWS)
            st.dataframe(
                features,
                hide_index=True,
                column_config={
                    "value": st.column_config.NumberColumn(
                        "value", format="%.4g", help="in the dataset's own units"
                    ),
                    "standardised": st.column_config.NumberColumn(
                        "standardised", format="%.3f", help="what the network reads"
                    ),
                },
            )
