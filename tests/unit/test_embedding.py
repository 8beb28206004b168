"""Feature sets, projectors, clusterers and summaries of ``nn_tracing.analysis.embedding``.

Features are checked against NumPy brute force on a tiny trace made by real training;
projections and clusterings against planted groups (adjusted Rand index). The numba lock is
checked under numba's ``workqueue`` threading layer, which aborts the whole process when two
threads run parallel code at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from torch import nn

import nn_tracing as nt
from nn_tracing.analysis import embedding as emb
from nn_tracing.analysis import numba_guard
from nn_tracing.trace import METRICS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> nt.NetworkTrace:
    return nt.load_trace(tiny_trace_file)


def planted(
    n_per_group: int = 40, n_groups: int = 3, n_features: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian groups: rows and their true group."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(n_groups, n_features))
    truth = np.repeat(np.arange(n_groups), n_per_group)
    X = centers[truth] + rng.normal(size=(truth.size, n_features))
    order = rng.permutation(truth.size)
    return X[order].astype(np.float32), truth[order]


# -- features against brute force ----------------------------------------------------------------
def _hidden_ids(trace: nt.NetworkTrace) -> np.ndarray:
    return np.concatenate([np.asarray(i.ids) for i in trace.layers if i.kind != "input"])


def _zscore_rows(values: np.ndarray) -> np.ndarray:
    return (values - values.mean(1, keepdims=True)) / values.std(1, keepdims=True)


def test_trajectory_features_are_the_metric_over_epochs_raw_and_zscored(trace):
    ids = _hidden_ids(trace)
    raw = emb.neuron_features(trace, emb.FeatureSpec("trajectory", metric="act_std", scale="none"))
    expected = np.stack([trace.metrics_at(e)[:, METRICS.index("act_std")] for e in trace.epochs])
    expected = expected[:, ids].T
    kept = ~np.all(expected == expected[:, :1], axis=1)
    np.testing.assert_array_equal(raw.neuron_ids, ids[kept])
    np.testing.assert_allclose(raw.values, expected[kept], rtol=1e-6)
    assert raw.columns == [f"E_{e}" for e in trace.epochs]
    z = emb.neuron_features(trace, emb.FeatureSpec("trajectory", metric="act_std"))
    np.testing.assert_allclose(z.values, _zscore_rows(expected[kept]), rtol=1e-4, atol=1e-5)
    assert set(z.excluded["neuron"]) == set(ids[~kept])


def test_trajectory_over_a_range_and_an_undefined_epoch_column(trace):
    spec = emb.FeatureSpec("trajectory", metric="w_drift", scale="none")
    features = emb.neuron_features(trace, spec)
    assert "E_0" not in features.columns  # w_drift is not defined at E_0 (no previous epoch)
    assert any("undefined for every neuron: E_0" in note for note in features.notes)
    ranged = emb.neuron_features(
        trace, emb.FeatureSpec("trajectory", metric="act_mean", epoch_range=(1, 3))
    )
    assert ranged.columns == ["E_1", "E_2", "E_3"]
    assert set(ranged.epochs) == {3}  # rows carry the signature of the range's last epoch


def test_metrics_at_one_epoch_are_standardised_per_column(trace):
    metrics = ("act_mean", "act_std", "w_norm", "grad_norm")
    features = emb.neuron_features(trace, emb.FeatureSpec("metrics", epoch=3, metrics=metrics))
    ids = _hidden_ids(trace)
    block = trace.metrics_at(3)[ids][:, [METRICS.index(m) for m in metrics]].astype(np.float64)
    expected = (block - block.mean(0)) / block.std(0)
    np.testing.assert_allclose(features.values, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(features.raw, block, rtol=1e-6)


def test_response_profile_is_the_class_mean_activation(trace):
    features = emb.neuron_features(trace, emb.FeatureSpec("response", epoch=2, scale="none"))
    acts = trace.probe_activations(2)
    y = trace.probe[1]
    rows = []
    for neuron in features.neuron_ids:
        rows.append([acts[y == c, neuron].mean() for c in np.unique(y)])
    np.testing.assert_allclose(features.values, np.array(rows), rtol=1e-5, atol=1e-6)


def test_activation_vectors_are_sorted_by_class_and_dead_neurons_are_listed(trace):
    epoch = trace.epochs[-1]
    features = emb.neuron_features(trace, emb.FeatureSpec("activations", epoch=epoch))
    acts = trace.probe_activations(epoch)
    y = trace.probe[1]
    order = np.argsort(y, kind="stable")
    ids = _hidden_ids(trace)
    dead = [i for i in ids if np.all(acts[:, i] == 0)]
    constant = [i for i in ids if np.ptp(acts[:, i]) == 0]
    np.testing.assert_array_equal(features.neuron_ids, [i for i in ids if i not in constant])
    expected = _zscore_rows(acts[order][:, features.neuron_ids].T.astype(np.float64))
    np.testing.assert_allclose(features.values, expected, rtol=1e-4, atol=1e-4)
    listed = features.excluded.set_index("neuron")["reason"]
    assert sorted(listed.index) == sorted(constant)
    for neuron in dead:
        assert listed[neuron] == "constant at 0 (dead: never active)"
        assert f"E_{epoch}/L_" in features.excluded.set_index("neuron")["signature"][neuron]


def test_incoming_weights_of_one_layer(trace):
    epoch = trace.meta["final_weights_epoch"]
    features = emb.neuron_features(trace, emb.FeatureSpec("weights", layers=("hidden_2",)))
    weight = trace.weights(epoch)["hidden_2.weight"]
    info = trace.layer("hidden_2")
    np.testing.assert_allclose(features.raw, weight[features.neuron_ids - info.first_id])
    with pytest.raises(emb.FeatureError, match="one layer"):
        emb.neuron_features(trace, emb.FeatureSpec("weights", layers=("hidden_1", "hidden_2")))
    with pytest.raises(emb.FeatureError, match="keep_weights=True"):
        emb.neuron_features(trace, emb.FeatureSpec("weights", epoch=1))


def test_a_trace_without_probe_says_why_per_sample_features_cannot_be_built():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    model = nt.TraceableNN(net, example_input=x[:4], epoch_intervals=[1], num_epochs=1)
    model.start_epoch(1)
    nn.functional.cross_entropy(model(x), y).backward()
    model.end_epoch(1)
    streamed = model.finish()
    for kind in ("response", "activations"):
        with pytest.raises(emb.FeatureError, match="no probe"):
            emb.neuron_features(streamed, emb.FeatureSpec(kind))
    assert emb.neuron_features(streamed, emb.FeatureSpec("trajectory")).n_rows > 0


def test_joint_features_stack_every_epoch_in_one_scaled_space(trace):
    spec = emb.FeatureSpec("metrics", metrics=("act_mean", "act_std", "w_norm"))
    joint = emb.neuron_features(trace, spec, epochs=trace.epochs)
    n_hidden = _hidden_ids(trace).size
    assert joint.n_rows + len(joint.excluded) == n_hidden * len(trace.epochs)
    np.testing.assert_allclose(joint.values.mean(0), 0, atol=1e-5)  # pooled over epochs
    assert sorted(set(joint.epochs)) == trace.epochs
    embedded = emb.joint_embedding(trace, spec, emb.NeuronProjector("pca"))
    assert len(embedded.frame) == joint.n_rows
    assert embedded.epochs == trace.epochs
    assert emb.thin_epochs(list(range(11)), 100, 300) == [0, 5, 10]


# -- projection ---------------------------------------------------------------------------------
def test_pca_matches_the_svd():
    X, _ = planted()
    projector = emb.NeuronProjector("pca").fit(X)
    centred = X.astype(np.float64) - X.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    ratio = s**2 / (s**2).sum()
    np.testing.assert_allclose(projector.explained_variance_ratio_, ratio[:10], rtol=1e-4)
    expected = centred @ vt[:2].T
    signs = np.sign((projector.embedding_ * expected).sum(0))
    np.testing.assert_allclose(projector.embedding_ * signs, expected, rtol=1e-3, atol=1e-3)


def _recovered(coords: np.ndarray, truth: np.ndarray) -> float:
    labels = emb.NeuronClusterer("kmeans", n_clusters=int(truth.max()) + 1).fit(coords).labels_
    return adjusted_rand_score(truth, labels)


@pytest.mark.parametrize("backend", ["sklearn", "opentsne"])
def test_tsne_keeps_planted_groups_apart(backend):
    X, truth = planted(n_per_group=40, n_features=60)
    projector = emb.NeuronProjector("tsne", tsne_backend=backend, perplexity=20).fit(X)
    assert projector.backend_ == {"sklearn": "sklearn", "opentsne": "openTSNE"}[backend]
    assert any("principal components" in note for note in projector.notes_)  # 60 > 50
    assert _recovered(projector.embedding_, truth) > 0.95


def test_tsne_lowers_the_perplexity_for_few_neurons():
    X, _ = planted(n_per_group=5)
    projector = emb.NeuronProjector("tsne", perplexity=30).fit(X)
    assert projector.perplexity_ == pytest.approx((15 - 1) / 3)
    assert "perplexity lowered" in projector.notes_[0]


def test_two_umap_projections_at_once_in_threads_both_finish():
    X, truth = planted(n_per_group=50)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def project(seed: int) -> None:
        try:
            results[seed] = emb.NeuronProjector("umap", random_state=seed).fit_transform(X)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=project, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for coords in results.values():
        assert coords.shape == (X.shape[0], 2)
        assert _recovered(coords, truth) > 0.95
    assert numba_guard.numba_has_run()


_CONCURRENT = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    from numba import njit, prange
    from nn_tracing.analysis import numba_guard

    @njit(parallel=True, cache=False)
    def work(x):
        total = 0.0
        for i in prange(x.size):
            total += np.sqrt(x[i]) * np.sin(x[i])
        return total

    x = np.random.default_rng(0).random(200_000)
    work(x)
    locked = sys.argv[1] == "lock"

    def run():
        if locked:  # two UMAP projections at once, as two sessions of a server would
            from nn_tracing.analysis.embedding import NeuronProjector

            data = np.random.default_rng(threading.get_ident() % 1000).normal(size=(300, 8))
            coords = NeuronProjector("umap", n_epochs=50).fit_transform(data)
            assert coords.shape == (300, 2)
            for _ in range(100):
                with numba_guard.numba_section():
                    work(x)
        else:
            for _ in range(200):
                work(x)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import numba
    print("finished under", numba.threading_layer())
    """
)


