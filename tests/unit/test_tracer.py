"""TraceableNN against an independent numpy brute force on tiny networks.

Every metric column is recomputed in float64 numpy from the weights the test itself snapshots
during its own training loop — nothing is read back from the tracer's internals.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nn_tracing import METRICS, TraceableNN

RTOL, ATOL = 2e-4, 2e-5


# --------------------------------------------------------------------------- numpy reference


def np_act(name: str | None, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    return z


def np_act_grad(name: str | None, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    return np.ones_like(z)


def np_forward(state: dict, x: np.ndarray, spec):
    """spec: [(weight_key, bias_key, activation)], returns (pre-activations, activations)."""
    pre, post, h = [], [], x.astype(np.float64)
    for wkey, bkey, act in spec:
        z = h @ state[wkey].astype(np.float64).T + state[bkey].astype(np.float64)
        h = np_act(act, z)
        pre.append(z)
        post.append(h)
    return pre, post


def np_grads(state: dict, x: np.ndarray, y: np.ndarray, spec) -> list[np.ndarray]:
    """Gradients of the mean cross-entropy w.r.t. every weight matrix (manual backprop)."""
    pre, post = np_forward(state, x, spec)
    logits = post[-1]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(logits.shape[1])[y]
    delta = (p - onehot) / len(y)  # d loss / d logits
    grads = [None] * len(spec)
    for i in range(len(spec) - 1, -1, -1):
        delta = delta * np_act_grad(spec[i][2], pre[i])
        inputs = x.astype(np.float64) if i == 0 else post[i - 1]
        grads[i] = delta.T @ inputs
        delta = delta @ state[spec[i][0]].astype(np.float64)
    return grads


def np_selectivity(acts: np.ndarray, y: np.ndarray) -> np.ndarray:
    classes = np.unique(y)
    floor = np.minimum(acts.min(0), 0)
    means = np.stack([acts[y == c].mean(0) for c in classes]) - floor
    top = means.max(0)
    rest = (means.sum(0) - top) / (len(classes) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        si = (top - rest) / (top + rest)
    return np.where(top + rest > 1e-12, si, np.nan)


def act_columns(acts: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "act_mean": acts.mean(0),
        "act_std": acts.std(0),
        "act_min": acts.min(0),
        "act_max": acts.max(0),
        "act_active": (acts > 0).mean(0),
    }


def weight_columns(w: np.ndarray, b: np.ndarray, previous: np.ndarray | None) -> dict:
    w = w.reshape(w.shape[0], -1).astype(np.float64)
    cols = {
        "w_mean": w.mean(1),
        "w_std": w.std(1),
        "w_norm": np.sqrt((w**2).sum(1)),
        "w_absmax": np.abs(w).max(1),
        "bias": b.astype(np.float64),
    }
    if previous is not None:
        prev = previous.reshape(previous.shape[0], -1)
        cols["w_drift"] = np.sqrt(((w - prev) ** 2).sum(1))
    return cols


def assemble(blocks: list[dict[str, np.ndarray]], sizes: list[int]) -> np.ndarray:
    out = np.full((sum(sizes), len(METRICS)), np.nan)
    start = 0
    for cols, size in zip(blocks, sizes):
        for name, values in cols.items():
            out[start : start + size, METRICS.index(name)] = values
        start += size
    return out


def reference_probe_metrics(state, previous, x, y, spec):
    _, post = np_forward(state, x, spec)
    grads = np_grads(state, x, y, spec)
    blocks = [{**act_columns(x.astype(np.float64)), "selectivity": np_selectivity(x, y)}]
    for i, (wkey, bkey, _) in enumerate(spec):
        cols = weight_columns(state[wkey], state[bkey], previous[wkey] if previous else None)
        cols.update(act_columns(post[i]))
        cols["selectivity"] = np_selectivity(post[i], y)
        cols["grad_norm"] = np.sqrt((grads[i] ** 2).sum(1))
        blocks.append(cols)
    sizes = [x.shape[1]] + [state[w].shape[0] for w, _, _ in spec]
    return assemble(blocks, sizes), post


def assert_metrics_close(actual: np.ndarray, expected: np.ndarray, label: str) -> None:
    for j, name in enumerate(METRICS):
        np.testing.assert_allclose(
            actual[:, j],
            expected[:, j],
            rtol=RTOL,
            atol=ATOL,
            equal_nan=True,
            err_msg=f"{label}: column {name}",
        )


def snapshot(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
    ),
]


# --------------------------------------------------------------------------- fixtures

SPEC = [
    ("0.weight", "0.bias", "tanh"),
    ("2.weight", "2.bias", "relu"),
    ("4.weight", "4.bias", None),
]


def make_net(device: str = "cpu") -> nn.Sequential:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    return net.to(device)


def make_data(n: int = 60, seed: int = 0, device: str = "cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x.to(device), y.to(device)


def host(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def user_loop(model, module, x, y, epochs, batch=16, on_batch=None, lr=0.5):
    opt = torch.optim.SGD(module.parameters(), lr=lr)
    snaps = {0: snapshot(module)}
    for epoch in range(1, epochs + 1):
        model.start_epoch(epoch)
        model.train()
        for start in range(0, len(x), batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            if on_batch is not None:
                on_batch(epoch, snapshot(module), host(xb), host(yb))
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.log_step(loss)
        model.end_epoch(epoch, train_loss=float(loss.detach()))
        snaps[epoch] = snapshot(module)
    return snaps


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("device", DEVICES)
def test_every_metric_matches_numpy_with_a_probe(device):
    module = make_net(device)
    x, y = make_data(device=device)
    xp, yp = make_data(24, seed=1, device=device)
    model = TraceableNN(module, probe=(xp, yp), epoch_intervals=None, keep_weights=True)
    snaps = user_loop(model, module, x, y, epochs=3)
    trace = model.finish()
    assert trace.epochs == [0, 1, 2, 3]
    previous = None
    for epoch in trace.epochs:
        expected, post = reference_probe_metrics(snaps[epoch], previous, host(xp), host(yp), SPEC)
        assert_metrics_close(trace.metrics_at(epoch), expected, f"E_{epoch}")
        acts = trace.probe_activations(epoch)
        np.testing.assert_allclose(acts[:, :3], host(xp))
        np.testing.assert_allclose(acts[:, 3:8], post[0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(trace.logits(epoch), post[-1], rtol=RTOL, atol=ATOL)
        assert np.array_equal(trace.predictions(epoch), post[-1].argmax(1))
        kept = trace.weights(epoch)
        assert all(np.array_equal(kept[k], snaps[epoch][k]) for k in snaps[epoch])
        previous = snaps[epoch]
    # probe loss / accuracy in the history
    logits = np_forward(snaps[3], host(xp), SPEC)[1][-1]
    assert trace.history.set_index("epoch").loc[3, "probe_acc"] == pytest.approx(
        (logits.argmax(1) == host(yp)).mean()
    )


@pytest.mark.parametrize("device", DEVICES)
def test_without_a_probe_statistics_stream_over_training_batches(device):
    module = make_net(device)
    x, y = make_data(48, device=device)
    batches: dict[int, list] = {}

    def on_batch(epoch, state, xb, yb):
        batches.setdefault(epoch, []).append((state, xb, yb))

    model = TraceableNN(module, example_input=x[:7], epoch_intervals=[2], num_epochs=3)
    initial = snapshot(module)
    snaps = user_loop(model, module, x, y, epochs=3, on_batch=on_batch)
    trace = model.finish()
    assert trace.epochs == [0, 2]
    assert trace.probe is None
    assert trace.meta["statistics_source"] == "training batches"

    # E_0: activation statistics on example_input, no gradient
    _, post0 = np_forward(initial, host(x[:7]), SPEC)
    expected0 = assemble(
        [act_columns(host(x[:7]).astype(np.float64))]
        + [
            {**weight_columns(initial[w], initial[b], None), **act_columns(post0[i])}
            for i, (w, b, _) in enumerate(SPEC)
        ],
        [3, 5, 4, 3],
    )
    assert_metrics_close(trace.metrics_at(0), expected0, "E_0")

    # E_2: every training batch of epoch 2, each with the weights of its own step
    acts = [[] for _ in SPEC]
    inputs, grad_sq = [], [0.0 for _ in SPEC]
    for state, xb, yb in batches[2]:
        _, post = np_forward(state, xb, SPEC)
        for i in range(len(SPEC)):
            acts[i].append(post[i])
        inputs.append(xb)
        for i, g in enumerate(np_grads(state, xb, yb, SPEC)):
            grad_sq[i] = grad_sq[i] + (g**2).sum(1)
    n_batches = len(batches[2])
    blocks = [act_columns(np.concatenate(inputs).astype(np.float64))]
    for i, (w, b, _) in enumerate(SPEC):
        cols = weight_columns(snaps[2][w], snaps[2][b], initial[w])
        cols.update(act_columns(np.concatenate(acts[i])))
        cols["grad_norm"] = np.sqrt(grad_sq[i] / n_batches)
        blocks.append(cols)
    assert_metrics_close(trace.metrics_at(2), assemble(blocks, [3, 5, 4, 3]), "E_2")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("block", [None, 2], ids=["default block", "block of 2 steps"])
def test_per_step_statistics_match_numpy(device, block, monkeypatch):
    """With a block of 2 steps, the block fills, is reduced (its values clamped in place for
    the counts) and refilled within each epoch of 3 steps."""
    if block is not None:
        from nn_tracing.tracer import _steps

        monkeypatch.setattr(_steps, "_BLOCK", block)
        monkeypatch.setattr(_steps, "_MIN_BLOCK", 1)
    module = make_net(device)
    x, y = make_data(48, device=device)
    seen = []
    model = TraceableNN(
        module, probe=make_data(12, 2, device=device), epoch_intervals=-1, drop_batches=False
    )
    user_loop(
        model, module, x, y, epochs=2, on_batch=lambda e, s, xb, yb: seen.append((e, s, xb, yb))
    )
    trace = model.finish()
    steps = trace.steps
    assert list(steps["layer"].unique()) == ["0", "2", "4"]
    assert steps["step"].max() == len(seen) == 6
    for step, (epoch, state, xb, yb) in enumerate(seen, start=1):
        _, post = np_forward(state, xb, SPEC)
        grads = np_grads(state, xb, yb, SPEC)
        logits = post[-1]
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(yb)), yb]).mean()
        rows = steps[steps["step"] == step].set_index("layer")
        for i, (wkey, _, _) in enumerate(SPEC):
            row = rows.loc[wkey.split(".")[0]]
            assert row["epoch"] == epoch
            np.testing.assert_allclose(
                [
                    row["act_mean"],
                    row["act_std"],
                    row["act_active"],
                    row["w_norm"],
                    row["grad_norm"],
                    row["loss"],
                ],
                [
                    post[i].mean(),
                    post[i].std(),
                    (post[i] > 0).mean(),
                    np.sqrt((state[wkey].astype(np.float64) ** 2).sum()),
                    np.sqrt((grads[i] ** 2).sum()),
                    loss,
                ],
                rtol=1e-4,
                atol=1e-5,
            )


def _cnn_step_reference(state: dict, xb: np.ndarray, yb: np.ndarray) -> dict[str, dict]:
    """The built-in CNN's forward pass and weight gradients in float64 torch functions on a
    snapshot of its weights (not the module): per layer, the activation, weight and gradient."""
    w = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in state.items()}
    x = torch.tensor(xb, dtype=torch.float64)
    h1 = F.relu(F.conv2d(x, w["conv_1.weight"], w["conv_1.bias"], padding=1))
    h2 = F.relu(F.conv2d(h1, w["conv_2.weight"], w["conv_2.bias"], padding=1))
    logits = F.adaptive_avg_pool2d(h2, 2).flatten(1) @ w["output.weight"].T + w["output.bias"]
    loss = F.cross_entropy(logits, torch.as_tensor(yb))
    loss.backward()
    return {
        name: {"act": act.detach().numpy(), "weight": w[f"{name}.weight"], "loss": loss.item()}
        for name, act in (("conv_1", h1), ("conv_2", h2), ("output", logits))
    }


@pytest.mark.parametrize("device", DEVICES)
def test_per_step_statistics_of_a_cnn_match_a_reference(device):
    # the built-in CNN: a conv layer's step statistics run over every (sample, channel,
    # position) value of its activation, its norms over the whole 4-d weight
    from nn_tracing.models_cnn import CNN

    torch.manual_seed(0)
    module = CNN((1, 6, 6), 3, channels=(3, 4)).to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 6, 6, generator=g)
    y = (x[:, 0, :3].mean((1, 2)) > 0).long() + (x[:, 0, 3:].mean((1, 2)) > 0.2).long()
    x, y = x.to(device), y.to(device)
    seen = []
    model = TraceableNN(module, probe=(x[:8], y[:8]), epoch_intervals=-1, drop_batches=False)
    user_loop(
        model, module, x, y, epochs=2, lr=0.1,
        on_batch=lambda e, s, xb, yb: seen.append((e, s, xb, yb)),
    )  # fmt: skip
    steps = model.finish().steps
    assert sorted(steps["layer"].unique()) == ["conv_1", "conv_2", "output"]
    assert steps["step"].max() == len(seen) == 4
    for step, (epoch, state, xb, yb) in enumerate(seen, start=1):
        reference = _cnn_step_reference(state, xb, yb)
        rows = steps[steps["step"] == step].set_index("layer")
        for name, ref in reference.items():
            row, act = rows.loc[name], ref["act"]
            assert row["epoch"] == epoch
            np.testing.assert_allclose(
                [row[c] for c in ("act_mean", "act_std", "act_active", "w_norm", "grad_norm")]
                + [row["loss"]],
                [
                    act.mean(),
                    act.std(),
                    (act > 0).mean(),
                    float(ref["weight"].detach().norm()),
                    float(ref["weight"].grad.norm()),
                    ref["loss"],
                ],
                rtol=1e-4,
                atol=1e-5,
                err_msg=f"step {step}, {name}",
            )


class Branchy(nn.Module):
    """A non-Sequential forward: b runs before a, a functional relu, a shared activation."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(4, 3)
        self.c = nn.Linear(5, 5)
        self.act = nn.Tanh()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        hb = F.relu(self.b(x))
        ha = self.act(self.c(self.act(self.a(x))))
        return self.head(torch.cat([ha, hb], 1))


