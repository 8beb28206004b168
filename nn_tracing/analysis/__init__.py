"""Analyses of a recorded trace: pure functions and small estimators, no Streamlit.

``health`` flags dead, saturated and gradient-starved neurons at every recorded epoch.
"""

from .health import FLAGS, HealthThresholds, NeuronHealth, neuron_health

__all__ = ["FLAGS", "HealthThresholds", "NeuronHealth", "neuron_health"]
