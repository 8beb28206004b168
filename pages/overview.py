"""Overview: run summary, training curves, the brain scan and neuron health."""

from nn_tracing import ui

ui.render_overview()
