"""A meta-model of the neurons: describe each neuron by features, project, cluster, summarise.

The pieces, each usable on its own (scikit-learn style: parameters in ``__init__``, ``fit``
returns ``self``, learned attributes end in ``_``, randomness through ``random_state``), one
module each:

* ``features`` — :class:`FeatureSpec` and :func:`neuron_features`: what describes a neuron
  (the feature set):

  ``trajectory``  a metric over the recorded epochs (an epoch range), raw or z-scored per neuron;
  ``metrics``     several metrics at one epoch, each standardised over the neurons;
  ``response``    the mean activation per class on the probe set (the response profile);
  ``activations`` the activation on every probe sample (the neuron as a point in sample space);
  ``weights``     the incoming weights (one layer; needs weights kept at that epoch).

  Neurons whose features are undefined (NaN) or constant (a dead ReLU's activations) cannot be
  placed; they are listed in ``NeuronFeatures.excluded`` with the reason, never dropped
  silently. The per-epoch feature sets can be built at several epochs at once: one row per
  (neuron, epoch), scaled together, for the joint embedding behind the epoch slider.
* ``projection`` — :class:`NeuronProjector`: PCA, t-SNE (scikit-learn below
  :data:`OPENTSNE_FROM` rows, openTSNE above) or UMAP to two dimensions; wide features are
  first reduced to :data:`PCA_FIRST` principal components (standard practice for t-SNE and
  UMAP).
* ``clustering`` — :class:`NeuronClusterer`: k-means, HDBSCAN or agglomerative clustering, on
  the features (the default) or on the 2-D map; ``score_`` is the algorithm's own quality
  score and ``silhouette_`` the silhouette (exact, over every neuron).
* ``summary`` — :func:`cluster_summary`: per cluster, its size, layers represented, the mean
  feature profile and the most typical neurons (closest to the centroid).
* ``joint`` — :func:`joint_embedding`: every (neuron, epoch) in one map (unique rows
  projected once, so identical features give identical points).
* ``through_time`` — :func:`map_through_time`: the map through time by any of
  :data:`TIME_MAPS` (joint PCA / t-SNE / UMAP, ``aligned`` UMAP, ``mphate`` M-PHATE), with its
  ``faithfulness`` (k-NN preservation within and across epochs, the noise floor);
  ``vis_entropy`` — :func:`run_visualisation_entropy`, M-PHATE's visualisation entropy.

How long each takes, and how many threads to give it, is :mod:`nn_tracing.analysis.cost`
(re-exported here: :func:`estimate_seconds`, :func:`silhouette_seconds`,
:func:`available_threads`). Whether the clusters are more than chance is
:mod:`nn_tracing.analysis.baselines`.

>>> import nn_tracing as nt
>>> from nn_tracing.analysis import embedding as emb
>>> features = emb.neuron_features(trace, emb.FeatureSpec("activations"))  # doctest: +SKIP
>>> xy = emb.NeuronProjector("umap").fit_transform(features.values)  # doctest: +SKIP
>>> clusters = emb.NeuronClusterer("kmeans", n_clusters=4).fit(features.values)  # doctest: +SKIP
>>> emb.cluster_summary(features, clusters.labels_).table  # doctest: +SKIP
"""

# ``X as X``: importable from here as before the split, though outside ``__all__``.
from ..cost import AGGLOMERATIVE_MAX as AGGLOMERATIVE_MAX
from ..cost import (
    OPENTSNE_FROM,
    PCA_FIRST,
    available_threads,
    estimate_seconds,
    silhouette_seconds,
)
from ..cost import UMAP_JIT_SECONDS as UMAP_JIT_SECONDS
from ..numba_guard import UMAP_EXACT_BELOW as UMAP_EXACT_BELOW
from .aligned import AlignedProjector
from .clustering import (
    CLUSTERERS,
    NeuronClusterer,
    partition_scores,
    silhouette,
    variance_explained,
)
from .clustering import SCORE_NAMES as SCORE_NAMES
from .faithfulness import Faithfulness, faithfulness
from .features import (
    DEFAULT_METRICS,
    DEFAULT_SCALE,
    FEATURE_SETS,
    PER_EPOCH,
    SCALES,
    FeatureError,
    FeatureSpec,
    NeuronFeatures,
    neuron_features,
)
from .joint import JointEmbedding, joint_embedding
from .joint import thin_epochs as thin_epochs
from .mphate import MultisliceEmbedder, multislice_affinity
from .projection import PROJECTORS, NeuronProjector
from .summary import ClusterSummary, cluster_summary
from .summary import cluster_name as cluster_name
from .through_time import TIME_MAPS, map_through_time
from .vis_entropy import (
    VisualisationEntropy,
    entropy_by_epoch,
    run_visualisation_entropy,
    visualisation_entropy,
)

__all__ = [
    "CLUSTERERS",
    "DEFAULT_METRICS",
    "DEFAULT_SCALE",
    "FEATURE_SETS",
    "OPENTSNE_FROM",
    "PCA_FIRST",
    "PER_EPOCH",
    "PROJECTORS",
    "SCALES",
    "TIME_MAPS",
    "AlignedProjector",
    "ClusterSummary",
    "Faithfulness",
    "FeatureError",
    "FeatureSpec",
    "JointEmbedding",
    "MultisliceEmbedder",
    "NeuronClusterer",
    "NeuronFeatures",
    "NeuronProjector",
    "VisualisationEntropy",
    "available_threads",
    "cluster_summary",
    "entropy_by_epoch",
    "estimate_seconds",
    "faithfulness",
    "joint_embedding",
    "map_through_time",
    "multislice_affinity",
    "neuron_features",
    "partition_scores",
    "run_visualisation_entropy",
    "silhouette",
    "silhouette_seconds",
    "variance_explained",
    "visualisation_entropy",
]
