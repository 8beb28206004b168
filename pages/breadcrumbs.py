"""Breadcrumbs: which neurons made this output — attribution, ablation, pruning, intervention."""

from nn_tracing import ui
from nn_tracing.ui.breadcrumbs import render_breadcrumbs

with ui.findings_first("breadcrumbs"):  # the title, then what the page found
    render_breadcrumbs()
