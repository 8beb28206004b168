"""Channel neurons as image neurons, against brute force on tiny conv nets: activation maps and
the trace's pooled activations, receptive fields (by gradients and by perturbing pixels), top
images, kernels over training, pixel attribution, and channel pruning equal to ablation."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from nn_tracing import TraceableNN
from nn_tracing.analysis.channels import (
    channel_maps,
    kernel_history,
    model_with_weights,
    pixel_attributions,
    receptive_field,
    top_channel_images,
)
from nn_tracing.analysis.intervention import batched_logits, count_parameters
from nn_tracing.analysis.intervention.channel_pruning import channel_pruning, prune_channels
from nn_tracing.analysis.neuron_model import NeuronModel


def _net(activation: type[nn.Module] = nn.ReLU, pool: type[nn.Module] = nn.MaxPool2d) -> nn.Module:
    """conv 3×3 pad 1 → act → pool 2 → conv 3×3 stride 2 pad 2 dilation 2 → act → flatten →
    linear: strides, padding, dilation and pooling on the way to ``b``."""
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            a=nn.Conv2d(2, 4, 3, padding=1),
            act_a=activation(),
            pool=pool(2),
            b=nn.Conv2d(4, 5, 3, stride=2, padding=2, dilation=2),
            act_b=activation(),
            flat=nn.Flatten(),
            out=nn.Linear(5 * 3 * 3, 3),
        )
    )


def _traced(net: nn.Module, n: int = 20, size: int = 11, keep_weights: bool = False):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, 2, size, size, generator=generator)
    y = torch.arange(n) % 3
    tracer = TraceableNN(net, probe=(x, y), keep_weights=keep_weights, num_epochs=2)
    return tracer, x, y


def test_maps_pool_to_the_traced_activations() -> None:
    net = _net()
    tracer, x, _ = _traced(net)
    trace = tracer.finish()
    model = NeuronModel(net, trace.layers, x)
    for layer in ("a", "b"):
        maps = channel_maps(model, x, layer)
        info = trace.layer(layer)
        np.testing.assert_allclose(
            maps.mean((2, 3)),
            trace.probe_activations(0)[:, info.first_id : info.last_id + 1],
            rtol=1e-5,
            atol=1e-6,
        )
    assert channel_maps(model, x, "b").shape == (20, 5, 3, 3)
    np.testing.assert_array_equal(
        channel_maps(model, x, "b", [4, 1], chunk_size=7), channel_maps(model, x, "b")[:, [4, 1]]
    )
    with pytest.raises(ValueError, match="linear layer"):
        channel_maps(model, x, "out")


def _gradient_support(net: nn.Module, x: torch.Tensor, upto: str, channel: int, i: int, j: int):
    """Bounding box of the input pixels whose gradient on the map value at (i, j) is non-zero."""
    x = x[:1].clone().requires_grad_(True)
    out = x
    for name, module in net.named_children():
        out = module(out)
        if name == upto:
            break
    out[0, channel, i, j].backward()
    rows, cols = np.nonzero(x.grad[0].abs().sum(0).numpy())
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_receptive_field_boxes_equal_the_gradient_support_of_a_linear_chain() -> None:
    net = _net(activation=nn.Identity, pool=nn.AvgPool2d)  # linear: the support is the box
    tracer, x, _ = _traced(net)
    trace = tracer.finish()
    model = NeuronModel(net, trace.layers, x)
    for layer in ("a", "b"):
        field = receptive_field(model, layer, x)
        h, w = field.map_shape
        assert (h, w) == channel_maps(model, x, layer).shape[2:]
        for i in range(h):
            for j in range(w):
                assert field.box(i, j) == _gradient_support(net, x, layer, 0, i, j), (layer, i, j)
    b = receptive_field(model, "b", x)
    # a: 3 px; pool 2 (jump 2): 4 px; b: dilated kernel spans 5 positions of 2 px: 4 + 4·2
    assert b.size == (12, 12) and b.jump == (4, 4) and b.start == (-1 - 2 * 2, -5)


def test_top_images_rank_by_pooled_activation_and_their_boxes_hold_what_drove_the_peak() -> None:
    net = _net()
    tracer, x, y = _traced(net, n=30)
    trace = tracer.finish()
    model = NeuronModel(net, trace.layers, x)
    info = trace.layer("b")
    neuron = info.first_id + 2
    top = top_channel_images(model, x, neuron, k=5, labels=y.numpy())
    pooled = trace.probe_activations(0)[:, neuron]
    expected = np.lexsort((np.arange(len(pooled)), -pooled))[:5]
    assert top["probe_index"].tolist() == expected.tolist()
    np.testing.assert_allclose(top["activation"], pooled[expected], rtol=1e-5, atol=1e-6)
    assert top["label"].tolist() == y.numpy()[expected].tolist()
    generator = torch.Generator().manual_seed(7)
    for row in top.itertuples():
        image = x[row.probe_index : row.probe_index + 1]
        peak = channel_maps(model, image, "b")[0, 2, row.peak_row, row.peak_col]
        assert (
            peak == pytest.approx(row.peak) and peak == channel_maps(model, image, "b")[0, 2].max()
        )
        inside = torch.zeros_like(image, dtype=torch.bool)
        inside[..., row.row_first : row.row_last + 1, row.col_first : row.col_last + 1] = True
        noise = 3 * torch.randn(image.shape, generator=generator)
        outside_changed = torch.where(inside, image, image + noise)
        inside_changed = torch.where(inside, image + noise, image)
        after_outside = channel_maps(model, outside_changed, "b")[0, 2, row.peak_row, row.peak_col]
        after_inside = channel_maps(model, inside_changed, "b")[0, 2, row.peak_row, row.peak_col]
        assert after_outside == peak  # exactly: nothing outside the box reaches this position
        assert after_inside != peak


def test_kernel_history_reads_the_kept_weights_of_every_epoch() -> None:
    net = _net()
    tracer, x, y = _traced(net, keep_weights=True)
    optimiser = torch.optim.SGD(tracer.parameters(), lr=0.1)
    for epoch in (1, 2):
        tracer.start_epoch(epoch)
        optimiser.zero_grad()
        nn.functional.cross_entropy(tracer(x), y).backward()
        optimiser.step()
        tracer.end_epoch(epoch)
    trace = tracer.finish()
    kernels = kernel_history(trace, "a", channels=[1, 3])
    assert sorted(kernels["epoch"].unique()) == [0, 1, 2]
    assert len(kernels) == 3 * 2 * 2 * 3 * 3
    for epoch in (0, 2):
        stored = trace.weights(epoch)["a.weight"]
        rows = kernels[(kernels["epoch"] == epoch) & (kernels["channel"] == 3)]
        block = rows.sort_values(["in_channel", "row", "col"])["weight"].to_numpy()
        np.testing.assert_array_equal(block, stored[3].reshape(-1).astype(np.float64))
    assert (kernels["neuron"] - kernels["channel"] == trace.layer("a").first_id).all()
    assert not np.allclose(trace.weights(0)["a.weight"], trace.weights(2)["a.weight"])
    with pytest.raises(ValueError, match="not a 2-D convolution"):
        kernel_history(trace, "out")
    # the same model from the module and the trace's weights at an epoch
    model = model_with_weights(trace, _net(), epoch=1)
    np.testing.assert_allclose(
        model.activations(x).numpy(), trace.probe_activations(1), rtol=1e-5, atol=1e-6
    )


def test_pixel_attribution_is_gradient_times_input_and_integrated_gradients_are_complete() -> None:
    net = _net(activation=nn.Tanh)
    tracer, x, _ = _traced(net, n=6)
    trace = tracer.finish()
    model = NeuronModel(net, trace.layers, x)
    got = pixel_attributions(model, x, 1, "grad_x_input")
    xg = x.clone().requires_grad_(True)
    net(xg)[:, 1].sum().backward()
    np.testing.assert_allclose(got, (xg.grad * x).numpy(), rtol=1e-5, atol=1e-7)
    assert got.shape == x.shape
    ig = pixel_attributions(model, x, [0, 1, 2, 0, 1, 2], "integrated_gradients", n_steps=64)
    split = pixel_attributions(
        model, x, [0, 1, 2, 0, 1, 2], "integrated_gradients", n_steps=64, max_rows=50
    )
    np.testing.assert_allclose(split, ig, rtol=1e-5, atol=1e-7)  # passes of 50 rows, same sums
    with torch.no_grad():
        at_x = net(x)[torch.arange(6), torch.tensor([0, 1, 2, 0, 1, 2])]
        at_zero = net(torch.zeros_like(x))[0, torch.tensor([0, 1, 2, 0, 1, 2])]
    np.testing.assert_allclose(ig.sum((1, 2, 3)), (at_x - at_zero).numpy(), atol=2e-3)
    with pytest.raises(ValueError, match="use one of"):
        pixel_attributions(model, x, 0, "saliency")


class _GlobalPool(nn.Module):
    """conv → ReLU → conv → ReLU → global average → linear: the head reads one column per
    channel."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 5, 3)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.out = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.flat(self.pool(self.act(self.b(self.act(self.a(x)))))))


