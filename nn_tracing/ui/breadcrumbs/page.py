"""The Breadcrumbs page itself: its settings in the address bar, the controls above the tabs,
and the open tab (see :mod:`nn_tracing.ui.breadcrumbs` for what the tabs show).

Every control — the open tab, and whether the ablation curves or the pruning were computed,
too — is a field of :class:`Settings`, restored from the address bar first and published to it
last (:data:`URL`), so the address bar is a link to what the page shows. The tabs are lazy:
only the open one draws, and only its settings are in the URL. A trace whose model cannot be
rebuilt (a custom model, no probe) gets an explanation instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import streamlit as st

from ...analysis.attribution import METHOD_TITLES, METHODS, OBJECTIVES
from ...analysis.dormancy import DORMANT_TAUS
from ...analysis.intervention import FILLS
from ...model_entry import allowed_patterns
from ...timeaxis import time_key, time_word
from ...trace import NetworkTrace
from ...views.breadcrumbs import FINAL, Target
from ...views.probe_sample import default_sample
from .. import state, url
from ..app import require_shell
from ..follow import live_note
from ..text import guarded, md_escape
from ..traces import ActiveTrace, no_trace_message, resolve_active
from .ablation import ablation_tab
from .intervention import KINDS, intervention_tab
from .pruning import pruning_tab
from .sample import sample_panel
from .trail import attribution_tab
from .widgets import ensure
from .work import model_problem, predictions_of

__all__ = ["MODES", "TABS", "URL", "Settings", "render_breadcrumbs"]

TABS = ("Attribution & trail", "Ablation", "Pruning", "Intervention")
_SECTIONS = (attribution_tab, ablation_tab, pruning_tab, intervention_tab)
#: What is explained: every probe sample of a class, or one sample.
MODES = ("a class", "one probe sample")
#: The most trail neurons per layer.
MAX_K = 12


# -- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the user chose on the page — also what the URL carries (see :data:`URL`):
    each field names its query parameter and its widget's key.

    Fields of the tabs that are not open are ``None`` (or empty), so the URL leaves them out.
    ``prune`` is k per hidden layer, in layer order; ``curves`` and ``pruned`` say that the
    ablation curves or the pruning show for these settings (a link computes them again). The
    fields bound to a ``BREADCRUMBS_LINK_*`` key belong to widgets whose keys name a neuron or
    a layer: a tab moves the URL's value into its widget when it draws it
    (:func:`~.widgets.take_link`, :func:`~.widgets.asked`).
    """

    tab: str = url.param("tab", state.BREADCRUMBS_TAB, choices=TABS)
    epoch: int = url.param("epoch", state.BREADCRUMBS_EPOCH, per_trace=True)
    method: str = url.param("method", state.BREADCRUMBS_METHOD, choices=METHODS)
    mode: str = url.param("explain", state.BREADCRUMBS_MODE, choices=MODES)
    target_class: int | None = url.param("class", state.BREADCRUMBS_CLASS, low=0)
    sample: int | None = url.param("sample", state.BREADCRUMBS_SAMPLE, low=0)
    objective: str = url.param("score", state.BREADCRUMBS_OBJECTIVE, choices=OBJECTIVES)
    k: int = url.param("k", state.BREADCRUMBS_K, low=1, high=MAX_K)
    # Attribution & trail
    compare: bool | None = url.param("compare", state.BREADCRUMBS_COMPARE, default=None)
    # Ablation
    ablate: tuple[int, ...] = url.param(
        "ablate", state.BREADCRUMBS_ABLATE, default=(), per_trace=True, low=0, max_items=10_000
    )
    ablate_fill: str | None = url.param(
        "ablate_fill", state.BREADCRUMBS_ABLATE_FILL, default=None, choices=FILLS
    )
    curves_layer: str | None = url.param(
        "curves_layer", state.BREADCRUMBS_CURVES_LAYER, default=None, max_length=200
    )
    curves_repeats: int | None = url.param(
        "curves_n", state.BREADCRUMBS_REPEATS, default=None, low=5, high=200
    )
    curves_fill: str | None = url.param(
        "curves_fill", state.BREADCRUMBS_CURVES_FILL, default=None, choices=FILLS
    )
    curves: bool | None = url.param(
        "curves", state.BREADCRUMBS_LINK_CURVES, default=None, per_trace=True
    )
    # Pruning
    prune: tuple[int, ...] = url.param(
        "prune", state.BREADCRUMBS_LINK_PRUNE, default=(), per_trace=True, low=0
    )
    prune_fill: str | None = url.param(
        "prune_fill", state.BREADCRUMBS_PRUNE_FILL, default=None, choices=FILLS
    )
    prune_repeats: int | None = url.param(
        "prune_n", state.BREADCRUMBS_PRUNE_REPEATS, default=None, low=5, high=200
    )
    pruned: bool | None = url.param(
        "pruned", state.BREADCRUMBS_LINK_PRUNED, default=None, per_trace=True
    )
    # Pruning of a convolutional network: the conv layer and how many of its channels go
    channel_layer: str | None = url.param(
        "prune_layer", state.BREADCRUMBS_CHANNEL_LAYER, default=None, max_length=200
    )
    channel_k: int | None = url.param(
        "prune_channels", state.BREADCRUMBS_CHANNEL_K, default=None, low=1, high=100_000
    )
    # Intervention
    change: str | None = url.param("change", state.BREADCRUMBS_KIND, default=None, choices=KINDS)
    unit: int | None = url.param("unit", state.BREADCRUMBS_NEURON, default=None, low=0)
    value: float | None = url.param(
        "value", state.BREADCRUMBS_LINK_VALUE, default=None, per_trace=True
    )
    weight_layer: str | None = url.param(
        "w_layer", state.BREADCRUMBS_WEIGHT_LAYER, default=None, max_length=200
    )
    weight_row: int | None = url.param(
        "w_row", state.BREADCRUMBS_LINK_ROW, default=None, per_trace=True, low=0
    )
    weight_column: int | None = url.param(
        "w_col", state.BREADCRUMBS_LINK_COLUMN, default=None, per_trace=True, low=0
    )
    recycle_tau: float | None = url.param(
        "tau", state.BREADCRUMBS_RECYCLE_TAU, default=None, choices=DORMANT_TAUS
    )
    #: The trace has one model state only: no epoch to choose (none in the URL).
    epoch_fixed: bool = False

    def hidden(self) -> set[str]:
        """The settings that do not apply (left out of the URL)."""
        return {"epoch"} if self.epoch_fixed else set()

    def target(self) -> Target:
        """What the attributions explain."""
        return Target(
            self.epoch, self.target_class, self.sample, self.method, self.objective, self.k
        )


