"""Charts of a neuron's response on modular arithmetic (pure Altair, no Streamlit): its
activation over a and over b, the a × b map, and the power per frequency against the untrained
network's (:class:`~nn_tracing.analysis.fourier.ModularResponse`)."""

from __future__ import annotations

import math

import altair as alt
import numpy as np

from ..analysis.fourier import ModularResponse
from ..trace import format_signature
from .common import MARK_BUDGET
from .palette import NULL_LINE, SEQUENTIAL_SCHEME, categorical_scale, diverging_scale

__all__ = ["response_map_chart", "response_profile_chart", "spectrum_chart"]

_OPERANDS = categorical_scale(["a", "b"])


def response_profile_chart(response: ModularResponse, *, layer: str) -> alt.Chart:
    """The activation over a (averaged over b) and over b (averaged over a), one line each."""
    signature = format_signature(response.epoch, layer, response.neuron_id)
    frame = response.profile_frame()
    frame["signature"] = signature
    return (
        alt.Chart(
            frame,
            title=alt.TitleParams(
                f"{signature}: response over the residues",
                subtitle=[
                    f"dominant frequency: a k={response.frequency_a} "
                    f"({response.share_a:.0%} of the power), b k={response.frequency_b} "
                    f"({response.share_b:.0%})"
                ],
            ),
        )
        .mark_line(point=True)
        .encode(
            x=alt.X("residue:Q", title="residue (a or b)", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("activation:Q", title="mean activation"),
            color=alt.Color("operand:N", scale=_OPERANDS, title="over"),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("operand:N", title="over"),
                alt.Tooltip("residue:Q"),
                alt.Tooltip("activation:Q", format=".4g"),
            ],
        )
        .properties(height=220)
    )


def response_map_chart(
    response: ModularResponse, *, layer: str, budget: int = MARK_BUDGET
) -> alt.Chart:
    """The activation on every pair as an a × b heatmap (blocks of residues averaged above
    ``budget`` cells, said in the subtitle; unknown pairs left blank)."""
    signature = format_signature(response.epoch, layer, response.neuron_id)
    p = response.p
    block = max(1, math.ceil(p / math.sqrt(budget)))
    frame = response.grid_frame()
    subtitle = [
        "every pair, from the model rebuilt at this epoch"
        if response.source == "model"
        else f"the probe pairs only ({response.coverage:.0%} of them): no weights at this epoch"
    ]
    if block > 1:
        frame["a"] = frame["a"] // block * block
        frame["b"] = frame["b"] // block * block
        frame = frame.groupby(["a", "b"], as_index=False)["activation"].mean()
        subtitle.append(f"blocks of {block} × {block} residues averaged")
    frame["signature"] = signature
    values = frame["activation"].to_numpy()
    scale = (
        diverging_scale(values)
        if values.size and np.nanmin(values) < 0
        else alt.Scale(scheme=SEQUENTIAL_SCHEME)
    )
    axis = alt.Axis(tickMinStep=1, values=list(range(0, p, max(1, p // 10))))
    return (
        alt.Chart(frame, title=alt.TitleParams(f"{signature} on every pair", subtitle=subtitle))
        .mark_rect()
        .encode(
            x=alt.X("b:O", title="b", sort="ascending", axis=axis),
            y=alt.Y("a:O", title="a", sort="ascending", axis=axis),
            color=alt.Color("activation:Q", scale=scale, title="activation"),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("a:O"),
                alt.Tooltip("b:O"),
                alt.Tooltip("activation:Q", format=".4g"),
            ],
        )
        .properties(width=320, height=320)
    )


def spectrum_chart(
    response: ModularResponse, baseline: ModularResponse | None, *, layer: str
) -> alt.Chart:
    """Share of the power per frequency k over a and over b, with the same neuron untrained
    (``baseline``, E_0) as a grey line: the null a peak must beat."""
    signature = format_signature(response.epoch, layer, response.neuron_id)
    frame = response.spectrum_frame()
    frame["signature"] = signature
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("frequency:O", title="frequency k"),
            xOffset="operand:N",
            y=alt.Y("share:Q", title="share of the power", axis=alt.Axis(format="%")),
            color=alt.Color("operand:N", scale=_OPERANDS, title="over"),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("operand:N", title="over"),
                alt.Tooltip("frequency:O", title="k"),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
    )
    layers: list[alt.Chart] = [bars]
    subtitle = ["bars: this epoch"]
    if baseline is not None:
        null = baseline.spectrum_frame()
        null = null.groupby("frequency", as_index=False)["share"].max()
        null["what"] = f"E_{baseline.epoch} (untrained), the larger of a and b"
        layers.append(
            alt.Chart(null)
            .mark_tick(color=NULL_LINE, thickness=2)
            .encode(
                x=alt.X("frequency:O"),
                y=alt.Y("share:Q"),
                tooltip=[alt.Tooltip("what:N", title=""), alt.Tooltip("share:Q", format=".1%")],
            )
        )
        subtitle.append(f"grey ticks: the same neuron at E_{baseline.epoch} (untrained)")
    return alt.layer(*layers).properties(
        title=alt.TitleParams(f"{signature}: power per frequency", subtitle=subtitle),
        height=220,
    )