@pytest.mark.parametrize("make", [_net, _GlobalPool], ids=["flatten", "global-pool"])
def test_pruning_channels_equals_ablating_them_and_removes_exactly_their_parameters(make) -> None:
    torch.manual_seed(0)
    net = make()
    tracer, x, _ = _traced(net)
    trace = tracer.finish()
    model = NeuronModel(net, trace.layers, x)
    a, b = trace.layer("a"), trace.layer("b")
    remove = [a.first_id + 1, a.first_id + 3, b.first_id + 0]
    pruned = prune_channels(model, remove, x)
    with torch.no_grad():
        got = pruned(x).numpy()
    ablated = batched_logits(model, x, [remove], fast=False)[0]
    np.testing.assert_allclose(got, ablated, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, batched_logits(model, x, [[]])[0], atol=1e-3)
    # parameters, counted from the layer shapes: a loses 2 filters (2·3·3 + 1 each), b loses
    # 2 input channels of each of its filters (3·3 each) and 1 filter over the input channels
    # that remain (·3·3 + 1), the head's 3 rows lose one channel's columns
    head_columns = net.out.in_features // b.n_neurons
    kept_a = a.n_neurons - 2
    removed = 2 * (2 * 9 + 1) + b.n_neurons * 2 * 9 + (kept_a * 9 + 1) + 3 * head_columns
    assert count_parameters(net) - count_parameters(pruned) == removed
    assert pruned.get_submodule("a").out_channels == kept_a
    assert pruned.get_submodule("b").in_channels == kept_a
    assert pruned.get_submodule("b").out_channels == b.n_neurons - 1
    assert count_parameters(net) == count_parameters(model.model)  # the model is untouched
    with pytest.raises(ValueError, match="not a conv2d channel"):
        prune_channels(model, [trace.layer("out").first_id], x)
    with pytest.raises(ValueError, match="every channel"):
        prune_channels(model, list(a.ids), x)


