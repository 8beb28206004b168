"""Null models: is a clustering of the neurons more than what chance gives?

Clustering algorithms always return clusters, and t-SNE and UMAP draw islands in noise. So a
partition of the neurons is scored (its silhouette and its algorithm's own score, see
:func:`~nn_tracing.analysis.embedding.partition_scores`) and the same pipeline — the same
clusterer, and the same projection when clustering the 2-D map — is run on null versions of
the data, ``P`` times each (default 50):

``shuffled``
    The same features with each column permuted independently over the neurons: every
    feature keeps its distribution, every dependence between features is gone. A
    significant result says the features have joint structure; it does not by itself say
    that the structure is clusters (a single elongated cloud also beats this null) — which is
    what the Gaussian null asks.
``untrained``
    The untrained network: ``P`` fresh initialisations of the same architecture (PyTorch's
    default initialisation, seeded), each measured on the same probe set and described by the
    same features at ``E_0``. Does training create structure that initialisation alone does
    not have? Needs a model that can be rebuilt (the built-in MLP or CNN, an entry point that
    ``NN_TRACING_MODELS`` allows, or a module attached with :func:`nn_tracing.attach_model`)
    and a probe set; the run's own recorded ``E_0`` is also
    scored, as one reference value. Trajectories do not exist at initialisation: for them the
    second null is ``time_shuffled``.
``time_shuffled``
    Each neuron's trajectory with its epochs in a random order (values kept, time destroyed).
``gaussian``
    One Gaussian cloud with the features' mean and covariance (the SigClust null, Liu et
    al. 2008): is there more than one cluster at all?

The test is sequential (Besag & Clifford 1991, :mod:`nn_tracing.analysis.sequential`): ``P``
is the most versions drawn per null; drawing stops once ``h`` versions are at least as
separated as the real clusters (``h`` is the smallest count that cannot change the verdict at
``alpha``, at least 3), and the p-value is then ``h / l`` after ``l`` versions; a null that
is beaten draws all ``P`` and gets ``(1 + #{null ≥ observed}) / (P + 1)`` (one-sided: higher
scores mean better separated clusters; a null draw where the clusterer finds fewer than two
clusters counts as less separated). How many were drawn is in every result and sentence.
Beside the p-value, the verdict says how much training added over initialisation: the real
silhouette against the run's own recorded ``E_0`` (or, without one, the untrained networks'
mean) — a test can beat chance on a separation that initialisation already had.

Every neuron is scored — real and null versions alike, the silhouette exactly;
``max_neurons`` (off by default) scores a random sample instead, and then says so.

>>> from nn_tracing.analysis import baselines, embedding as emb
>>> features = emb.neuron_features(trace, emb.FeatureSpec("activations"))  # doctest: +SKIP
>>> test = baselines.ChanceTest(n_permutations=50, random_state=0)  # doctest: +SKIP
>>> test.fit(features, emb.NeuronClusterer("kmeans", n_clusters=4), trace=trace)  # doctest: +SKIP
>>> test.sentence_  # doctest: +SKIP
'Clusters are more separated than in 50 of 50 shuffled versions (p = 0.02) …'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from ..progress import Progress, reporter
from ..timeaxis import time_key
from ..trace import NetworkTrace
from .cost import chance_test_seconds, chance_workers
from .embedding import (
    FeatureError,
    NeuronClusterer,
    NeuronFeatures,
    NeuronProjector,
    neuron_features,
)
from .parallel_draws import draw_nulls
from .sequential import SequentialCount
from .untrained import fresh_initialisation, reinitialisation_problem, untrained_features

__all__ = [
    "DEFAULT_NULLS",
    "NULLS",
    "ChanceTest",
    "NotReusable",
    "NullResult",
    "TrainingEffect",
    "fresh_initialisation",
    "gaussian_like",
    "permutation_p_value",
    "permute_columns",
    "reinitialisation_problem",
    "shuffle_within_rows",
    "training_effect",
    "untrained_features",
]


#: The null models and what each is.
NULLS: dict[str, str] = {
    "shuffled": "the same features, each column permuted independently",
    "untrained": "the untrained network: fresh initialisations of the architecture at E_0",
    "time_shuffled": "each neuron's trajectory with its epochs in random order",
    "gaussian": "one Gaussian cloud with the features' mean and covariance",
}
#: What a "version" of the data is called in sentences.
_VERSION: dict[str, str] = {
    "shuffled": "shuffled versions",
    "untrained": "untrained networks",
    "time_shuffled": "time-shuffled versions",
    "gaussian": "Gaussian clouds",
}
#: The nulls run unless chosen otherwise (``untrained`` becomes ``time_shuffled`` for
#: trajectories).
DEFAULT_NULLS: tuple[str, ...] = ("shuffled", "untrained")


# -- null data --------------------------------------------------------------------------------
def permute_columns(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each column of ``X`` (n_rows, n_features) permuted independently over the rows."""
    return rng.permuted(X, axis=0)  # a Fisher–Yates shuffle per column (not an argsort)


