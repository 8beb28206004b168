"""The neuron-level HMM that pages share (``nn_tracing.views.neuron_states``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import nn_tracing as nt
from nn_tracing.analysis.hmm import NEURON_FEATURES, NeuronHMM
from nn_tracing.views import neuron_states as shared


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> nt.NetworkTrace:
    return nt.load_trace(tiny_trace_file)


def test_the_shared_fit_models_every_layer_but_the_input_with_the_dynamics_defaults(trace):
    params = shared.default_params(trace)
    assert params == {
        "random_state": 0,
        "features": list(NEURON_FEATURES),
        "layers": ["hidden_1", "hidden_2", "output"],
        "standardize": "layer",
        "max_neurons": 20_000,
    }
    from nn_tracing.views.dynamics import NeuronParams

    assert NeuronParams.default(trace).fit_params() == params  # the page's fit is this one
    assert shared.WHAT == "dynamics:neurons"  # the Dynamics page's own key: one fit, shared
    assert shared.fit_label(trace, ["hidden_1", "hidden_2"]) == (
        f"Fitting one HMM to 16 neurons × {len(trace.epochs)} epochs (k = 2…8 by BIC)"
    )


def test_the_shared_fit_is_a_plain_neuron_hmm_and_reports_fractions(trace):
    params = shared.default_params(trace)
    reported: list[float] = []
    model = shared.fit_neuron_hmm(trace, params, lambda fraction, what: reported.append(fraction))
    reference = NeuronHMM(
        list(NEURON_FEATURES), layers=params["layers"], standardize="layer", random_state=0
    ).fit(trace)
    states = shared.state_matrix(model, trace)
    np.testing.assert_array_equal(states, reference.states_)
    assert states.shape == (trace.n_neurons, len(trace.epochs))
    assert (states[:2] == -1).all()  # the inputs are not modelled
    assert reported and all(0.0 <= f <= 1.0 for f in reported)


def test_states_of_another_shape_are_refused(trace):
    other = SimpleNamespace(states_=np.zeros((3, 2), dtype=int))
    with pytest.raises(ValueError, match="shape"):
        shared.state_matrix(other, trace)  # type: ignore[arg-type]
