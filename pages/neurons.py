"""Neurons: one neuron's metrics over the recorded epochs against its layer."""

from nn_tracing import ui

ui.render_neurons()