def test_the_numba_lock_keeps_the_workqueue_layer_from_aborting_the_process(tmp_path):
    """Under ``workqueue`` two threads running parallel numba code abort the process (the
    control shows it); through the lock, two UMAP projections and parallel kernels in two
    threads finish."""
    script = tmp_path / "numba_threads.py"
    script.write_text(_CONCURRENT)
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "PYTHONPATH": str(ROOT)}

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), mode],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    unlocked = run("nolock")  # the failure the lock exists for: it must happen without it
    assert unlocked.returncode != 0
    assert "Concurrent access" in unlocked.stderr or "not threadsafe" in unlocked.stderr
    locked = run("lock")
    assert locked.returncode == 0, locked.stderr[-2000:]
    assert "finished under workqueue" in locked.stdout


# -- clustering ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["kmeans", "hdbscan", "agglomerative"])
def test_clusterers_recover_planted_groups(method):
    X, truth = planted(n_per_group=60)
    clusterer = emb.NeuronClusterer(method, n_clusters=3).fit(X)
    assert adjusted_rand_score(truth, clusterer.labels_) > 0.9
    assert clusterer.n_clusters_ == 3
    assert clusterer.silhouette_ > 0.5
    sizes = np.bincount(clusterer.labels_[clusterer.labels_ >= 0])
    assert list(sizes) == sorted(sizes, reverse=True)  # numbered by size


