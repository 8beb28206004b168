"""The Compare page: runs side by side, neurons matched across runs, representations compared.

1. **Runs side by side** — the active run and the runs picked (the runs folder and this
   session's uploads; other seeds of the active configuration proposed first, found as the
   Dynamics page finds them): overlaid training curves (smoothed, per step where recorded),
   each layer's metric quantiles over time per run, and what differs between their configs.
2. **Neurons matched across runs** (Li et al. 2015) — run A (the active one) against run B:
   the probe sets checked, one layer's neurons matched one to one (Hungarian) at one epoch,
   the matched correlations against a null, the share of universal neurons, when each
   neuron's partner stopped changing; a click on a pair shows both neurons side by side.
3. **Representational similarity** — linear CKA, SVCCA or PWCCA of every layer of A against
   every layer of B, and each layer of A against its own final representation, each with a
   permutation baseline.

Widgets and layout only: frames come from :mod:`nn_tracing.views.compare`, charts from
:mod:`nn_tracing.viz.compare`; matching and similarity run on the analysis worker
(:func:`nn_tracing.ui.compute.run_analysis`). Every control, and the picked pair, lives in the
address bar (:data:`URL`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from ..analysis.compare import CURVE_QUANTITIES, CompareUnavailable, RunPair, config_differences
from ..runs import display_name
from ..timeaxis import time_key, time_word
from ..trace import METRICS
from ..views import compare as view
from ..views import dynamics as dynamics_view
from ..viz import compare as vc
from . import state, url
from .app import require_shell
from .charts import show_chart
from .compute import run_analysis
from .dynamics_runs import replicates
from .links import open_neuron, picked_point
from .text import guarded, md_escape
from .traces import ActiveTrace, catalogue, no_trace_message, open_trace, resolve_active, run_ref

__all__ = ["URL", "Settings", "render_compare"]

#: Most other runs compared with the active one.
MAX_RUNS = 8
#: Other seeds proposed by default.
DEFAULT_SEEDS = 3


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every control of the page, as the URL carries it (see :mod:`nn_tracing.ui.url`)."""

    runs: tuple[str, ...] | None = url.param(
        "with",
        state.COMPARE_RUNS,
        default=None,
        per_trace=True,
        keep_empty=True,
        max_items=MAX_RUNS,
    )
    b: str | None = url.param("b", state.COMPARE_B, default=None, per_trace=True)
    quantity: str | None = url.param(
        "curve", state.COMPARE_QUANTITY, default="loss", choices=tuple(CURVE_QUANTITIES)
    )
    smoothing: float | None = url.param(
        "smooth", state.COMPARE_SMOOTHING, default=0.0, low=0.0, high=0.95
    )
    per_step: bool | None = url.param("per_step", state.COMPARE_PER_STEP, default=False)
    metric: str | None = url.param(
        "metric", state.COMPARE_METRIC, default="act_mean", choices=METRICS
    )
    layer: str | None = url.param("layer", state.COMPARE_LAYER, default=None, per_trace=True)
    epoch: int | None = url.param("epoch", state.COMPARE_EPOCH, default=None, per_trace=True, low=0)
    null: str | None = url.param(
        "null", state.COMPARE_NULL, default="permuted", choices=tuple(view.NULL_KINDS)
    )
    permutations: int | None = url.param(
        "perms", state.COMPARE_PERMUTATIONS, default=5, low=1, high=50
    )
    method: str | None = url.param(
        "method", state.COMPARE_METHOD, default="cka", choices=tuple(view.METHODS)
    )
    pair: str | None = url.param("pair", state.COMPARE_PAIR, default=None, per_trace=True)
    pair_metric: str | None = url.param(
        "pmetric", state.COMPARE_PAIR_METRIC, default="act_mean", choices=METRICS
    )
    seed: int | None = url.param("seed", state.COMPARE_RANDOM_STATE, default=0, low=0)


