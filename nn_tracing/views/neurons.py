"""What the Neurons page shows, built without Streamlit: which neuron and epoch a link names,
the epoch whose weights (or activation field) can be shown, the neuron against its layer, the
incoming weights as an image, its top-activating samples as images, its rows, and the
captions that say what the charts found.

The analyses are :mod:`nn_tracing.analysis.profiles`' and the charts :mod:`nn_tracing.viz`'s;
the health table is :mod:`nn_tracing.views.health`'s. Texts are Markdown: a string from the
trace (a layer or class name) reaches them only through
:func:`~nn_tracing.views.text.md_escape`; the link notice of :func:`resolve_neuron` is plain
text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..analysis import profiles
from ..analysis.dormancy import (
    DEFAULT_TAU,
    contribution_utility,
    dormant_scores,
    hidden_layers,
    mean_abs_at,
)
from ..analysis.profiles import ActivationField, ProfileUnavailable
from ..timeaxis import time_key, time_word
from ..trace import METRICS, NetworkTrace, parse_signature, signature_column
from ..viz import profile as profile_viz
from .text import difference_words, md_escape

__all__ = [
    "TOP_ORDERS",
    "connections_table",
    "default_neuron",
    "enrichment_caption",
    "field_caption",
    "field_epoch",
    "first_neuron",
    "history_caption",
    "metrics_against_layer",
    "nearest_epoch",
    "neuron_rows",
    "picker_options",
    "probe_csv",
    "resolve_neuron",
    "selectivity_captions",
    "sources_caption",
    "top_image_shape",
    "weight_image_frame",
    "weights_epoch",
]

#: Which end of the activations the top samples are taken from; the first is the largest.
TOP_ORDERS: tuple[str, ...] = ("most active", "least active")


# -- the neuron and epoch ----------------------------------------------------------------------
def default_neuron(trace: NetworkTrace) -> int:
    """The neuron the page opens without a link: the first neuron past the inputs."""
    hidden = [info for info in trace.layers if info.kind != "input"]
    return (hidden[0] if hidden else trace.layers[0]).first_id


def first_neuron(trace: NetworkTrace) -> tuple[int, str | None]:
    """The neuron a newcomer meets first, and why (Markdown), or the first hidden neuron and
    ``None`` when nothing sets one apart.

    Of the first hidden layer's neurons that are not τ-dormant at the last recorded epoch
    (:data:`~nn_tracing.analysis.dormancy.DEFAULT_TAU`), the one of highest contribution
    utility there (:func:`~nn_tracing.analysis.dormancy.contribution_utility`); without
    weights to weigh it, the one of highest mean |activation|. A dead neuron is never first.
    """
    layers = hidden_layers(trace)
    if not layers or not trace.epochs:
        return default_neuron(trace), None
    info, epoch = layers[0], trace.epochs[-1]
    ids = slice(info.first_id, info.last_id + 1)
    every_mean_abs = mean_abs_at(trace, epoch)
    mean_abs = every_mean_abs[ids]
    with np.errstate(invalid="ignore"):
        awake = dormant_scores(mean_abs) > DEFAULT_TAU
    utility = contribution_utility(trace, epoch, every_mean_abs).values[ids]
    by_utility = awake & np.isfinite(utility)
    if by_utility.any():
        pick = int(np.argmax(np.where(by_utility, utility, -np.inf)))
        why = f"the highest contribution utility at {time_key(epoch)} ({utility[pick]:.3g})"
    elif (awake & np.isfinite(mean_abs)).any():
        pick = int(np.argmax(np.where(awake, mean_abs, -np.inf)))
        why = f"the highest mean |activation| on the probe at {time_key(epoch)}"
    else:
        return default_neuron(trace), None
    reason = (
        f"Opened on **n_{info.first_id + pick}**: of the {int(awake.sum())} of "
        f"{info.n_neurons} neurons of L_{md_escape(info.name)} that are not dormant "
        f"(τ = {DEFAULT_TAU:g}), the one with {why}. Pick any other neuron above, or click one "
        "in a chart."
    )
    return info.first_id + pick, reason


def nearest_epoch(epoch: int, available: Sequence[int]) -> int:
    """The epoch of ``available`` nearest to ``epoch`` (the earlier one on a tie)."""
    return min(available, key=lambda e: (abs(e - epoch), e))


def resolve_neuron(
    trace: NetworkTrace, requested: str | None, first: int | None = None
) -> tuple[int, int, str | None]:
    """``(epoch, neuron id, notice)`` for a ``neuron=`` parameter.

    A signature that does not fit this trace falls back (to the nearest recorded epoch, or
    to the first hidden neuron) with a notice (plain text) that says what happened; no
    parameter opens ``first`` (:func:`first_neuron`'s choice; :func:`default_neuron` when
    ``None``) at the last recorded epoch.
    """
    epochs = trace.epochs
    if not requested:
        return epochs[-1], default_neuron(trace) if first is None else first, None
    try:
        epoch, layer, neuron = parse_signature(requested, trace.axis)
    except KeyError as exc:  # not a signature, or one of the other axis (E_ on a step trace)
        return epochs[-1], default_neuron(trace), str(exc.args[0])
    notice = None
    if not 0 <= neuron < trace.n_neurons or trace.layer_of(neuron).name != layer:
        notice = (
            f"{requested} is not a neuron of this trace (its layers: "
            f"{', '.join(f'L_{n} n_{a}…n_{b}' for n, (a, b) in trace.neural_index.items())}); "
            "showing the first hidden neuron instead."
        )
        neuron = default_neuron(trace)
    if epoch not in epochs:
        nearest = nearest_epoch(epoch, epochs)
        notice = (notice + " " if notice else "") + (
            f"{time_key(epoch)} was not recorded; showing the nearest recorded {time_word()}, "
            f"{time_key(nearest)}."
        )
        epoch = nearest
    return epoch, neuron, notice


def weights_epoch(trace: NetworkTrace, epoch: int) -> tuple[int, str | None]:
    """The epoch whose weights the page shows, and a notice when it is not ``epoch``.

    ``epoch`` when the trace holds its weights there, else the nearest epoch that has them
    (the final one for a run without kept weights).

    Raises
    ------
    ProfileUnavailable
        When the trace holds no weights at all.
    """
    kept = trace.epochs_with_weights
    if not kept:
        raise ProfileUnavailable("this trace holds no weights")
    if epoch in kept:
        return epoch, None
    nearest = nearest_epoch(epoch, kept)
    return nearest, (
        f"This run kept its weights only at {time_key(nearest)}: the weights below are "
        f"{time_key(nearest)}'s, not {time_key(epoch)}'s. Train with keep_weights "
        f"(--keep-weights) to see them at every recorded {time_word()}."
    )


def field_epoch(trace: NetworkTrace, epoch: int) -> tuple[int, str | None]:
    """The epoch whose activation field the page draws, and a notice when it is not ``epoch``
    (see :func:`~nn_tracing.analysis.profiles.field_epochs`).

    Raises
    ------
    ProfileUnavailable
        When the trace holds no weights to rebuild its model from.
    """
    available = profiles.field_epochs(trace)
    if not available:
        raise ProfileUnavailable("this trace holds no weights to rebuild its model from")
    if epoch in available:
        return epoch, None
    nearest = nearest_epoch(epoch, available)
    return nearest, (
        f"The field needs the model's weights: this run kept them only at "
        f"{time_key(nearest)}, so the field below is {time_key(nearest)}'s, not "
        f"{time_key(epoch)}'s. Train with keep_weights (--keep-weights) to see it at every "
        f"recorded {time_word()}."
    )


# -- over training -----------------------------------------------------------------------------
def metrics_against_layer(trace: NetworkTrace, epoch: int, neuron: int) -> pd.DataFrame:
    """Every metric of ``neuron`` at ``epoch`` against the other neurons of its layer.

    Returns
    -------
    DataFrame with one row per metric of :data:`~nn_tracing.trace.METRICS`: ``metric``,
    ``value``, ``layer median`` and ``percentile in layer`` (0–100, ties counted half; NaN
    where the value or every value of the layer is not finite). The median and the
    percentile are over the layer's finite values.
    """
    info = trace.layer_of(neuron)
    block = trace.metrics_at(epoch)[info.first_id : info.last_id + 1].astype(np.float64)
    own = block[neuron - info.first_id]
    rows = []
    for m, name in enumerate(METRICS):
        column = block[:, m]
        finite = column[np.isfinite(column)]
        value = own[m]
        if not np.isfinite(value) or finite.size == 0:
            rows.append((name, value, np.nan, np.nan))
            continue
        percentile = (np.sum(finite < value) + 0.5 * np.sum(finite == value)) / finite.size
        rows.append((name, value, float(np.median(finite)), 100 * percentile))
    return pd.DataFrame(rows, columns=["metric", "value", "layer median", "percentile in layer"])


def history_caption(trace: NetworkTrace, neuron: int, epoch: int, layer: str) -> str:
    """Markdown under the metrics over training: what each line and band is."""
    return (
        f"Blue: n_{neuron}. Dashed grey: the median of the {trace.layer(layer).n_neurons} "
        f"neurons of L_{md_escape(layer)}; shaded: their interquartile range. Red: "
        f"{time_key(epoch)}. Hover a point for the neuron's percentile within its layer."
    )


# -- inputs and outputs ------------------------------------------------------------------------
def sources_caption(trace: NetworkTrace, neuron: int) -> str:
    """Markdown under the incoming weights: which neurons they come from."""
    info = trace.layer_of(neuron)
    source = profiles.source_layer(trace, info.name)
    if source is None and info.kind in ("conv1d", "conv2d"):
        drawn = " (drawn as images below)" if info.kind == "conv2d" else ""
        return (
            f"A convolution channel's incoming weights are its kernel{drawn}, flattened in "
            "PyTorch's order: input channel, then kernel row, then column."
        )
    if source is None:
        return (
            "The sources of these weights are not known neurons (the previous "
            "traced layer's width differs from the fan-in): listed by position."
        )
    return (
        f"Sources: the neurons of L_{md_escape(source.name)} (its width equals "
        f"this layer's fan-in, {info.fan_in}); click a bar to open one."
    )


def weight_image_frame(
    trace: NetworkTrace, neuron: int, epoch: int, weights_epoch: int
) -> pd.DataFrame | None:
    """The incoming weights of a first-layer neuron of an image dataset as images, in long
    form (see :func:`nn_tracing.viz.profile.weight_image_frame`): one panel at
    ``weights_epoch`` and, before it, one of the untrained network when the trace holds its
    weights. A click on a pixel opens that input at the page's ``epoch``.

    Returns
    -------
    The frame, or ``None`` when there is no image to draw (not an image dataset, or not a
    neuron of the first layer).
    """
    try:
        image = profiles.incoming_weight_image(trace, neuron, weights_epoch)
    except ProfileUnavailable:
        return None
    panels = [profile_viz.weight_image_frame(image, panel=time_key(weights_epoch), epoch=epoch)]
    first = trace.epochs[0]
    if first != weights_epoch and first in trace.epochs_with_weights:
        initial = profiles.incoming_weight_image(trace, neuron, first)
        panels.insert(
            0,
            profile_viz.weight_image_frame(
                initial, panel=f"{time_key(first)} (untrained)", epoch=epoch
            ),
        )
    return pd.concat(panels, ignore_index=True)


def connections_table(
    connections: pd.DataFrame, trace: NetworkTrace, epoch: int, link: Callable[[str], str]
) -> pd.DataFrame:
    """The strongest connections as a table whose ``link`` column opens the other neuron at
    ``epoch`` (``link(signature)`` makes the address): ``direction``, ``link``, ``weight``,
    ``matrix_percentile``, ``weight_e0``."""
    links = [link(trace.signature(epoch, int(n))) for n in connections["neuron"]]
    return connections.assign(link=links)[
        ["direction", "link", "weight", "matrix_percentile", "weight_e0"]
    ]


# -- what it responds to -----------------------------------------------------------------------
def selectivity_captions(selectivity: pd.DataFrame, epoch: int, n_permutations: int) -> list[str]:
    """Markdown under the selectivity chart: the index at ``epoch`` against its shuffled-label
    null (when it was tested there), and at how many epochs the null was computed (when not
    at every one)."""
    captions = []
    row = selectivity.loc[selectivity["epoch"] == epoch].iloc[0]
    if bool(row["tested"]) and np.isfinite(row["p_value"]):
        verdict = "above" if row["p_value"] < 0.05 else "within"
        captions.append(
            f"At {time_key(epoch)}: index {row['selectivity']:.3f}, preferring class "
            f"{md_escape(row['preferred_class'])}; with shuffled labels the index reaches "
            f"{row['null_median']:.3f} (median), {row['null_p95']:.3f} (95th percentile): "
            f"{verdict} chance (p = {row['p_value']:.3g}, {n_permutations} shuffles)."
        )
    skipped = int((~selectivity["tested"]).sum())
    if skipped:
        captions.append(
            f"The null was computed at {len(selectivity) - skipped} of "
            f"{len(selectivity)} recorded epochs, spread evenly."
        )
    return captions


def top_image_shape(
    trace: NetworkTrace, top: pd.DataFrame
) -> tuple[tuple[int, int], list[str]] | None:
    """``(image shape, feature columns)`` when the top samples are images (the dataset's
    ``image_shape`` covers every input feature), else ``None`` (show them as a table)."""
    dataset = trace.meta.get("dataset") if isinstance(trace.meta.get("dataset"), dict) else {}
    shape = dataset.get("image_shape")
    feature_columns = [c for c in top.columns if c not in profiles.TOP_COLUMNS]
    # the MLP's inputs are the pixels; a CNN's input neurons are the images' channels, its
    # samples still one column per pixel (a single channel: one grey image each)
    if isinstance(shape, list) and len(shape) == 2 and int(np.prod(shape)) == len(feature_columns):
        return (int(shape[0]), int(shape[1])), feature_columns
    return None


def enrichment_caption(enrichment: pd.DataFrame, n_top: int, order: str) -> str | None:
    """Markdown under the top samples: the most over-represented class among them against
    the hypergeometric null (``None`` without classes)."""
    if enrichment.empty:
        return None
    best = enrichment.iloc[0]
    n_classes = len(enrichment)
    verdict = (
        "more than chance explains" if best["p_adjusted"] < 0.05 else "within what chance explains"
    )
    return (
        f"{int(best['in_top'])} of these {n_top} {order} samples are class "
        f"{md_escape(best['class'])}, where a random draw of {n_top} probe samples holds "
        f"{best['expected']:.1f} on average: {verdict} (hypergeometric p = {best['p_value']:.3g}, "
        f"{best['p_adjusted']:.3g} after Bonferroni over {n_classes} classes). Feature values "
        "are in the dataset's own units."
    )


def field_caption(field: ActivationField, neuron: int, epoch: int) -> str:
    """Markdown under the activation field, with the check of the rebuilt model."""
    check = (
        " Check: at the probe points, "
        + difference_words(
            field.max_probe_error, "the rebuilt model's activations", "the recorded ones"
        )
        + "."
        if np.isfinite(field.max_probe_error)
        else ""
    )
    return (
        f"n_{neuron}'s activation at every point of the input plane at {time_key(epoch)} "
        "(the way TensorFlow Playground draws a neuron), with the probe samples on top. "
        f"Available at every recorded {time_word()} when the run kept its weights, otherwise at "
        f"the final {time_word()} only.{check}"
    )


# -- its data ----------------------------------------------------------------------------------
#: Above this many neurons the picker lists a window of the current layer, not every neuron
#: (a list of 100k signatures costs the browser seconds on every redraw).
PICKER_MAX = 10_000
#: How many neurons of the current layer the picker lists above :data:`PICKER_MAX`: 2 000
#: signatures are ~50 KB on every redraw of the page, 10 000 were 250 KB (the biggest message
#: of a big trace's Neurons page, more than its profile chart).
PICKER_WINDOW = 2_000


def picker_options(trace: NetworkTrace, epoch: int, neuron: int) -> tuple[list[str], str | None]:
    """The signatures the neuron picker lists at ``epoch``, and a note when they are not all.

    Up to :data:`PICKER_MAX` neurons, every one (in id order). Above, the :data:`PICKER_WINDOW`
    neurons of ``neuron``'s layer nearest to it, and the first neuron of every layer (to
    move between layers), in id order; the note says so.
    """
    if trace.n_neurons <= PICKER_MAX:
        names = trace.neuron_layers()
        return signature_column(epoch, names, range(len(names))), None
    info = trace.layer_of(neuron)
    half = PICKER_WINDOW // 2
    first = max(info.first_id, min(neuron - half, info.last_id + 1 - PICKER_WINDOW))
    last = min(info.last_id, first + PICKER_WINDOW - 1)
    ids = sorted({*range(first, last + 1), *(layer.first_id for layer in trace.layers)})
    note = (
        f"{trace.n_neurons:,} neurons: the list holds the {last - first + 1:,} of "
        f"L_{md_escape(info.name)} nearest n_{neuron} (n_{first} … n_{last}) and the first "
        "neuron of every layer. Click a neuron in any chart, or change the link, to open any other."
    )
    return [trace.signature(epoch, i) for i in ids], note


def neuron_rows(trace: NetworkTrace, neuron: int) -> pd.DataFrame:
    """Every metric of ``neuron`` at every recorded epoch: ``signature``, ``epoch``,
    ``layer`` and one column per metric (one row per recorded epoch)."""
    layer = trace.layer_of(neuron).name
    rows = trace.neuron_history(neuron)
    rows.insert(0, "signature", signature_column(rows["epoch"], layer, neuron))
    return rows


def probe_csv(trace: NetworkTrace, neuron: int, epoch: int) -> bytes:
    """The neuron's activation on every probe sample at ``epoch`` (with label and
    prediction) as CSV."""
    return profiles.probe_responses(trace, neuron, epoch).to_csv(index=False).encode()