def test_large_agglomerative_fits_a_sample_and_assigns_the_rest():
    X, truth = planted(n_per_group=100)
    clusterer = emb.NeuronClusterer("agglomerative", n_clusters=3, max_agglomerative=120).fit(X)
    assert clusterer.labels_.shape == truth.shape
    assert adjusted_rand_score(truth, clusterer.labels_) > 0.9
    assert "random sample of 120" in clusterer.notes_[0]


def test_scores_match_brute_force():
    X, truth = planted(n_per_group=15)
    labels = truth.copy()
    labels[:3] = -1  # noise is left out
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1).astype(np.float64))
    keep = labels >= 0
    values = []
    for i in np.flatnonzero(keep):
        same = keep & (labels == labels[i])
        same[i] = False
        a = D[i, same].mean()
        b = min(D[i, keep & (labels == c)].mean() for c in set(labels[keep]) - {labels[i]})
        values.append((b - a) / max(a, b))
    assert emb.silhouette(X, labels) == pytest.approx(np.mean(values), rel=1e-5)
    Xk = X[keep].astype(np.float64)
    total = ((Xk - Xk.mean(0)) ** 2).sum()
    within = sum(
        ((Xk[labels[keep] == c] - Xk[labels[keep] == c].mean(0)) ** 2).sum() for c in range(3)
    )
    assert emb.variance_explained(X, labels) == pytest.approx(1 - within / total, rel=1e-6)
    assert np.isnan(emb.silhouette(X, np.zeros(len(X), dtype=int)))