#: The page's settings in the address bar, bound to the widgets' keys.
URL = url.PageURL(Settings, page="compare")
DEFAULTS = Settings()
_WHAT = "compare:"


def _ensure(key: str, valid: Callable[[Any], bool], default: Any) -> Any:
    if not valid(state.get(key)):
        state.put(key, default)
    return state.get(key)


def _publish(ref: str) -> None:
    with guarded("writing the settings into the address bar"):
        values = {}
        for item in dataclasses.fields(Settings):
            value = state.get(URL.key(item.name, ref))
            values[item.name] = tuple(value) if isinstance(value, list) else value
        settings = Settings(**values)
        URL.publish(settings, ref, hidden=url.at_defaults(settings))


# -- which runs -----------------------------------------------------------------------------------
def _options(active: ActiveTrace) -> dict[str, str]:
    """``{reference: name shown}`` of every other run this session can open."""
    out = {}
    for entry in catalogue():
        ref = run_ref(entry.name)
        if entry.readable and ref != active.ref and "," not in ref:
            out[ref] = display_name(entry.name)
    for upload in state.get(state.UPLOADS, []):
        ref = f"upload:{upload['digest']}"
        if ref != active.ref:
            out[ref] = f"{upload['name']} (uploaded)"
    return out


def _proposed(active: ActiveTrace, options: dict[str, str]) -> list[str]:
    """Other seeds of the active configuration (the Dynamics page's seed finder), first few."""
    config = dynamics_view.trace_config(active.trace)
    if config is None:
        return []
    found = [run_ref(r.name) for r in replicates(config, active.name or "")]
    return [ref for ref in found if ref in options][:DEFAULT_SEEDS]


def _runs_picker(active: ActiveTrace) -> list[tuple[str, ActiveTrace]]:
    """The active run and the others picked: ``[(name, trace)]``, names made distinct."""
    options = _options(active)
    key = URL.key("runs", active.ref)
    _ensure(
        key,
        lambda v: isinstance(v, list) and len(v) <= MAX_RUNS and set(v) <= set(options),
        _proposed(active, options),
    )
    st.multiselect(
        f"Compare {active.name or 'this run'} with",
        list(options),
        key=key,
        max_selections=MAX_RUNS,
        format_func=lambda ref: options.get(ref, ref),
        help="Runs of the runs folder and this session's uploads; other seeds of this "
        "configuration are proposed first. Different configurations are allowed.",
    )
    chosen = [(active.name or active.label, active)]
    for ref in state.get(key) or []:
        try:
            chosen.append((options.get(ref, ref), open_trace(ref)))
        except ValueError as exc:
            st.warning(f"{md_escape(options.get(ref, ref))} is left out: {md_escape(exc, 300)}")
    names: set[str] = set()
    distinct = []
    for name, trace in chosen:
        shown, n = name, 2
        while shown in names:
            shown, n = f"{name} ({n})", n + 1
        names.add(shown)
        distinct.append((shown, trace))
    return distinct


