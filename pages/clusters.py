"""Clusters: a meta-model of the neurons — map, clusters, and a test against chance."""

from nn_tracing import ui

ui.render_clusters()