def test_the_silhouette_is_exact_over_every_row_of_a_large_set():
    """Several blocks of rows, a singleton cluster and unsorted labels: the value of
    scikit-learn's silhouette over all rows (no sample)."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3001, 12)) + np.repeat(np.eye(12)[:4] * 3, [1000, 1000, 1000, 1], axis=0)
    labels = np.repeat([2, 0, 3, 1], [1000, 1000, 1000, 1])
    shuffle = rng.permutation(labels.size)
    X, labels = X[shuffle], labels[shuffle]
    assert emb.silhouette(X, labels) == pytest.approx(silhouette_score(X, labels), rel=1e-9)


def test_cluster_summary_sizes_layers_profiles_and_typical_neurons(trace):
    features = emb.neuron_features(trace, emb.FeatureSpec("metrics"))
    labels = emb.NeuronClusterer("kmeans", n_clusters=3).fit(features.values).labels_
    summary = emb.cluster_summary(features, labels, n_typical=2)
    assert summary.table["size"].sum() == features.n_rows
    for c in range(3):
        members = np.flatnonzero(labels == c)
        row = summary.table.set_index("cluster").loc[c]
        assert row["size"] == members.size
        layers, counts = np.unique(features.layers[members], return_counts=True)
        assert row["n_layers"] == layers.size
        for layer, count in zip(layers, counts):
            assert f"{layer}: {count}" in row["layers"]
        center = features.values[members].mean(0)
        distance = np.linalg.norm(features.values[members] - center, axis=1)
        nearest = features.neuron_ids[members[np.argmin(distance)]]
        typical = summary.typical[summary.typical["cluster"] == c]
        assert typical["neuron"].iloc[0] == nearest
        profile = summary.profiles[summary.profiles["cluster"] == c]
        np.testing.assert_allclose(profile["mean"], features.values[members].mean(0), rtol=1e-5)


def test_estimates_grow_with_the_neurons():
    for method in ("pca", "tsne", "umap", "kmeans", "hdbscan", "agglomerative"):
        assert emb.estimate_seconds(method, 1000) < emb.estimate_seconds(method, 20000)
    assert emb.estimate_seconds("tsne", 20000) > 10
