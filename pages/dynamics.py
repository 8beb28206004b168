"""Dynamics: hidden-Markov training maps, neuron-level states and decision entropy."""

from nn_tracing.ui.dynamics import render_dynamics

render_dynamics()
