"""Clusters: a meta-model of the neurons — map, clusters, and a test against chance."""

from nn_tracing import ui

with ui.findings_first("clusters"):  # the title, then what the page found
    ui.render_clusters()