#: The page's settings in the address bar, bound to the widgets' keys.
URL = url.PageURL(Settings, page="breadcrumbs")


# -- what cannot run -----------------------------------------------------------------------------
_ATTACH = """import nn_tracing as nt
from nn_tracing.analysis.attribution import attribute, breadcrumb_trail
from nn_tracing.analysis.intervention import AblationCurves, ablate, intervene, Intervention
from nn_tracing.analysis.neuron_model import NeuronModel

trace = nt.load_trace("runs/{name}.nntrace")
nt.attach_model(trace, MyModel())        # same architecture; the trace's weights are loaded
model = NeuronModel.from_trace(trace)    # final weights (or epoch=E with keep_weights)
x, y = trace.probe

result = attribute(trace, target_class=0, method="integrated_gradients", model=model)
trail = breadcrumb_trail(model, result, x, k=5)
print(trail.nodes)
print(ablate(model, x, y, trail.neurons()).per_class())"""


def _explain_problem(active: ActiveTrace, problem: str) -> None:
    """Say why the network cannot be rebuilt (``problem``: :func:`views.model_problem`)."""
    trace = active.trace
    model = trace.meta.get("model") if isinstance(trace.meta.get("model"), dict) else {}
    if problem == "no-probe":
        st.warning(
            "This trace has no probe set: its statistics were streamed over training batches, "
            "so there are no fixed inputs to attribute, ablate or intervene on. Trace with a "
            "probe (`TraceableNN(..., probe=(x, y))`; the built-in training always has one)."
        )
    elif problem == "no-weights":
        st.warning("This trace holds no model weights, so its network cannot be rebuilt.")
    elif problem.startswith("custom"):
        st.warning(
            f"This trace comes from a custom model ({md_escape(model.get('class', 'unknown'))}). "
            "Attribution, ablation, pruning and intervention run the network itself, and a "
            "trace file holds its weights but not its code — the app never imports or unpickles "
            "code from a file. Train it from an entry point (nn-tracing train --model "
            "package.module:factory) so that an app that allows it can rebuild it, or attach "
            "the module in Python and run the same analyses there:"
        )
        st.code(_ATTACH.format(name=active.name or "your-trace"), language="python")
    elif problem.startswith("refused"):
        st.warning(
            "This trace comes from your own model "
            f"{md_escape(str(model.get('entry_point')), 200)}. Attribution, ablation, pruning "
            "and intervention rebuild the network from its entry point, and this server "
            "imports only the entry points its owner allowed — "
            "nothing was imported. " + md_escape(problem.removeprefix("refused: "), 900)
        )
    else:
        st.error(f"The network of this trace cannot be rebuilt: {md_escape(problem[7:], 600)}")


# -- controls ------------------------------------------------------------------------------------
def _epoch_control(active: ActiveTrace) -> tuple[int, bool]:
    """The model state: ``(epoch, fixed)``, ``fixed`` when there is only one."""
    epochs = active.trace.epochs_with_weights or [FINAL]
    epoch_key = URL.key("epoch", active.ref)
    if state.get(epoch_key) not in epochs:
        state.put(epoch_key, epochs[-1])
    if len(epochs) > 1:
        epoch = st.select_slider(
            "Epoch (model state)",
            options=epochs,
            key=epoch_key,
            format_func=time_key,
            help="Every recorded epoch: this run kept its weights.",
        )
        return int(epoch), False
    shown = time_key(epochs[0]) if epochs[0] != FINAL else "the final weights"
    st.caption(
        f"Model state: {shown}. This run kept only the final weights; train with "
        f"keep_weights=True (--keep-weights) to attribute at every recorded {time_word()}."
    )
    return epochs[0], True