def shuffle_within_rows(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row of ``X`` (n_rows, n_features) with its entries in a random order."""
    order = np.argsort(rng.random(X.shape), axis=1)
    return np.take_along_axis(X, order, axis=1)


def gaussian_like(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows drawn from one Gaussian with the mean and covariance of ``X`` (n_rows, n_features).

    Drawn through the thin SVD of the centred data, so it works when the features outnumber
    the rows (a rank-deficient covariance).
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    scale = s / math.sqrt(max(X.shape[0] - 1, 1))
    z = rng.standard_normal((X.shape[0], s.size))
    return ((z * scale) @ vt + mean).astype(np.float32)


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null ≥ observed}) / (P + 1)``; NaN null draws count as below, a NaN
    ``observed`` gives NaN."""
    if not math.isfinite(observed):
        return float("nan")
    null = np.asarray(null, dtype=np.float64)
    at_least = int(np.sum(np.isfinite(null) & (null >= observed - 1e-12)))
    return (1 + at_least) / (null.size + 1)


# -- the test ---------------------------------------------------------------------------------
class NotReusable(ValueError):
    """``ChanceTest.fit(previous=…)`` was given a test of other data or another clustering."""


@dataclass(frozen=True)
class NullResult:
    """One null model's scores.

    Attributes
    ----------
    name, description : the null (a key of :data:`NULLS`) and what it is
    scores : ``{"silhouette": array (P,), "score": array (P,)}`` of the null versions
    p_values : ``{"silhouette": p, "score": p}``
    n_at_least : null versions scoring at least the observed silhouette
    sentence : the plain sentence
    significant : whether the silhouette beats this null at the test's ``alpha``
    reference : for ``untrained``, the scores of the run's own recorded ``E_0`` (if any)
    n_max : the most versions the test would have drawn (``P``); ``n_permutations`` were
    stopped_early : whether drawing stopped before ``n_max`` (the verdict was decided)
    """

    name: str
    description: str
    scores: dict[str, np.ndarray]
    p_values: dict[str, float]
    n_at_least: int
    sentence: str
    significant: bool
    reference: dict[str, float] | None = None
    n_max: int = 0
    stopped_early: bool = False

    @property
    def n_permutations(self) -> int:
        """Null versions drawn (at most :attr:`n_max`)."""
        return int(self.scores["silhouette"].size)


@dataclass(frozen=True)
class TrainingEffect:
    """How much training added to the clusters' separation over initialisation.

    Attributes
    ----------
    initial : the silhouette at initialisation (the run's own ``E_0``, or the untrained
        networks' mean when ``E_0`` was not recorded)
    now : the silhouette of the clusters tested
    source : ``"recorded"`` (the run's ``E_0``) or ``"untrained"`` (the null's mean)
    n_untrained : untrained networks averaged (``source == "untrained"``)
    """

    initial: float
    now: float
    source: str
    n_untrained: int = 0

    @property
    def added(self) -> float:
        """``now − initial``: what training added (negative: what it took away)."""
        return self.now - self.initial

    @property
    def sentence(self) -> str:
        """The effect in one sentence, e.g. "Training added 0.046 to a separation already
        there at initialisation (silhouette 0.410 at E_0, 0.456 now)."."""
        e0 = time_key(0)
        where = (
            f"{self.initial:.3f} at {e0}"
            if self.source == "recorded"
            else f"{self.initial:.3f} on average over {self.n_untrained} untrained networks, as "
            f"this run did not record {e0}"
        )
        already = self.initial > 0.1 and self.initial >= 0.5 * max(self.now, 0.0)
        if abs(self.added) < 0.0005:
            change = "Training added nothing to the separation the network had at initialisation"
        elif self.added > 0:
            change = f"Training added {self.added:.3f} to " + (
                "a separation already there at initialisation"
                if already
                else "the separation at initialisation"
            )
        else:
            change = f"Training took {-self.added:.3f} from the separation at initialisation"
        return f"{change} (silhouette {where}, {self.now:.3f} now)."


def training_effect(
    observed: float,
    untrained: NullResult | None,
    recorded: dict[str, float] | None = None,
) -> TrainingEffect | None:
    """The effect of training on the silhouette: against the run's recorded ``E_0`` (the
    untrained null's ``reference``, or ``recorded``), else against the untrained networks'
    mean; ``None`` when neither is known or ``observed`` is not finite."""
    if not math.isfinite(observed):
        return None
    reference = recorded if recorded is not None else (untrained.reference if untrained else None)
    if reference is not None and math.isfinite(reference.get("silhouette", float("nan"))):
        return TrainingEffect(float(reference["silhouette"]), float(observed), "recorded")
    if untrained is None:
        return None
    null = untrained.scores["silhouette"]
    finite = null[np.isfinite(null)]
    if finite.size == 0:
        return None
    return TrainingEffect(float(finite.mean()), float(observed), "untrained", int(null.size))


@dataclass
class _Run:
    clusterer: NeuronClusterer
    projector: NeuronProjector | None
    seed: int

    def scores(self, X: np.ndarray) -> dict[str, float]:
        data = X
        if self.projector is not None:
            params = {**self.projector.get_params(deep=False), "random_state": self.seed}
            data = NeuronProjector(**params).fit_transform(X)
        fitted = self.clusterer.clone(random_state=self.seed).fit(data)
        # the fit scored its partition already (partition_scores on ``data``): once is enough
        return {"silhouette": float(fitted.silhouette_), "score": float(fitted.score_)}


class ChanceTest(BaseEstimator):
    """Score a clustering of the neurons against null models (see the module docstring).

    Parameters
    ----------
    n_permutations
        The most null versions per null model (``P``); fewer are drawn once the verdict is
        decided (``sequential``).
    nulls
        Which null models (keys of :data:`NULLS`); ``untrained`` is replaced by
        ``time_shuffled`` for trajectories.
    max_neurons
        ``None`` (the default): every row is scored. A number: a random sample of that many
        rows above it (the same size for real and null data), reported in ``n_rows_``.
    alpha
        Significance level of the verdict.
    random_state
        Seed of the sample, the permutations, the fresh initialisations and the fits.
    sequential
        Stop drawing a null's versions once ``h`` of them are at least as separated as the
        real clusters (Besag & Clifford 1991; ``h`` from
        :func:`~nn_tracing.analysis.sequential.stopping_count`). ``False``: draw all ``P``.
    n_jobs
        Null versions computed side by side (threads; each fit on one thread). ``None``:
        :func:`~nn_tracing.analysis.cost.chance_workers` (two from 2000 rows on, one when
        clustering the map: projections use the threads themselves). The
        result does not depend on it: every version's randomness comes from its own index
        (:func:`_version_rng`) and versions are counted in order
        (:mod:`nn_tracing.analysis.parallel_draws`).

    Attributes
    ----------
    observed_ : ``{"silhouette": …, "score": …}`` of the real features (on the tested rows)
    score_name_ : what ``score`` is for this clusterer
    results_ : ``{null: NullResult}``
    unavailable_ : ``{null: reason}`` for nulls that could not run on this trace
    clustered_ : whether the silhouette beats every null that ran
    undecided_ : whether ``n_permutations`` is too small for any p-value to reach ``alpha``
    sentence_ : the verdict in plain words (with the effect of training, when known)
    effect_ : how much training added over initialisation (:class:`TrainingEffect`) or ``None``
    n_drawn_ : null versions drawn in all
    n_rows_ : rows scored; seconds_ : how long the test took
    reused_ : null versions taken from ``fit(previous=…)`` instead of drawn again
    """

    def __init__(
        self,
        n_permutations: int = 50,
        *,
        nulls: Sequence[str] = DEFAULT_NULLS,
        max_neurons: int | None = None,
        alpha: float = 0.05,
        random_state: int = 0,
        sequential: bool = True,
        n_jobs: int | None = None,
    ) -> None:
        self.n_permutations = n_permutations
        self.nulls = nulls
        self.max_neurons = max_neurons
        self.alpha = alpha
        self.random_state = random_state
        self.sequential = sequential
        self.n_jobs = n_jobs

    def _workers(self, n_rows: int, projector: NeuronProjector | None) -> int:
        if self.n_jobs is not None:
            return max(1, int(self.n_jobs))
        return chance_workers(n_rows, projector.method if projector is not None else None)

    @staticmethod
    def plan(
        features: NeuronFeatures, nulls: Sequence[str], trace: NetworkTrace | None
    ) -> tuple[list[str], dict[str, str]]:
        """The nulls that will run for ``features`` and the reasons the others cannot."""
        chosen: list[str] = []
        unavailable: dict[str, str] = {}
        for name in nulls:
            if name not in NULLS:
                raise ValueError(f"no null model {name!r}; use {', '.join(NULLS)}")
            if name == "untrained" and not features.spec.per_epoch:
                name = "time_shuffled"
            if name == "untrained":
                problem = (
                    "the test was given no trace to rebuild the network from"
                    if trace is None
                    else reinitialisation_problem(trace)
                )
                if problem:
                    unavailable[name] = problem
                    continue
            if name == "time_shuffled" and features.spec.per_epoch:
                unavailable[name] = "time-shuffling applies to trajectories only"
                continue
            if name not in chosen:
                chosen.append(name)
        return chosen, unavailable

    @staticmethod
    def estimate_seconds(
        n_rows: int,
        n_features: int,
        clusterer: NeuronClusterer,
        *,
        projector: NeuronProjector | None = None,
        n_permutations: int = 50,
        n_nulls: int = 2,
        max_neurons: int | None = None,
    ) -> float:
        """A rough estimate of the test's duration on two cores, before it starts
        (:func:`nn_tracing.analysis.cost.chance_test_seconds`)."""
        return chance_test_seconds(
            n_rows,
            n_features,
            clusterer.method,
            projector=projector.method if projector is not None else None,
            n_permutations=n_permutations,
            n_nulls=n_nulls,
            max_neurons=max_neurons,
        )

    def fit(
        self,
        features: NeuronFeatures,
        clusterer: NeuronClusterer,
        *,
        trace: NetworkTrace | None = None,
        projector: NeuronProjector | None = None,
        progress: Progress | None = None,
        previous: ChanceTest | None = None,
    ) -> ChanceTest:
        """Run the test.

        Parameters
        ----------
        features
            The real feature rows.
        clusterer
            The clustering to test (its parameters; it is refitted on every version).
        trace
            The trace ``features`` come from (needed for the ``untrained`` null).
        projector
            When the clusters were found on the 2-D map: the projector, which then projects
            every null version too.
        progress
            ``progress(fraction, what)`` before each fit (not kept on the fitted test).
        previous
            A fitted test of the same rows, clusterer, projector and seed (typically with a
            smaller ``P``): its real scores and the null versions it drew are reused, not
            recomputed — a version depends on the seed, the null and its index only, so they are
            exactly the first versions this test draws. ``reused_`` says how many.

        Raises
        ------
        NotReusable
            When ``previous`` tested other rows, another clustering or another seed.
        """
        started = time.perf_counter()
        P = int(self.n_permutations)
        if P < 1:
            raise ValueError(f"n_permutations={P}: use at least 1")
        rng = np.random.default_rng(self.random_state)
        nulls, unavailable = self.plan(features, self.nulls, trace)
        n = features.n_rows
        rows = (
            np.sort(rng.choice(n, self.max_neurons, replace=False))
            if self.max_neurons is not None and n > self.max_neurons
            else np.arange(n)
        )
        X = features.values[rows]
        run = _Run(clusterer, projector, int(self.random_state))
        self.fingerprint_ = _fingerprint(X, run)
        if previous is not None and getattr(previous, "fingerprint_", None) != self.fingerprint_:
            raise NotReusable(
                "the previous test was of other neurons, another clustering or another seed: "
                "its versions cannot be reused"
            )
        self._previous = previous
        total = 1 + P * len(nulls)
        report = reporter(progress, total)
        # Every fit on one thread: OpenMP teams spin-waiting for a loaded core make k-means far
        # slower (40 rows: 150 ms vs. 22 ms; 5000 rows: 4–15 s vs. 0.55 s on the shared two-core
        # machine). Large fits use the cores by drawing versions side by side instead
        # (``n_jobs``). Projections keep their own threads. The limit is process-wide.
        workers = self._workers(X.shape[0], projector)
        limits = threadpool_limits(1) if projector is None else contextlib.nullcontext()
        with limits, _torch_threads(1 if projector is None else None):
            results = self._run_nulls(
                features, X, nulls, run, trace, rng, unavailable, report, workers
            )
        report(total, "done")
        self.results_ = results
        self.unavailable_ = unavailable
        self.n_rows_ = int(X.shape[0])
        self.n_rows_total_ = n
        self.n_drawn_ = sum(r.n_permutations for r in results.values())
        self.clustered_ = bool(results) and all(r.significant for r in results.values())
        self.undecided_ = not self.clustered_ and self.alpha < 1.0 / (P + 1)
        self.effect_ = training_effect(self.observed_["silhouette"], results.get("untrained"))
        if self.effect_ is None and self._initial is not None:
            self.effect_ = training_effect(self.observed_["silhouette"], None, self._initial)
        self.sentence_ = self._verdict()
        if self.effect_ is not None and math.isfinite(self.observed_["silhouette"]):
            self.sentence_ += " " + self.effect_.sentence
        self.reused_ = self._reused(previous)
        self._previous = None
        self.seconds_ = time.perf_counter() - started
        return self

    def _reused(self, previous: ChanceTest | None) -> int:
        if previous is None:
            return 0
        return sum(
            min(result.n_permutations, previous.results_[name].n_permutations)
            for name, result in self.results_.items()
            if name in previous.results_
        )

    def _kept(self, name: str, index: int) -> dict[str, float] | None:
        """Version ``index`` of null ``name`` as the previous test scored it, if it drew it."""
        previous = self._previous
        result = previous.results_.get(name) if previous is not None else None
        if result is None or index >= result.n_permutations:
            return None
        return {key: float(values[index]) for key, values in result.scores.items()}

    def _run_nulls(
        self,
        features: NeuronFeatures,
        X: np.ndarray,
        nulls: list[str],
        run: _Run,
        trace: NetworkTrace | None,
        rng: np.random.Generator,
        unavailable: dict[str, str],
        report: Callable[[int, str], None],
        workers: int,
    ) -> dict[str, NullResult]:
        P = int(self.n_permutations)
        report(0, "clustering the real features")
        self.score_name_ = _score_name(run.clusterer.method)
        if self._previous is not None:  # the same rows and clustering: the same scores
            self.observed_ = dict(self._previous.observed_)
            self._initial = self._previous._initial
        else:
            self.observed_ = run.scores(X)
            # the run's own E_0, scored once: the untrained null's reference and the effect size
            self._initial = (
                self._recorded_e0(trace, features, run, X.shape[0], rng)
                if trace is not None
                else None
            )
        counts = {
            name: SequentialCount(P, self.alpha, sequential=bool(self.sequential)) for name in nulls
        }

        def version(name: str, i: int) -> dict[str, float]:
            kept = self._kept(name, i)
            if kept is not None:
                return kept
            return run.scores(
                self._null_version(name, features, X, trace, _version_rng(self, name, i), i)
            )

        def counted(name: str, i: int) -> None:
            report(1 + P * nulls.index(name) + i, f"{_VERSION[name]}: {i + 1} of at most {P}")

        draws = draw_nulls(
            nulls,
            version,
            counts,
            self.observed_["silhouette"],
            workers=workers,
            errors=(FeatureError,),
            on_counted=counted,
        )
        results: dict[str, NullResult] = {}
        for name in nulls:
            if draws[name].error is not None:
                unavailable[name] = str(draws[name].error)
                continue
            scores = draws[name].scores
            arrays = {
                key: np.asarray(scores.get(key, []), dtype=np.float64)
                for key in ("silhouette", "score")
            }
            reference = self._initial if name == "untrained" else None
            results[name] = self._result(name, arrays, counts[name], reference)
        return results

    def _null_version(
        self,
        name: str,
        features: NeuronFeatures,
        X: np.ndarray,
        trace: NetworkTrace | None,
        rng: np.random.Generator,
        index: int,
    ) -> np.ndarray:
        """Version ``index`` of null ``name`` (``rng``: that version's own generator)."""
        if name == "shuffled":
            return permute_columns(X, rng)
        if name == "time_shuffled":
            return shuffle_within_rows(X, rng)
        if name == "gaussian":
            return gaussian_like(X, rng)
        assert trace is not None
        fresh = untrained_features(trace, features, seed=10_000 + int(self.random_state) + index)
        return _sample_rows(fresh.values, X.shape[0], rng)

    def _recorded_e0(
        self,
        trace: NetworkTrace,
        features: NeuronFeatures,
        run: _Run,
        n_rows: int,
        rng: np.random.Generator,
    ) -> dict[str, float] | None:
        if 0 not in trace.epochs or not features.spec.per_epoch:
            return None
        try:
            recorded = neuron_features(trace, replace(features.spec, epoch=0))
            return run.scores(_sample_rows(recorded.values, n_rows, rng))
        except (FeatureError, ValueError):
            return None

    def _result(
        self,
        name: str,
        scores: dict[str, np.ndarray],
        count: SequentialCount,
        reference: dict[str, float] | None,
    ) -> NullResult:
        observed = self.observed_["silhouette"]
        p_values = {
            "silhouette": count.p_value if math.isfinite(observed) else float("nan"),
            # the second score rides along: its p-value over the versions drawn
            "score": permutation_p_value(self.observed_["score"], scores["score"]),
        }
        significant = math.isfinite(p_values["silhouette"]) and p_values["silhouette"] <= self.alpha
        return NullResult(
            name=name,
            description=NULLS[name],
            scores=scores,
            p_values=p_values,
            n_at_least=count.at_least,
            sentence=self._null_sentence(name, scores["silhouette"], count, p_values, significant),
            significant=significant,
            reference=reference,
            n_max=count.n_max,
            stopped_early=count.stopped_early,
        )

    def _null_sentence(
        self,
        name: str,
        null: np.ndarray,
        count: SequentialCount,
        p_values: dict[str, float],
        significant: bool,
    ) -> str:
        observed = self.observed_["silhouette"]
        P, drawn, at_least = count.n_max, count.drawn, count.at_least
        versions = _VERSION[name]
        median = float(np.nanmedian(null)) if np.isfinite(null).any() else float("nan")
        detail = (
            f"silhouette {observed:.3f} vs. a median of {_fmt(median)} "
            f"(p = {p_values['silhouette']:.3g})"
        )
        smallest = 1.0 / (P + 1)
        if not math.isfinite(observed):
            return "No clusters were found in the real features, so there is nothing to test."
        if count.stopped_early:
            return (
                f"Not distinguishable from chance: {at_least} of {drawn} {versions} drawn are as "
                f"separated or more, so the test stopped there (of at most {P}: more could not "
                f"bring p to {self.alpha:g}): {detail}."
            )
        if not significant and smallest > self.alpha:
            return (
                f"Too few versions to decide: the clusters are more separated than in "
                f"{P - at_least} of {P} {versions}, but with P = {P} the smallest possible p is "
                f"{smallest:.3g} > {self.alpha:g}; use P ≥ {math.ceil(1 / self.alpha) - 1}: "
                + detail
                + "."
            )
        if significant:
            beaten = P - at_least
            return f"Clusters are more separated than in {beaten} of {P} {versions}: {detail}."
        return (
            f"Not distinguishable from chance: {at_least} of {P} {versions} are as separated "
            f"or more: {detail}."
        )

    def _verdict(self) -> str:
        if not math.isfinite(self.observed_["silhouette"]):
            return "No clusters were found (fewer than two), so there is nothing to test."
        if not self.results_:
            return "No null model could run on this trace: " + "; ".join(self.unavailable_.values())
        drawn = " and ".join(
            f"{r.n_permutations} {_VERSION[r.name]}" for r in self.results_.values()
        )
        if self.clustered_:
            names = [_VERSION[r.name] for r in self.results_.values()]
            return (
                "The clusters are more separated than chance: they beat "
                + " and ".join(names)
                + f" (p ≤ {self.alpha:g} for each; {drawn} drawn)."
            )
        failed = [r for r in self.results_.values() if not r.significant]
        P = int(self.n_permutations)
        if self.alpha < 1.0 / (P + 1):
            return (
                f"Undecided: with P = {P} versions of each null no p-value can reach "
                f"{self.alpha:g} (the smallest is {1 / (P + 1):.3g}); use P ≥ "
                f"{math.ceil(1 / self.alpha) - 1} ({drawn} drawn)."
            )
        stopped = [r for r in failed if r.stopped_early]
        why = (
            "; drawing stopped after "
            + " and ".join(f"{r.n_permutations} of {r.n_max} {_VERSION[r.name]}" for r in stopped)
            + " once the verdict was decided"
            if stopped
            else f"; {drawn} drawn"
        )
        return (
            "Not distinguishable from chance: the clusters are no better separated than in "
            + " and ".join(_VERSION[r.name] for r in failed)
            + f" (p > {self.alpha:g}{why})."
        )


def _score_name(method: str) -> str:
    from .embedding import SCORE_NAMES

    return SCORE_NAMES.get(method, "score")


def _fmt(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "– (no clusters)"


def _fingerprint(X: np.ndarray, run: _Run) -> str:
    """A digest of the rows tested, the clusterer, the projector and the seed."""
    digest = hashlib.blake2b(np.ascontiguousarray(X).view(np.uint8), digest_size=16)
    parts = [
        run.clusterer.get_params(deep=False),
        run.projector.get_params(deep=False) if run.projector is not None else None,
        run.seed,
        list(X.shape),
        str(X.dtype),
    ]
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _version_rng(test: ChanceTest, name: str, index: int) -> np.random.Generator:
    """The generator of version ``index`` of null ``name``: seeded by the test's seed, the null
    and the index alone, so a version is the same whichever thread draws it, in whatever
    order, and a test of P versions draws exactly the first versions of a larger one."""
    return np.random.default_rng([int(test.random_state), list(NULLS).index(name), int(index)])


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``n`` while inside (``None``, or torch not imported:
    unchanged); restored after. Process-wide, like ``threadpool_limits``."""
    torch = sys.modules.get("torch")
    if n is None or torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sample_rows(values: np.ndarray, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    if values.shape[0] <= n_rows:
        return values
    return values[np.sort(rng.choice(values.shape[0], n_rows, replace=False))]
