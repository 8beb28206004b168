"""What the pages show of a convolution channel, without Streamlit: kernel panels and their
signatures, which neurons are image channels, the pixel method, and a model whose positions
cannot be followed (a message, not a crash)."""

from __future__ import annotations

from collections import OrderedDict

import altair as alt
import numpy as np
import pytest
import torch
from torch import nn

from nn_tracing import TraceableNN, attach_model
from nn_tracing.analysis.profiles import ProfileUnavailable
from nn_tracing.views import channels as views


def _trace(net: nn.Module, *, epochs: int = 2, n: int = 24):
    torch.manual_seed(0)
    x = torch.randn(n, 1, 8, 8)
    y = torch.arange(n) % 3
    tracer = TraceableNN(net, probe=(x, y), keep_weights=True, num_epochs=epochs)
    optimiser = torch.optim.SGD(tracer.parameters(), lr=0.1)
    for epoch in range(1, epochs + 1):
        tracer.start_epoch(epoch)
        optimiser.zero_grad()
        nn.functional.cross_entropy(tracer(x), y).backward()
        optimiser.step()
        tracer.end_epoch(epoch)
    return tracer.finish()


def _cnn(middle: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv_1=nn.Conv2d(1, 3, 3, padding=1),
            act_1=nn.ReLU(),
            middle=middle or nn.MaxPool2d(2),
            conv_2=nn.Conv2d(3, 4, 3, padding=1),
            act_2=nn.ReLU(),
            flatten=nn.Flatten(),
            output=nn.Linear(4 * 16 if middle is None else 4 * 64, 3),
        )
    )


def test_kernel_frame_holds_every_kept_epoch_with_the_channels_signature() -> None:
    trace = _trace(_cnn())
    neuron = trace.layer("conv_1").first_id + 1
    frame = views.kernel_frame(trace, neuron)
    assert list(dict.fromkeys(frame["panel"])) == ["E_0", "E_1", "E_2"]
    assert len(frame) == 3 * 9
    for epoch in (0, 2):
        rows = frame[frame["panel"] == f"E_{epoch}"].sort_values(["row", "col"])
        np.testing.assert_array_equal(
            rows["weight"], trace.weights(epoch)["conv_1.weight"][1, 0].reshape(-1)
        )
        assert set(rows["signature"]) == {f"E_{epoch}/L_conv_1/n_{neuron}"}
    # several input channels: a panel per (epoch, input channel), the first four
    deeper = views.kernel_frame(trace, trace.layer("conv_2").first_id)
    assert "E_2 · in 2" in set(deeper["panel"]) and deeper["in_channel"].max() == 2
    assert isinstance(views.kernel_chart(trace, neuron), alt.FacetChart)


def test_top_images_stay_within_the_mark_budget_and_say_so() -> None:
    from nn_tracing.viz.common import MARK_BUDGET

    trace = attach_model(_trace(_cnn(), n=100), _cnn())
    model = views.live_model(trace, 2)
    neuron = trace.layer("conv_1").first_id
    chart, top = views.top_images_chart(trace, model, neuron, 2, 12, True)
    assert len(top) == 12  # 12 × 64 pixels fit
    fits = MARK_BUDGET // 64
    chart, top = views.top_images_chart(trace, model, neuron, 2, fits + 5, False)
    assert len(top) == fits
    assert f"{fits + 5} asked for" in " ".join(chart.title.subtitle)


def test_only_channels_of_image_networks_are_image_neurons_and_methods_pair_up() -> None:
    trace = _trace(_cnn())
    assert views.channel_layer(trace, trace.layer("conv_2").first_id).name == "conv_2"
    assert views.channel_layer(trace, trace.layer("output").first_id) is None
    assert views.pixel_method("integrated_gradients") == "integrated_gradients"
    assert views.pixel_method("conductance") == "integrated_gradients"
    assert views.pixel_method("grad_x_act") == "grad_x_input"
    assert views.pixel_method("ablation") == "grad_x_input"


def test_a_custom_model_without_its_module_and_an_unfollowable_one_explain_themselves() -> None:
    trace = _trace(_cnn())
    with pytest.raises(ProfileUnavailable, match="attach_model"):
        views.live_model(trace, 2)
    upsampled = _cnn(nn.Upsample(scale_factor=1))
    trace = attach_model(_trace(upsampled), _cnn(nn.Upsample(scale_factor=1)))
    model = views.live_model(trace, 2)
    neuron = trace.layer("conv_2").first_id
    with pytest.raises(ProfileUnavailable, match="cannot follow positions through Upsample"):
        views.top_images_chart(trace, model, neuron, 2, 4, True)
    with pytest.raises(ProfileUnavailable, match="probe sample 99 does not exist"):
        views.activation_map_chart(trace, model, neuron, 2, 99)


def test_the_map_and_the_pixels_keep_their_own_colour_scales() -> None:
    trace = attach_model(_trace(_cnn()), _cnn())
    model = views.live_model(trace, 2)
    spec = views.activation_map_chart(trace, model, trace.layer("conv_1").first_id, 2, 0).to_dict()
    assert spec["resolve"] == {"scale": {"color": "independent"}}
    color = spec["hconcat"][1]["encoding"]["color"]["scale"]
    assert color["scheme"] == "blueorange" and color["domainMid"] == 0
    low, high = color["domain"]
    assert low == -high > -np.inf