def test_custom_module_ids_follow_call_order_and_shared_activations():
    torch.manual_seed(0)
    net = Branchy()
    x = torch.randn(20, 4)
    y = torch.randint(0, 2, (20,))
    model = TraceableNN(net, probe=(x, y))
    assert model.neural_index == {
        "input": (0, 3),
        "b": (4, 6),
        "a": (7, 11),
        "c": (12, 16),
        "head": (17, 18),
    }
    layers = {info.name: info for info in model.layers}
    assert layers["b"].activation is None  # functional relu is invisible: pre-activation
    assert layers["a"].activation == "Tanh" and layers["c"].activation == "Tanh"
    assert layers["head"].activation is None
    trace = model.network_trace
    acts = trace.probe_activations(0)
    with torch.no_grad():
        a = torch.tanh(net.a(x))
        c = torch.tanh(net.c(a))
        b = net.b(x)
    np.testing.assert_allclose(acts[:, 4:7], b.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(acts[:, 7:12], a.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(acts[:, 12:17], c.numpy(), rtol=1e-6, atol=1e-6)


def test_wrapper_behaves_like_the_module():
    torch.manual_seed(0)
    net = Branchy()
    keys = list(net.state_dict())
    params = list(net.parameters())
    model = TraceableNN(net, example_input=torch.randn(2, 4))
    assert list(model.state_dict()) == keys
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    x = torch.randn(5, 4)
    assert torch.equal(model(x), net(x))
    model.eval()
    assert not net.training and not net.a.training
    model.train()
    assert net.training
    model.load_state_dict(net.state_dict())
    assert model.head is net.head


def test_conv2d_channels_are_neurons_pooled_over_positions():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2))
    x = torch.randn(6, 2, 4, 4)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    model = TraceableNN(net, probe=(x, y))
    assert model.neural_index == {"input": (0, 1), "0": (2, 4), "3": (5, 6)}
    info = {i.name: i for i in model.layers}["0"]
    assert info.kind == "conv2d" and info.activation == "ReLU" and info.fan_in == 18
    # numpy convolution, by hand
    w = net[0].weight.detach().numpy().astype(np.float64)
    b = net[0].bias.detach().numpy().astype(np.float64)
    xp = np.pad(x.numpy().astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((6, 3, 4, 4))
    for i in range(4):
        for j in range(4):
            out[:, :, i, j] = np.einsum("nckl,ockl->no", xp[:, :, i : i + 3, j : j + 3], w) + b
    out = np.maximum(out, 0)
    values = out.transpose(0, 2, 3, 1).reshape(-1, 3)  # every (sample, position) of a channel
    metrics = model.network_trace.metrics_at(0)
    for name, expected in act_columns(values).items():
        np.testing.assert_allclose(
            metrics[2:5, METRICS.index(name)], expected, rtol=1e-5, atol=1e-6, err_msg=name
        )
    np.testing.assert_allclose(
        metrics[2:5, METRICS.index("w_norm")], np.sqrt((w.reshape(3, -1) ** 2).sum(1)), rtol=1e-6
    )
    pooled = out.mean((2, 3))
    np.testing.assert_allclose(
        model.network_trace.probe_activations(0)[:, 2:5], pooled, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        metrics[2:5, METRICS.index("selectivity")], np_selectivity(pooled, y.numpy()), rtol=1e-5
    )
    # input channels pooled the same way
    np.testing.assert_allclose(
        metrics[0:2, METRICS.index("act_mean")], x.numpy().mean((0, 2, 3)), rtol=1e-5, atol=1e-6
    )


class WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.3)
        self.act = nn.ReLU()
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return self.out(self.act(self.drop(self.bn(self.fc(x)))))


