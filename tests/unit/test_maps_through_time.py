"""Maps through time (nn_tracing/analysis/embedding/through_time.py, mphate.py, aligned.py,
faithfulness.py, vis_entropy.py) on a real run with planted frozen and moving neurons."""

from __future__ import annotations

import itertools

import numpy as np
import phate
import pytest
import torch
from scipy import sparse
from torch import nn
from torch.nn import functional as F

from nn_tracing import TraceableNN
from nn_tracing.analysis import embedding as emb
from nn_tracing.analysis.embedding.faithfulness import (
    across_epoch_preservation,
    steps,
    within_epoch_preservation,
)
from nn_tracing.analysis.embedding.joint import time_features, unchanged_runs
from nn_tracing.analysis.embedding.mphate import interslice_bandwidth, row_zscore

#: Neurons 0..FROZEN-1 of the first hidden layer never change (their incoming gradient is
#: zeroed, plain SGD): their probe activations are bit-for-bit the same at every epoch. The next
#: NEAR neurons are frozen too but nudged by a tiny kick after every epoch (their features change
#: by far less than 1 % of the distance between two neurons); the others train and get a large
#: kick, so that they clearly move.
FROZEN = 12
NEAR = 8
HIDDEN = 32
EPOCHS = 6


@pytest.fixture(scope="module")
def planted():
    """A real 2-32-2 tanh MLP trained for six epochs with FROZEN frozen, NEAR nearly frozen and
    the other hidden neurons trained and kicked (gradient hooks on the rows of the first layer's
    weight and bias; kicks on its incoming weights after every epoch)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=generator)
    y = ((x[:, 0] * x[:, 1]) > 0).long()
    net = nn.Sequential(nn.Linear(2, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 2))
    mask = torch.ones(HIDDEN, 1)
    mask[: FROZEN + NEAR] = 0.0
    net[0].weight.register_hook(lambda g: g * mask)
    net[0].bias.register_hook(lambda g: g * mask[:, 0])
    model = TraceableNN(net, probe=(x[:96], y[:96]), num_epochs=EPOCHS, loss_fn=F.cross_entropy)
    optimiser = torch.optim.SGD(net.parameters(), lr=1.0)
    for epoch in range(1, EPOCHS + 1):
        model.start_epoch(epoch)
        for batch in torch.split(torch.arange(96, 400), 32):
            optimiser.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
        with torch.no_grad():
            nudge = torch.randn(NEAR, 2, generator=generator)
            net[0].weight[FROZEN : FROZEN + NEAR] += 1e-3 * nudge
            kick = torch.randn(HIDDEN - FROZEN - NEAR, 2, generator=generator)
            net[0].weight[FROZEN + NEAR :] += 3.0 * kick
        model.end_epoch(epoch)
    trace = model.finish()
    layer = trace.layers[1].name
    first = trace.neural_index[layer][0]
    return trace, emb.FeatureSpec("activations", layers=(layer,)), first


def test_the_planted_neurons_really_are_frozen_nearly_frozen_and_moving(planted) -> None:
    trace, _, first = planted
    acts = np.stack([trace.probe_activations(e) for e in trace.epochs])
    frozen = acts[:, :, first : first + FROZEN]
    near = acts[:, :, first + FROZEN : first + FROZEN + NEAR]
    moving = acts[:, :, first + FROZEN + NEAR : first + HIDDEN]
    assert (frozen == frozen[:1]).all()
    assert (np.abs(np.diff(near, axis=0)).max(axis=1) > 0).all()
    assert (np.abs(np.diff(moving, axis=0)).max(axis=1) > 1e-3).all()
    # nearly frozen: each step far below 1 % of the RMS distance between two neurons
    layer = acts[:, :, first : first + HIDDEN].transpose(0, 2, 1)  # epoch, neuron, probe
    scale = np.sqrt(2 * ((layer - layer.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean())
    near_steps = np.linalg.norm(np.diff(near, axis=0), axis=1)
    assert (near_steps < 0.01 * scale).all()


def _steps_by_group(frame, first: int) -> dict[str, np.ndarray]:
    """Each planted group's map steps, as a share of the map's extent."""
    extent = float(np.ptp(frame[["x", "y"]].to_numpy(), axis=0).max())
    step = {}
    for neuron, rows in frame.sort_values("epoch").groupby("neuron"):
        step[int(neuron)] = np.linalg.norm(np.diff(rows[["x", "y"]].to_numpy(), axis=0), axis=1)
    bounds = {
        "frozen": (0, FROZEN),
        "near": (FROZEN, FROZEN + NEAR),
        "moving": (FROZEN + NEAR, HIDDEN),
    }
    return {
        name: np.concatenate([step[first + i] for i in range(lo, hi)]) / extent
        for name, (lo, hi) in bounds.items()
    }


def _nearly_unchanged_steps(trace, spec, frame) -> np.ndarray:
    """Brute force: the map steps (share of the extent) of every (neuron, step) whose feature
    row changed by more than 0 and at most 1 % of the RMS distance between two neurons of one
    epoch (the planted nearly frozen neurons, and any trained neuron that barely changed)."""
    features, _, _ = time_features(trace, spec)
    rows = {
        (int(n), int(e)): features.values[i]
        for i, (n, e) in enumerate(zip(features.neuron_ids, features.epochs, strict=True))
    }
    squared = [
        float(np.sum((rows[a, e] - rows[b, e]) ** 2))
        for e in trace.epochs
        for a in {n for n, _ in rows}
        for b in {n for n, _ in rows}
    ]
    scale = np.sqrt(np.mean(squared))
    extent = float(np.ptp(frame[["x", "y"]].to_numpy(), axis=0).max())
    xy = {(int(r.neuron), int(r.epoch)): np.array([r.x, r.y]) for r in frame.itertuples()}
    found = []
    for (neuron, epoch), row in rows.items():
        later = [e for e in trace.epochs if e > epoch]
        if not later:
            continue
        change = np.linalg.norm(rows[neuron, later[0]] - row)
        if 0 < change <= 0.01 * scale:
            found.append(np.linalg.norm(xy[neuron, later[0]] - xy[neuron, epoch]) / extent)
    return np.array(found)


@pytest.mark.parametrize("method", list(emb.TIME_MAPS))
def test_frozen_neurons_stay_within_the_noise_floor_and_moving_ones_leave_it(
    planted, method: str
) -> None:
    trace, spec, first = planted
    found = emb.map_through_time(trace, spec, method, params={"random_state": 0})
    frame = found.frame
    assert len(frame) == HIDDEN * len(trace.epochs) and found.method == method
    group = _steps_by_group(frame, first)
    quality = found.faithfulness
    assert quality is not None
    # the noise floor is measured on exactly the frozen neurons' steps, and the nearly-unchanged
    # floor on exactly the nearly frozen ones'
    assert quality.n_unchanged == FROZEN * (len(trace.epochs) - 1)
    assert quality.noise_floor == pytest.approx(group["frozen"].max(), rel=1e-5, abs=1e-9)
    assert quality.noise_floor_95 == pytest.approx(
        np.percentile(group["frozen"], 95), rel=1e-5, abs=1e-9
    )
    near_steps = _nearly_unchanged_steps(trace, spec, frame)
    assert quality.n_near == len(near_steps) >= NEAR * (len(trace.epochs) - 1)
    assert quality.near_floor_95 == pytest.approx(np.percentile(near_steps, 95), rel=1e-5)
    # identical features, identical points: in every method the frozen neurons do not move
    assert group["frozen"].max() == 0.0
    # the neurons that train move beyond the floor, and further than the nearly frozen ones
    assert np.median(group["moving"]) > quality.noise_floor_95, (group, quality)
    assert np.median(group["moving"]) > np.median(group["near"]), (group, quality)
    # the jitter floor (95th percentile of the nearly frozen neurons' steps) sits below the
    # median trained step in every method but aligned UMAP, whose per-epoch layouts move a
    # barely changed neuron when its neighbours move (docs/maps-through-time.md); pinned both
    # ways, so a change to either shows here
    separated = np.median(group["moving"]) > quality.near_floor_95
    assert separated == (method != "aligned_umap"), (group, quality)
    assert "did not change moved at most" in quality.sentence()
    assert "changed by less than 1 %" in quality.sentence()
    assert 0.0 <= quality.within_epoch <= 1.0 and 0.0 <= quality.across_epoch <= 1.0


# -- k-NN preservation against a brute-force reference --------------------------------------------
def _brute_neighbours(points: np.ndarray, i: int, candidates: list[int], k: int) -> set[int]:
    others = [j for j in candidates if j != i]
    distances = [float(np.sum((points[i] - points[j]) ** 2)) for j in others]
    order = sorted(range(len(others)), key=lambda t: (distances[t], t))
    return {others[t] for t in order[:k]}


def test_knn_preservation_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(3)
    n_neurons, n_epochs, k = 9, 7, 4
    neuron_ids = np.tile(np.arange(n_neurons), n_epochs)
    epochs = np.repeat(np.arange(n_epochs), n_neurons)
    values = rng.normal(size=(neuron_ids.size, 5))
    coords = values[:, :2] + 0.3 * rng.normal(size=(neuron_ids.size, 2))
    within, across = [], []
    for i in range(neuron_ids.size):
        same_epoch = [j for j in range(neuron_ids.size) if epochs[j] == epochs[i]]
        a = _brute_neighbours(values, i, same_epoch, k)
        within.append(len(a & _brute_neighbours(coords, i, same_epoch, k)) / k)
        same_neuron = [j for j in range(neuron_ids.size) if neuron_ids[j] == neuron_ids[i]]
        b = _brute_neighbours(values, i, same_neuron, k)
        across.append(len(b & _brute_neighbours(coords, i, same_neuron, k)) / k)
    assert within_epoch_preservation(values, coords, epochs, k) == pytest.approx(np.mean(within))
    score, used = across_epoch_preservation(values, coords, neuron_ids, k)
    assert used == k and score == pytest.approx(np.mean(across))
    # a map that is the features themselves keeps every neighbour
    assert within_epoch_preservation(values, values, epochs, k) == 1.0


def test_steps_flag_exactly_the_unchanged_rows() -> None:
    values = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 2.0], [5.0, 5.0], [5.0, 5.0]])
    coords = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0]])
    moved, unchanged = steps(values, coords, np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 0, 1]))
    assert moved.tolist() == [5.0, 0.0, 0.0] and unchanged.tolist() == [True, False, True]


def test_the_near_floor_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(5)
    n_neurons, n_epochs = 10, 5
    neuron_ids = np.tile(np.arange(n_neurons), n_epochs)
    epochs = np.repeat(np.arange(n_epochs), n_neurons)
    values = np.repeat(rng.normal(size=(1, n_neurons, 4)), n_epochs, axis=0)
    values[1:, :3] += 1e-4 * rng.normal(size=(n_epochs - 1, 3, 4))  # nearly unchanged
    values[1:, 6:] += rng.normal(size=(n_epochs - 1, 4, 4))  # changed
    values = values.reshape(-1, 4)
    coords = rng.normal(size=(values.shape[0], 2))
    quality = emb.faithfulness(values, coords, neuron_ids, epochs, k=3)
    pairwise = [
        float(np.sum((values[i] - values[j]) ** 2))
        for e in range(n_epochs)
        for i in np.flatnonzero(epochs == e)
        for j in np.flatnonzero(epochs == e)
    ]
    scale = np.sqrt(np.mean(pairwise))  # the RMS distance between two neurons of an epoch
    extent = np.ptp(coords, axis=0).max()
    near, still, moving = [], [], []
    for neuron in range(n_neurons):
        for e in range(1, n_epochs):
            a, b = e - 1, e
            i, j = a * n_neurons + neuron, b * n_neurons + neuron
            change = np.linalg.norm(values[j] - values[i])
            step = np.linalg.norm(coords[j] - coords[i]) / extent
            if change == 0:
                still.append(step)
            elif change <= 0.01 * scale:
                near.append(step)
            else:
                moving.append(step)
    assert quality.n_near == len(near) == 3 * (n_epochs - 1)
    assert quality.near_floor_95 == pytest.approx(np.percentile(near, 95))
    assert quality.n_unchanged == len(still) == 3 * (n_epochs - 1)
    assert quality.noise_floor == pytest.approx(max(still))
    # the moving median leaves the nearly unchanged steps to the near floor
    assert quality.n_moving == len(moving) == 4 * (n_epochs - 1)
    assert quality.moving_median == pytest.approx(np.median(moving))


def test_unchanged_runs_join_only_a_neurons_consecutive_identical_rows() -> None:
    # rows out of order; neuron 0: a a b a (the return to a is a new run); neuron 1: c c c;
    # neuron 2 holds neuron 0's row a but is another neuron
    a, b, c = [1.0, 2.0], [1.0, 3.0], [0.0, 0.0]
    table = [(0, 0, a), (0, 1, a), (0, 2, b), (0, 3, a), (1, 0, c), (1, 1, c), (1, 2, c)]
    table += [(2, 0, a), (2, 1, b)]
    order = np.random.default_rng(0).permutation(len(table))
    neuron_ids = np.array([table[i][0] for i in order])
    epochs = np.array([table[i][1] for i in order])
    values = np.array([table[i][2] for i in order])
    runs = unchanged_runs(values, neuron_ids, epochs)
    by_key = {(int(n), int(e)): int(r) for n, e, r in zip(neuron_ids, epochs, runs, strict=True)}
    assert by_key[0, 0] == by_key[0, 1] != by_key[0, 2] != by_key[0, 3] != by_key[0, 0]
    assert by_key[1, 0] == by_key[1, 1] == by_key[1, 2] != by_key[0, 0]
    assert len({by_key[2, 0], by_key[2, 1], by_key[0, 0]}) == 3
    assert sorted(set(runs.tolist())) == list(range(6))


def test_m_phate_merges_each_run_of_identical_rows_into_one_node_of_the_papers_graph() -> None:
    rng = np.random.default_rng(2)
    n_neurons, n_epochs = 12, 4
    neuron_ids = np.tile(np.arange(n_neurons), n_epochs)
    epochs = np.repeat(np.arange(n_epochs), n_neurons)
    values = rng.normal(size=(neuron_ids.size, 5))
    values[neuron_ids == 0] = values[0]  # neuron 0 never changes: one node
    values[(neuron_ids == 1) & (epochs == 2)] = values[(neuron_ids == 1) & (epochs == 1)]
    model = emb.MultisliceEmbedder(n_pca=0, random_state=0).fit(values, neuron_ids, epochs)
    runs = model.runs_
    assert model.affinity_.shape == (neuron_ids.size - 4, neuron_ids.size - 4)
    # the quotient of the paper's row graph: the edge between two nodes sums their rows' edges
    rows = emb.multislice_affinity(values, neuron_ids, epochs).toarray()
    expected = np.zeros(model.affinity_.shape)
    for i, j in itertools.product(range(neuron_ids.size), repeat=2):
        expected[runs[i], runs[j]] += rows[i, j]
    np.testing.assert_allclose(model.affinity_.toarray(), expected, rtol=1e-12, atol=1e-15)
    # identical rows of a neuron, one point; no identical rows: the paper's graph as it is
    xy = model.embedding_
    assert (xy[neuron_ids == 0] == xy[0]).all()
    assert (xy[(neuron_ids == 1) & (epochs == 2)] == xy[(neuron_ids == 1) & (epochs == 1)]).all()
    assert len({tuple(p) for p in xy.tolist()}) == neuron_ids.size - 4
    nudged = values + 1e-9 * np.arange(values.size).reshape(values.shape)  # no two rows equal
    distinct = emb.MultisliceEmbedder(n_pca=0).fit(nudged, neuron_ids, epochs)
    assert distinct.affinity_.shape == (neuron_ids.size, neuron_ids.size)
    # the points are PHATE's of that graph, each at its own row (merged: at each of its rows)
    for model_, graph, rows_of in ((model, expected, runs), (distinct, None, None)):
        if graph is None:
            graph = emb.multislice_affinity(nudged, neuron_ids, epochs)
        direct = phate.PHATE(
            knn_dist="precomputed_affinity", gamma=0, random_state=0, n_jobs=1, verbose=0
        ).fit_transform(sparse.csr_matrix(graph))
        direct = direct if rows_of is None else direct[rows_of]
        np.testing.assert_allclose(model_.embedding_, direct, rtol=1e-4, atol=1e-5)


# -- the multislice kernel against a brute-force construction --------------------------------------
def _brute_kernel(values, neuron_ids, epochs, knn, decay, interslice_knn, threshold):
    X = row_zscore(values)
    n = X.shape[0]
    dist = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))
    K = np.zeros((n, n))
    for i in range(n):
        same = [j for j in range(n) if epochs[j] == epochs[i] and j != i]
        sigma = sorted(dist[i, same])[knn - 1]
        for j in same:
            w = np.exp(-((dist[i, j] / sigma) ** decay))
            K[i, j] = w if w >= threshold else 0.0
    K = (K + K.T) / 2
    medians = []
    for neuron in np.unique(neuron_ids):
        rows = np.flatnonzero(neuron_ids == neuron)
        kth = [sorted(dist[r, rows])[min(interslice_knn, rows.size - 1)] for r in rows]
        medians.append(np.median(kth))
    eps = np.mean(medians)
    for i, j in itertools.permutations(range(n), 2):
        if neuron_ids[i] == neuron_ids[j]:
            w = np.exp(-((dist[i, j] / eps) ** 2))
            K[i, j] += w if w >= threshold else 0.0
    return K + np.eye(n), eps


def test_the_multislice_kernel_matches_a_brute_force_construction() -> None:
    rng = np.random.default_rng(1)
    n_neurons, n_epochs = 8, 4
    neuron_ids = np.tile(np.arange(n_neurons), n_epochs)
    epochs = np.repeat(np.arange(n_epochs), n_neurons)
    values = rng.normal(size=(neuron_ids.size, 6))
    values[n_neurons:] += 0.4 * rng.normal(size=(neuron_ids.size - n_neurons, 6))  # drift
    K = emb.multislice_affinity(values, neuron_ids, epochs, knn=2, decay=5, interslice_knn=3)
    assert sparse.issparse(K)
    dense = K.toarray()
    expected, eps = _brute_kernel(values, neuron_ids, epochs, 2, 5.0, 3, 1e-4)
    assert interslice_bandwidth(
        row_zscore(values), [np.flatnonzero(neuron_ids == i) for i in range(n_neurons)], 3
    ) == pytest.approx(eps)
    np.testing.assert_allclose(dense, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(dense, dense.T)  # symmetric
    # structure: an edge joins two rows only within one epoch or within one neuron
    i, j = np.nonzero(dense)
    assert ((epochs[i] == epochs[j]) | (neuron_ids[i] == neuron_ids[j])).all()
    across = epochs[i] != epochs[j]
    assert (neuron_ids[i][across] == neuron_ids[j][across]).all() and across.any()
    # within an epoch every neuron keeps at least its knn nearest neurons
    assert (np.diag(dense) == 1.0).all()


def test_the_multislice_kernel_refuses_two_rows_of_one_neuron_at_one_epoch() -> None:
    with pytest.raises(ValueError, match="more than one row"):
        emb.multislice_affinity(np.ones((2, 3)), np.array([0, 0]), np.array([1, 1]))


# -- visualisation entropy -------------------------------------------------------------------------
def test_visualisation_entropy_is_the_histograms_shannon_entropy() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(size=(500, 2))
    counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=10)
    p = counts.ravel() / counts.sum()
    expected = -np.sum(p[p > 0] * np.log2(p[p > 0]))
    assert emb.visualisation_entropy(points) == pytest.approx(expected)
    assert emb.visualisation_entropy(np.zeros((5, 2))) == 0.0


def test_a_runs_visualisation_entropy_scores_its_mphate_map(planted) -> None:
    trace, spec, _ = planted
    found = emb.run_visualisation_entropy(trace, spec, random_state=0)
    coords = found.embedding.frame[["x", "y"]].to_numpy()
    assert found.embedding.method == "mphate"
    assert found.score == pytest.approx(emb.visualisation_entropy(coords))
    assert 0.0 < found.score <= np.log2(100)
    assert list(found.by_epoch.index) == trace.epochs