# -- 1. side by side ------------------------------------------------------------------------------
def _side_by_side(chosen: list[tuple[str, ActiveTrace]]) -> None:
    traces = {name: run.trace for name, run in chosen}
    has_steps = any(t.steps is not None and len(t.steps) for t in traces.values())
    columns = st.columns([2, 2, 2, 3])
    _ensure(state.COMPARE_QUANTITY, lambda v: v in CURVE_QUANTITIES, DEFAULTS.quantity)
    quantity = columns[0].radio(
        "Curve", tuple(CURVE_QUANTITIES), key=state.COMPARE_QUANTITY, horizontal=True
    )
    _ensure(state.COMPARE_SMOOTHING, lambda v: isinstance(v, float) and 0 <= v <= 0.95, 0.0)
    smoothing = columns[1].slider(
        "Smoothing",
        0.0,
        0.95,
        step=0.05,
        key=state.COMPARE_SMOOTHING,
        help="Exponential moving average (TensorBoard's, debiased); the tooltip keeps the "
        "recorded value.",
    )
    _ensure(state.COMPARE_PER_STEP, lambda v: isinstance(v, bool) and (has_steps or not v), False)
    per_step = columns[2].toggle(
        "Per step",
        key=state.COMPARE_PER_STEP,
        disabled=not has_steps,
        help="The training loss of every optimizer step, from runs that kept per-step "
        "statistics (drop_batches=False)."
        if has_steps
        else "No chosen run kept per-step statistics (drop_batches=False).",
    )
    frame = view.curves(
        traces, str(quantity), float(smoothing), bool(per_step) and quantity == "loss"
    )
    if frame.empty:
        st.info(f"No {quantity} curve was recorded by these runs.")
    else:
        show_chart(vc.run_curves_chart(frame, str(quantity)))
    _ensure(state.COMPARE_METRIC, lambda v: v in METRICS, DEFAULTS.metric)
    metric = columns[3].selectbox("Metric of the layer bands", METRICS, key=state.COMPARE_METRIC)
    bands = view.bands(traces, str(metric))
    bands = bands[bands["layer"] != "input"] if len(bands) else bands  # the probe: no change
    layers = list(dict.fromkeys(bands["layer"])) if len(bands) else []
    show_chart(vc.quantile_bands_chart(bands, str(metric), layers))
    differences = config_differences(traces)
    st.subheader("What differs between their configurations")
    if differences.empty:
        st.caption("Nothing: the runs have the same configuration.")
    else:
        st.dataframe(differences, hide_index=True)


# -- 2. matching ----------------------------------------------------------------------------------
def _pick_b(chosen: list[tuple[str, ActiveTrace]], ref: str) -> tuple[str, ActiveTrace]:
    names = [name for name, _ in chosen[1:]]
    key = URL.key("b", ref)
    _ensure(key, lambda v: v in names, names[0])
    name = st.selectbox(
        f"Run B (run A is {chosen[0][0]})",
        names,
        key=key,
        help="Neurons and layers of the active run (A) are matched to this run's.",
    )
    return next(item for item in chosen if item[0] == name)


def _epochs(a: ActiveTrace, b: ActiveTrace, ref: str) -> tuple[int, int]:
    """The epoch both runs are compared at (one of the epochs both recorded)."""
    common = RunPair(a.trace, b.trace).common_epochs
    if not common:
        st.caption(
            f"The runs recorded no {time_word()} in common: each is compared at its last one "
            f"(A at {a.trace.time_key(a.trace.epochs[-1])}, B at "
            f"{b.trace.time_key(b.trace.epochs[-1])})."
        )
        return a.trace.epochs[-1], b.trace.epochs[-1]
    key = URL.key("epoch", ref)
    _ensure(key, lambda v: v in common, common[-1])
    if len(common) == 1:
        return common[0], common[0]
    epoch = int(
        st.select_slider(
            f"{time_word().capitalize()} compared", common, key=key, format_func=time_key
        )
    )
    return epoch, epoch


