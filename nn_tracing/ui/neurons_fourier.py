"""The Neurons page's Fourier view, for traces of the modular arithmetic datasets: the
neuron's response over a and over b, its a × b map and its power per frequency against the
same neuron untrained (E_0). Computations are :mod:`nn_tracing.analysis.fourier`'s, charts
:mod:`nn_tracing.viz.fourier`'s; this module keeps the layout."""

from __future__ import annotations

import streamlit as st

from ..analysis.fourier import ModularResponse, modular_response, modular_setup
from ..analysis.profiles import ProfileUnavailable
from ..data_modular import is_modular
from ..trace import NetworkTrace
from ..viz import fourier as fourier_viz
from . import cache
from .charts import show_chart
from .text import guarded, md_escape

__all__ = ["fourier_caption", "fourier_section", "is_modular_trace"]

_ENTRIES = 64


def is_modular_trace(trace: NetworkTrace) -> bool:
    """Whether ``trace`` was trained on a modular arithmetic dataset."""
    return is_modular(str((trace.meta.get("config") or {}).get("dataset", "")))


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _response(key: str, neuron: int, epoch: int, _trace: NetworkTrace) -> ModularResponse:
    return modular_response(_trace, neuron, epoch)


def fourier_caption(response: ModularResponse, baseline: ModularResponse | None) -> str:
    """What the view says in words: the dominant frequencies, their share, and the untrained
    neuron's for comparison."""
    flat = 1 / max(response.p // 2, 1)
    text = (
        f"Dominant frequency over a: k = {response.frequency_a} with {response.share_a:.0%} "
        f"of the power; over b: k = {response.frequency_b} with {response.share_b:.0%} "
        f"(a flat spectrum gives about {flat:.0%} per frequency)."
    )
    if baseline is not None:
        text += (
            f" Untrained (E_{baseline.epoch}): k = {baseline.frequency_a} with "
            f"{baseline.share_a:.0%} over a, k = {baseline.frequency_b} with "
            f"{baseline.share_b:.0%} over b."
        )
    return text


def fourier_section(key: str, trace: NetworkTrace, neuron: int, epoch: int, layer: str) -> None:
    """The Fourier view of neuron ``neuron`` at ``epoch`` (nothing for other datasets)."""
    if not is_modular_trace(trace):
        return
    st.markdown("**Response over the residues (Fourier structure)**")
    with guarded("computing the response on every pair"):
        try:
            modular_setup(trace)
            response = _response(key, neuron, epoch, trace)
        except ProfileUnavailable as exc:
            st.info(f"Not available here: {md_escape(exc, max_length=500)}.")
            return
        baseline = None
        if epoch != trace.epochs[0]:
            try:
                baseline = _response(key, neuron, trace.epochs[0], trace)
            except ProfileUnavailable:
                baseline = None
        left, right = st.columns([3, 2])
        with left:
            show_chart(
                cache.chart(
                    "fourier_profile",
                    key,
                    (neuron, epoch),
                    lambda: fourier_viz.response_profile_chart(response, layer=layer),
                )
            )
            show_chart(
                cache.chart(
                    "fourier_spectrum",
                    key,
                    (neuron, epoch),
                    lambda: fourier_viz.spectrum_chart(response, baseline, layer=layer),
                )
            )
        with right:
            show_chart(
                cache.chart(
                    "fourier_map",
                    key,
                    (neuron, epoch),
                    lambda: fourier_viz.response_map_chart(response, layer=layer),
                ),
                width="content",
            )
        st.caption(fourier_caption(response, baseline))