def _explained_controls(active: ActiveTrace, epoch: int) -> tuple[str, int | None, int | None]:
    """What is explained: ``(mode, class, sample)``; one sample starts at the first one the
    network gets wrong at ``epoch`` (when there is one)."""
    trace = active.trace
    names = trace.class_names
    mode = str(
        st.segmented_control(
            "Explain", list(MODES), key=state.BREADCRUMBS_MODE, default=MODES[0], required=True
        )
    )
    sample = None
    options: list[int | None] = list(range(len(names)))
    if mode == MODES[1]:
        high = max(len(trace.probe[1]) - 1, 0) if trace.probe is not None else 0
        if trace.probe is not None and not _valid_sample(state.get(state.BREADCRUMBS_SAMPLE), high):
            predicted = predictions_of(active.key, epoch, trace)
            state.put(state.BREADCRUMBS_SAMPLE, default_sample(trace.probe[1], predicted))
        ensure(state.BREADCRUMBS_SAMPLE, lambda v: _valid_sample(v, high), 0)
        sample = int(st.number_input("Probe sample", 0, high, key=state.BREADCRUMBS_SAMPLE))
        options = [None, *options]
    ensure(state.BREADCRUMBS_CLASS, lambda v: v in options, options[0])
    target_class = st.selectbox(
        "Class",
        options,
        key=state.BREADCRUMBS_CLASS,
        format_func=lambda c: "its predicted class" if c is None else names[int(c)],
    )
    return mode, None if target_class is None else int(target_class), sample


def _valid_sample(value: Any, high: int) -> bool:
    return isinstance(value, int) and 0 <= value <= high


def _score_controls(trace: NetworkTrace) -> tuple[str, int]:
    """The score explained and the trail's neurons per layer."""
    objective = st.radio(
        "Score",
        list(OBJECTIVES),
        key=state.BREADCRUMBS_OBJECTIVE,
        format_func=lambda o: {"logit": "class logit", "margin": "logit margin"}[o],
        help=" · ".join(f"{o}: {d}" for o, d in OBJECTIVES.items()),
    )
    widest = max(info.n_neurons for info in trace.layers[:-1])
    high = max(2, min(MAX_K, widest))
    ensure(state.BREADCRUMBS_K, lambda v: isinstance(v, int) and 1 <= v <= high, min(4, widest))
    k = st.slider("Trail neurons per layer", 1, high, key=state.BREADCRUMBS_K)
    return str(objective), int(k)


def _controls(active: ActiveTrace) -> Settings:
    """Draw the controls above the tabs (the URL's values first); the settings, with the tabs'
    fields still empty."""
    URL.restore(active.ref)
    left, middle, right = st.columns([3, 3, 2])
    with left:
        epoch, fixed = _epoch_control(active)
        method = st.selectbox(
            "Attribution method",
            list(METHODS),
            key=state.BREADCRUMBS_METHOD,
            format_func=lambda m: METHOD_TITLES[m],
            help=" · ".join(f"{METHOD_TITLES[m]}: {d}" for m, d in METHODS.items()),
        )
    with middle:
        mode, target_class, sample = _explained_controls(active, epoch)
    with right:
        objective, k = _score_controls(active.trace)
    if sample is not None:
        with guarded("showing the probe sample"):
            sample_panel(active, epoch, sample)
    return Settings(
        tab=TABS[0],
        epoch=epoch,
        epoch_fixed=fixed,
        method=str(method),
        mode=mode,
        target_class=target_class,
        sample=sample,
        objective=objective,
        k=k,
    )


# -- the page ------------------------------------------------------------------------------------
def _tabs(active: ActiveTrace, settings: Settings) -> Settings:
    """Draw the open tab; the settings with its fields filled in."""
    tabs = st.tabs(list(TABS), key=state.BREADCRUMBS_TAB, on_change="rerun")
    chosen: dict[str, Any] = {}
    target = settings.target()
    for tab, name, section in zip(tabs, TABS, _SECTIONS, strict=True):
        if tab.open is False:
            continue
        chosen["tab"] = name
        with tab, guarded(f"drawing {name.lower()}"):
            try:
                section(active, target, chosen)
            except ValueError as exc:  # an analysis that cannot run on this trace/state
                st.warning(md_escape(str(exc), 600))
    return dataclasses.replace(settings, **chosen)


def render_breadcrumbs() -> None:
    """Draw the Breadcrumbs page."""
    require_shell()
    st.caption(
        "Which neurons made this output — attribution (Captum), the trail from the output back "
        "to the inputs, and every claim tested by ablation, pruning and intervention against "
        "random neurons."
    )
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    st.caption(md_escape(active.label, max_length=300))
    live_note(active, "the analyses use the epochs recorded so far")
    problem = model_problem(f"{active.key}|{allowed_patterns()}", active.trace)
    if problem is not None:
        _explain_problem(active, problem)
        return
    settings = _tabs(active, _controls(active))
    URL.publish(settings, active.ref, hidden=settings.hidden())