def _matching(
    a: tuple[str, ActiveTrace],
    b: tuple[str, ActiveTrace],
    ref: str,
    epochs: tuple[int, int],
    layers: list[str],
) -> None:
    ta, tb = a[1].trace, b[1].trace
    key = URL.key("layer", ref)
    _ensure(key, lambda v: v in layers, layers[0])
    columns = st.columns([2, 2, 1])
    layer = str(columns[0].selectbox("Layer", layers, key=key))
    _ensure(state.COMPARE_NULL, lambda v: v in view.NULL_KINDS, DEFAULTS.null)
    null = str(
        columns[1].selectbox(
            "Null",
            tuple(view.NULL_KINDS),
            key=state.COMPARE_NULL,
            format_func=view.NULL_KINDS.__getitem__,
            help="What matching finds among unrelated neurons of these widths.",
        )
    )
    _ensure(state.COMPARE_PERMUTATIONS, lambda v: isinstance(v, int) and 1 <= v <= 50, 5)
    perms = int(
        columns[2].number_input(
            "Permutations", 1, 50, key=state.COMPARE_PERMUTATIONS, disabled=null != "permuted"
        )
    )
    seed = int(_ensure(state.COMPARE_RANDOM_STATE, lambda v: isinstance(v, int) and v >= 0, 0))
    params = [layer, epochs[0], null, perms, seed]
    matched = run_analysis(
        _WHAT + "match",
        f"{a[1].key},{b[1].key}",
        params,
        lambda progress: view.match_layer(
            ta,
            tb,
            layer,
            epochs[0],
            null=null,
            n_permutations=perms,
            random_state=seed,
            progress=progress,
        ),
        label=f"Matching the neurons of {layer}",
    )
    if matched is None:
        return
    st.metric(
        "Universal neurons",
        f"{matched.share:.0%}",
        help="Matched correlation above the null's 99th percentile.",
    )
    st.markdown(md_escape(matched.sentence, 600))
    left, right = st.columns(2)
    with left:
        show_chart(
            vc.matched_correlations_chart(matched.pairs, matched.null, matched.threshold, "null")
        )
    with right:
        event = show_chart(
            vc.matched_pairs_chart(matched.pairs),
            select=vc.PAIR_PICK,
            key=state.epoch_key(state.COMPARE_PAIRS_CHART, ref),
        )
    if matched.stability_note:
        st.caption(md_escape(matched.stability_note, 600))
    else:
        show_chart(vc.stability_chart(matched.pairs))
    point = picked_point(event, vc.PAIR_PICK)
    pair_key = URL.key("pair", ref)
    if point is not None and "a_index" in point and "b_index" in point:
        state.put(pair_key, view.format_pair(layer, int(point["a_index"]), int(point["b_index"])))
    _pair(a, b, epochs, layer, pair_key)


def _pair(
    a: tuple[str, ActiveTrace],
    b: tuple[str, ActiveTrace],
    epochs: tuple[int, int],
    layer: str,
    pair_key: str,
) -> None:
    """The picked pair side by side (from a click or the URL)."""
    parsed = view.parse_pair(state.get(pair_key) or "")
    if parsed is None or parsed[0] != layer:
        st.caption("Click a pair in the chart above to see both neurons side by side.")
        return
    _, a_index, b_index = parsed
    ta, tb = a[1].trace, b[1].trace
    try:
        frame = view.pair_frame(ta, tb, layer, a_index, b_index, epochs[0])
    except CompareUnavailable as exc:
        st.warning(md_escape(exc, 400))
        return
    a_sig, b_sig = frame["a_signature"].iloc[0], frame["b_signature"].iloc[0]
    st.subheader(f"{a_sig} (A) and {b_sig} (B)")
    _ensure(state.COMPARE_PAIR_METRIC, lambda v: v in METRICS, DEFAULTS.pair_metric)
    metric = str(st.selectbox("Metric over training", METRICS, key=state.COMPARE_PAIR_METRIC))
    neurons = {a[0]: ta.layer(layer).first_id + a_index, b[0]: tb.layer(layer).first_id + b_index}
    histories = view.pair_histories({a[0]: ta, b[0]: tb}, neurons, metric)
    left, right = st.columns(2)
    with left:
        show_chart(vc.pair_scatter_chart(frame))
    with right:
        show_chart(vc.pair_history_chart(histories, metric))
    buttons = st.columns(2)
    if buttons[0].button(f"Open {a_sig} of {a[0]}", key="nnt.compare.open_a"):
        open_neuron(a[1].name, str(a_sig))
    if buttons[1].button(f"Open {b_sig} of {b[0]}", key="nnt.compare.open_b"):
        open_neuron(b[1].name, str(b_sig))


