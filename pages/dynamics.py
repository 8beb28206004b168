"""Dynamics: hidden-Markov training maps, neuron-level states and decision entropy."""

from nn_tracing import ui
from nn_tracing.ui.dynamics import render_dynamics

with ui.findings_first("dynamics"):  # the title, then what the page found
    render_dynamics()
