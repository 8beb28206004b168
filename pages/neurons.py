"""Neurons: one neuron's life over training (metrics, weights, responses, activation field) and
the health of every neuron."""

from nn_tracing import ui

with ui.findings_first("neurons"):  # the title, then what the page found
    ui.render_neurons()