def _train_bn(traced: bool, **kwargs):
    torch.manual_seed(11)
    net = WithBatchNorm()
    x, y = make_data(64)
    model = TraceableNN(net, probe=make_data(16, 4), **kwargs) if traced else net
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for epoch in range(1, 4):
        if traced:
            model.start_epoch(epoch)
        net.train()
        for start in range(0, 64, 16):
            loss = F.cross_entropy(model(x[start : start + 16]), y[start : start + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if traced:
            model.end_epoch(epoch)
    return net, model


@pytest.mark.parametrize("kwargs", [{}, {"drop_batches": False, "keep_weights": True}])
def test_tracing_never_changes_what_the_model_computes(kwargs):
    plain, _ = _train_bn(False)
    traced, model = _train_bn(True, **kwargs)
    a, b = plain.state_dict(), traced.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bitwise, BatchNorm running stats included
    assert traced.training  # the probe passes restored train mode
    assert model.neural_index["fc"] == (3, 8)
    assert {i.name: i.activation for i in model.layers}["fc"] == "ReLU"  # through bn, dropout


def test_grads_and_rng_are_untouched_by_a_probe_pass():
    module = make_net()
    x, y = make_data()
    loss = F.cross_entropy(module(x), y)
    loss.backward()
    grads = [p.grad.clone() for p in module.parameters()]
    state = torch.random.get_rng_state()
    model = TraceableNN(module, probe=(x, y))
    model.start_epoch(1)
    model.end_epoch(1)
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, module.parameters()))
    assert torch.equal(state, torch.random.get_rng_state())