def test_batch_norm_before_the_activation_is_pruned_with_its_channels() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        OrderedDict(
            a=nn.Conv2d(2, 4, 3, padding=1),
            norm_a=nn.BatchNorm2d(4),
            act_a=nn.ReLU(),
            b=nn.Conv2d(4, 3, 3),
            norm_b=nn.BatchNorm2d(3),
            act_b=nn.GELU(),
            flat=nn.Flatten(),
            out=nn.Linear(3 * 9 * 9, 3),
        )
    )
    with torch.no_grad():  # running statistics that are not the identity
        for norm in (net.norm_a, net.norm_b):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
            norm.weight.uniform_(0.5, 2)
            norm.bias.uniform_(-1, 1)
    tracer, x, _ = _traced(net)
    trace = tracer.finish()
    model = NeuronModel(net, trace.layers, x)
    a, b = trace.layer("a"), trace.layer("b")
    remove = [a.first_id + 2, b.first_id + 1]
    pruned = prune_channels(model, remove, x)
    with torch.no_grad():
        got = pruned(x).numpy()
    np.testing.assert_allclose(got, batched_logits(model, x, [remove], fast=False)[0], atol=1e-5)
    assert pruned.norm_a.num_features == 3 and pruned.norm_b.num_features == 2
    np.testing.assert_array_equal(
        pruned.norm_a.running_mean.numpy(), net.norm_a.running_mean.numpy()[[0, 1, 3]]
    )
    # a: 1 filter (2·9 + 1) and its norm (2); b: 3 filters lose 1 input (9 each), 1 filter
    # of the 3 inputs left (3·9 + 1) and its norm (2); out: 3 rows lose 81 columns
    removed = (2 * 9 + 1) + 2 + 3 * 9 + (3 * 9 + 1) + 2 + 3 * 81
    assert count_parameters(net) - count_parameters(pruned) == removed
    # a norm after the activation would not keep a zeroed channel zero: refused
    late = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 81, 3)
    )
    tracer, x, _ = _traced(late)
    model = NeuronModel(late, tracer.finish().layers, x)
    with pytest.raises(ValueError, match="'2' is a BatchNorm2d"):
        prune_channels(model, [model.layer("0").first_id], x)


def test_channel_pruning_measures_the_pruned_model_against_random_channels() -> None:
    net = _net()
    tracer, x, y = _traced(net, n=30)
    trace = tracer.finish()
    model = NeuronModel(net, trace.layers, x)
    result = channel_pruning(model, x, y, "b", 2, n_repeats=5)
    b = trace.layer("b")
    assert len(result.removed) == 2 and all(b.first_id <= n <= b.last_id for n in result.removed)
    least = np.argsort(result.importance, kind="stable")[:2] + b.first_id
    assert list(result.removed) == least.tolist()
    assert result.accuracy_after == pytest.approx(result.ablated_accuracy)
    assert result.max_output_difference < 1e-4
    assert result.parameters_before - result.parameters_after == 2 * (4 * 9 + 1) + 3 * 2 * 9
    assert result.random_accuracy.shape == (5,)
    with pytest.raises(ValueError, match="choose a conv2d layer"):
        channel_pruning(model, x, y, "out", 1)
