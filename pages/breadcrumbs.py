"""Breadcrumbs: which neurons made this output — attribution, ablation, pruning, intervention."""

from nn_tracing.ui.breadcrumbs import render_breadcrumbs

render_breadcrumbs()