def test_unrecorded_epochs_leave_no_hooks():
    module = make_net()
    model = TraceableNN(module, probe=make_data(8), epoch_intervals=[2])
    model.start_epoch(1)
    hooks = sum(len(m._forward_hooks) for m in module.modules())
    assert hooks == 0
    assert all(not p._backward_hooks for p in module.parameters())


def test_finish_records_the_last_epoch_when_the_end_was_unknown():
    module = make_net()
    x, y = make_data(32)
    model = TraceableNN(module, probe=(x, y), epoch_intervals=2)
    user_loop(model, module, x, y, epochs=3)
    assert model.finish().epochs == [0, 2, 3]


def test_invalid_arguments_are_specific():
    with pytest.raises(ValueError, match="epoch_intervals"):
        TraceableNN(make_net(), example_input=torch.randn(2, 3), epoch_intervals=0)
    with pytest.raises(ValueError, match="num_epochs"):
        TraceableNN(make_net(), example_input=torch.randn(2, 3), epoch_intervals=-1)
    with pytest.raises(ValueError, match="no traceable layer"):
        TraceableNN(nn.Sequential(nn.ReLU()), example_input=torch.randn(2, 3))
    with pytest.raises(ValueError, match="example_input"):
        TraceableNN(make_net())
    with pytest.raises(TypeError, match=r"nn\.Module"):
        TraceableNN(lambda x: x, example_input=torch.randn(2, 3))
    model = TraceableNN(make_net(), example_input=torch.randn(2, 3))
    with pytest.raises(ValueError, match="unknown history column"):
        model.end_epoch(1, accuracy=1.0)


