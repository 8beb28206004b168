"""Analyses of a recorded trace: pure functions and small estimators, no Streamlit.

Estimators follow scikit-learn (parameters in ``__init__``, ``fit(..., progress=...)`` returns
``self``, learned attributes end in ``_``). One idea per module:

* :mod:`.health` — dead, saturated, gradient-starved and exploding neurons at every epoch.
* :mod:`.profiles` — one neuron's profile (the Neurons page) as pure functions.
* :mod:`.embedding` — describe each neuron by features, project, cluster, summarise.
* :mod:`.baselines` — null models: is a clustering more than what chance gives?
* :mod:`.hmm` — hidden-Markov models: the training map and neuron-level states.
* :mod:`.entropy` — decision entropy and mutual information against label permutations.
* :mod:`.attribution` — which neurons made an output: attribution and the breadcrumb trail.
* :mod:`.intervention` — ablation, ablation curves, pruning and intervention.
* :mod:`.neuron_model` — a traced model with a hook point on every layer's neurons.
* :mod:`.channels` — convolution channels as image neurons: maps, receptive fields, top
  images, kernels over training, attribution to pixels.
* :mod:`.compare` — runs compared: curves side by side, neurons matched across runs against a
  null, linear CKA / SVCCA / PWCCA over training.
* :mod:`.standardise` — one vocabulary and one code for standardising features.
* :mod:`.cost` — how long an analysis will take, and how many threads to give it.
* :mod:`.numba_guard` — running numba-compiled code (UMAP) safely in a server.

The health flags are re-exported here.
"""

from .health import FLAGS, HealthThresholds, NeuronHealth, neuron_health

__all__ = ["FLAGS", "HealthThresholds", "NeuronHealth", "neuron_health"]
