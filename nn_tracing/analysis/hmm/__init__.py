"""Hidden-Markov models of training: the training map and neuron-level latent states.

Two analyses, both Gaussian HMMs (``hmmlearn.hmm.GaussianHMM``, diagonal covariances) with the
number of states chosen by BIC (or AIC), and both checked against a shuffled-time null:

* :class:`TrainingMap` — Hu, Chen, Saphra & Cho (TMLR 2023), "Latent State Models of Training
  Dynamics", on our traces: model-level weight statistics per recorded epoch
  (:func:`model_features`), an HMM over them, the Viterbi path as a "training map" of the
  states visited and the transitions taken, and — fitted jointly on several runs of one
  configuration — the *detour* states only some runs visit. Per-step tables
  (``drop_batches=False``) give long sequences from a single run (:func:`step_features`).
* :class:`NeuronHMM` — one HMM shared by every neuron: each neuron's standardised trajectory of
  a few metrics (:data:`NEURON_FEATURES`) is one sequence, and the model is fitted once over all
  of them (``fit(X, lengths)``); each neuron gets a Viterbi path and the chain its entropy rate.

The package, one idea a module:

* ``states`` — :class:`StateModel`, the HMM with k chosen by a criterion (:func:`choose_k`),
  fitted robustly (quantile initialisation, sticky transitions, a tolerance scaled to the
  data, restarts);
* ``_em`` — the EM engine it runs: forward–backward, M-step and Viterbi vectorised over every
  sequence at once in NumPy, or hmmlearn's own ``fit``; the fitted model is always a
  :class:`FlooredGaussianHMM` whose ``score``, ``predict`` and ``sample`` work as usual, and what
  hmmlearn logs is collected (:func:`hmmlearn_logs`), never printed;
* ``nulls`` — the shuffled-time test (:func:`shuffled_time_test`, :class:`TimeShuffleTest`);
* ``features`` — model-level features of a run (:func:`model_features`, :func:`step_features`,
  :func:`convergence_epoch`);
* ``describe`` — states and features in words (:func:`state_label`,
  :data:`FEATURE_DESCRIPTIONS`);
* ``structure`` — :func:`map_structure`: does a fitted map show phases or little structure
  (:class:`MapStructure`, its reasons in words);
* ``phases`` — :func:`read_phases`: a map's states read as grokking's phases (memorisation,
  plateau, transition, clean-up) from the recorded accuracies (:class:`PhaseReading`);
* ``training_map`` — :class:`TrainingMap`; ``neuron_hmm`` — :class:`NeuronHMM` and the
  sequences it fits (:func:`neuron_sequences`).

Nothing here imports Streamlit.
"""

from ._em import FlooredGaussianHMM, hmmlearn_logs, n_free_parameters
from .describe import FEATURE_DESCRIPTIONS, state_label
from .features import (
    CURVE_FEATURES,
    FRAME_FEATURES,
    MODEL_FEATURES,
    ModelFeatures,
    convergence_epoch,
    model_features,
    step_features,
)
from .neuron_hmm import (
    LOG_FEATURES,
    NAN_FILL,
    NEURON_FEATURES,
    NeuronHMM,
    NeuronSequences,
    neuron_sequences,
)
from .nulls import TimeShuffleTest, shuffled_time_test
from .phases import PHASE_RULES, PHASES, PhaseReading, read_phases
from .states import StateModel, boundary_k, choose_k
from .structure import MapStructure, map_structure
from .training_map import TrainingMap

__all__ = [
    "CURVE_FEATURES",
    "FEATURE_DESCRIPTIONS",
    "FRAME_FEATURES",
    "LOG_FEATURES",
    "MODEL_FEATURES",
    "NAN_FILL",
    "NEURON_FEATURES",
    "PHASES",
    "PHASE_RULES",
    "FlooredGaussianHMM",
    "MapStructure",
    "ModelFeatures",
    "NeuronHMM",
    "NeuronSequences",
    "PhaseReading",
    "StateModel",
    "TimeShuffleTest",
    "TrainingMap",
    "boundary_k",
    "choose_k",
    "convergence_epoch",
    "hmmlearn_logs",
    "map_structure",
    "model_features",
    "n_free_parameters",
    "neuron_sequences",
    "read_phases",
    "shuffled_time_test",
    "state_label",
    "step_features",
]