def test_conv1d_channels_over_a_sequence():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(3, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(4 * 6, 2))
    x = torch.randn(5, 3, 8)
    model = TraceableNN(net, probe=(x, torch.tensor([0, 1, 0, 1, 1])))
    assert model.neural_index == {"input": (0, 2), "0": (3, 6), "3": (7, 8)}
    with torch.no_grad():
        out = F.gelu(net[0](x))  # (5, 4, 6)
    metrics = model.network_trace.metrics_at(0)
    values = out.permute(0, 2, 1).reshape(-1, 4).double().numpy()
    np.testing.assert_allclose(metrics[3:7, METRICS.index("act_std")], values.std(0), rtol=1e-5)
    np.testing.assert_allclose(
        metrics[3:7, METRICS.index("act_active")], (values > 0).mean(0), rtol=1e-6
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_positive_count_is_exact_against_numpy(dtype):
    """The per-step active count (a float sum of clamped values) equals NumPy's count, for
    ReLU-like and signed values, from a handful of entries to 3 million (beyond float16)."""
    from nn_tracing.tracer._steps import positive_count

    generator = torch.Generator().manual_seed(0)
    for n in (1, 7, 4096, 3_000_000):
        values = torch.randn(n, generator=generator, dtype=torch.float64)
        values[::5] = 0.0  # exact zeros are not active
        values = values.to(dtype)
        expected = int((values.double().numpy() > 0).sum())
        got = float(positive_count(values).double()) * 2.0**126
        assert got == expected, (n, got, expected)
    assert torch.isnan(positive_count(torch.tensor([1.0, float("nan")])))


def test_a_conv_probe_in_several_chunks_equals_one_full_batch_pass():
    """A probe of 600 images of 16 × 16 runs in chunks of 256 on the CPU (``chunk_rows``);
    every channel statistic (pooled over positions, through the contiguous row reductions),
    the pooled activations and each channel's probe-gradient norm equal one float64 pass over
    the whole probe, and a channels-last copy of the output (the strided path) agrees."""
    from nn_tracing.tracer import chunk_rows

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Tanh(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    )
    x = torch.randn(600, 1, 16, 16)
    y = torch.randint(0, 3, (600,))
    assert chunk_rows(x, 8192) == 256 and chunk_rows(x[:, :, :2, :2], 8192) == 8192
    assert chunk_rows(torch.randn(2, 3, 64, 64), 8192) == 64  # never fewer than 64 rows
    model = TraceableNN(net, probe=(x, y))
    metrics = model.network_trace.metrics_at(0)
    acts = model.network_trace.probe_activations(0)

    reference = copy.deepcopy(net).double()
    xd = x.double()
    outputs = {}
    hooks = [
        reference[i].register_forward_hook(lambda m, a, o, i=i: outputs.__setitem__(i, o))
        for i in (1, 3)
    ]
    loss = F.cross_entropy(reference(xd), y)
    grads = torch.autograd.grad(loss, [reference[0].weight, reference[2].weight])
    for hook in hooks:
        hook.remove()
    index = model.neural_index
    for (name, layer), grad in zip((("0", 1), ("2", 3)), grads, strict=True):
        first, last = index[name]
        rows = outputs[layer].detach().permute(0, 2, 3, 1).reshape(-1, last - first + 1).numpy()
        block = metrics[first : last + 1]
        column = {m: block[:, METRICS.index(m)] for m in METRICS}
        np.testing.assert_allclose(column["act_mean"], rows.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(column["act_std"], rows.std(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(column["act_min"], rows.min(0), rtol=1e-6)
        np.testing.assert_allclose(column["act_max"], rows.max(0), rtol=1e-6)
        np.testing.assert_array_equal(column["act_active"], (rows > 0).mean(0).astype(np.float32))
        expected = torch.linalg.vector_norm(grad.reshape(grad.shape[0], -1), dim=1).numpy()
        np.testing.assert_allclose(column["grad_norm"], expected, rtol=1e-4)
        pooled = outputs[layer].detach().mean((2, 3)).numpy()
        np.testing.assert_allclose(acts[:, first : last + 1], pooled, rtol=1e-4, atol=1e-5)
    model.start_epoch(1)
    model.end_epoch(1)  # a second record: the input's statistics come from the cache
    pixels = x.reshape(-1).double().numpy()
    for epoch in (0, 1):
        block = model.network_trace.metrics_at(epoch)[0]
        expected = [pixels.mean(), pixels.std(), pixels.min(), pixels.max(), (pixels > 0).mean()]
        columns = [METRICS.index(m) for m in ("act_mean", "act_std", "act_min", "act_max")]
        np.testing.assert_allclose(block[columns], expected[:4], rtol=1e-5, atol=1e-6)
        assert block[METRICS.index("act_active")] == np.float32(expected[4])


def test_row_reductions_equal_the_strided_reductions():
    """The contiguous fast path of a conv accumulator and the strided one (a channels-last
    output) give the same statistics, with zeros, negatives and one all-zero channel."""
    from nn_tracing.tracer._stats import Accumulator, as_positions

    generator = torch.Generator().manual_seed(1)
    out = torch.randn(7, 5, 6, 6, generator=generator, dtype=torch.float64)
    out[:, 1] = out[:, 1].clamp_min(0)  # a ReLU-like channel with exact zeros
    out[:, 4] = 0.0  # a dead channel
    fast, strided = Accumulator(), Accumulator()
    fast.add(as_positions(out, 1), keep_pooled=True)
    strided.add(as_positions(out.contiguous(memory_format=torch.channels_last), 1), True)
    rows = out.permute(0, 2, 3, 1).reshape(-1, 5).numpy()
    for name, value in fast.stats().items():
        np.testing.assert_allclose(value.numpy(), strided.stats()[name].numpy(), rtol=1e-12)
    np.testing.assert_array_equal(fast.stats()["act_active"].numpy(), (rows > 0).mean(0))
    np.testing.assert_allclose(fast.stats()["act_std"].numpy(), rows.std(0), atol=1e-12)
    np.testing.assert_allclose(torch.cat(fast.pooled).numpy(), out.mean((2, 3)).numpy())


def test_record_epoch_records_once_and_gives_the_probes_values_before_end_epoch():
    """``record_epoch`` records a scheduled epoch before ``end_epoch`` (which then does not
    measure again), and ``history_values`` gives the probe's loss — equal to a plain forward
    of the probe in eval mode; an epoch the schedule skips is not recorded."""
    module = make_net()
    probe_x, probe_y = make_data(12, 2)
    model = TraceableNN(module, probe=(probe_x, probe_y), epoch_intervals=[1])
    measured = []
    measure = model._probe.measure
    model._probe.measure = lambda device: measured.append(device) or measure(device)
    model.start_epoch(1)
    assert model.record_epoch(1) is True
    with torch.no_grad():
        reference = F.cross_entropy(module.eval()(probe_x), probe_y).item()
    module.train()
    assert model.history_values(1)["probe_loss"] == pytest.approx(reference, rel=1e-6)
    assert model.end_epoch(1, val_loss=0.5) is True
    assert len(measured) == 1
    assert model.history_values(1)["val_loss"] == 0.5
    model.start_epoch(2)
    assert model.record_epoch(2) is False
    assert model.end_epoch(2) is False and len(measured) == 1
    assert model.finish().epochs == [0, 1]
