"""Neurons: one neuron's life over training (metrics, weights, responses, activation field) and
the health of every neuron."""

from nn_tracing import ui

ui.render_neurons()