# -- 3. similarity --------------------------------------------------------------------------------
def _similarity(
    a: tuple[str, ActiveTrace], b: tuple[str, ActiveTrace], epochs: tuple[int, int]
) -> None:
    ta, tb = a[1].trace, b[1].trace
    _ensure(state.COMPARE_METHOD, lambda v: v in view.METHODS, DEFAULTS.method)
    method = str(
        st.radio(
            "Similarity",
            tuple(view.METHODS),
            key=state.COMPARE_METHOD,
            format_func=view.METHODS.__getitem__,
            horizontal=True,
        )
    )
    seed = int(_ensure(state.COMPARE_RANDOM_STATE, lambda v: isinstance(v, int) and v >= 0, 0))
    keys = f"{a[1].key},{b[1].key}"
    frame = run_analysis(
        _WHAT + "similarity",
        keys,
        [method, *epochs, seed],
        lambda progress: view.similarity_between(
            ta, tb, *epochs, method=method, random_state=seed, progress=progress
        ),
        label=f"{view.METHODS[method]} of every layer pair",
    )
    layers_a, layers_b = ta.layer_names()[1:], tb.layer_names()[1:]
    show_chart(vc.similarity_heatmap(frame, view.METHODS[method], layers_a, layers_b))
    done = run_analysis(
        _WHAT + "converged",
        a[1].key,
        [method, seed],
        lambda progress: view.converged(ta, method=method, random_state=seed, progress=progress),
        label=f"{view.METHODS[method]} of each layer with its final representation",
    )
    show_chart(vc.convergence_chart(done.frame, view.METHODS[method], layers_a))
    st.markdown(f"**Lower layers first?** {md_escape(done.verdict, 400)}")


# -- the page -------------------------------------------------------------------------------------
def _pairwise(chosen: list[tuple[str, ActiveTrace]], ref: str) -> None:
    st.header("Neurons matched across runs")
    b = _pick_b(chosen, ref)
    a = chosen[0]
    errors, notes = view.pair_problems(a[1].trace, b[1].trace)
    for note in notes:
        st.info(md_escape(note, 600))
    if errors:
        for error in errors:
            st.warning(md_escape(error, 600))
        return
    check = RunPair(a[1].trace, b[1].trace).probe
    if check.same:
        st.caption(f"Both runs have {md_escape(check.reason)}: activations compared as stored.")
    else:
        st.info(
            f"The probe sets differ ({md_escape(check.reason)}): run B is rerun on run A's probe "
            "samples from its kept weights."
        )
    epochs = _epochs(a[1], b[1], ref)
    layers = [n for n in a[1].trace.layer_names()[1:] if n in b[1].trace.layer_names()]
    for title, section, args in (
        ("matching the neurons", _matching, (a, b, ref, epochs, layers)),
        ("comparing the representations", _similarity_section, (a, b, epochs)),
    ):
        with guarded(title):
            try:
                section(*args)
            except CompareUnavailable as exc:
                st.warning(f"This comparison cannot be made: {md_escape(exc, 600)}")


def _similarity_section(
    a: tuple[str, ActiveTrace], b: tuple[str, ActiveTrace], epochs: tuple[int, int]
) -> None:
    st.header("Representational similarity")
    _similarity(a, b, epochs)


def render_compare() -> None:
    """Draw the Compare page."""
    require_shell()
    st.title("Compare")
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    URL.restore(active.ref)
    st.caption(
        "Runs side by side, their neurons matched one to one, their layers compared — each "
        "against a null: permuted probe samples or the untrained network."
    )
    chosen: list[tuple[str, ActiveTrace]] = []
    with guarded("choosing the runs"):
        chosen = _runs_picker(active)
    if len(chosen) < 2:
        st.info(
            "Compare needs two runs or more: pick another run above (train another seed of "
            "this configuration on the Dynamics page, or upload a trace in the sidebar)."
        )
        _publish(active.ref)
        return
    st.header("Runs side by side")
    with guarded("drawing the runs side by side"):
        _side_by_side(chosen)
    _pairwise(chosen, active.ref)
    _publish(active.ref)
