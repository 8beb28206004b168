"""The Clusters page: a meta-model of the neurons, tested against chance.

The user picks what describes a neuron (a feature set), a projection (PCA, t-SNE, UMAP) and a
clustering (k-means, HDBSCAN, agglomerative); the page draws the map of the neurons, says
prominently whether the clusters are more separated than in null versions of the data
(:mod:`nn_tracing.analysis.baselines`), summarises every cluster, lists the neurons selected
on the map, and — for the per-epoch feature sets — moves the neurons through training on one
map (:mod:`nn_tracing.ui.clusters_time`: joint PCA / t-SNE / UMAP, aligned UMAP or M-PHATE,
each with how faithful it is).

Every computation is :mod:`nn_tracing.analysis.embedding`'s or ``baselines``'; they run on
the server's analysis worker and their results are shared (:mod:`nn_tracing.ui.compute`:
one analysis at a time, a progress bar, an estimate and a button for long work). The settings and
the selection live in the URL (:mod:`nn_tracing.ui.clusters_settings`: the page's
:class:`Settings` and their widgets), so the address bar reopens the same view in another
browser. What the page shows is built by :mod:`nn_tracing.views.clusters` (no Streamlit); this
module holds the layout and runs the slow work.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ..analysis import numba_guard
from ..analysis.baselines import NULLS, ChanceTest, reinitialisation_problem
from ..analysis.embedding import (
    CLUSTERERS,
    PROJECTORS,
    ClusterSummary,
    FeatureError,
    FeatureSpec,
    NeuronFeatures,
    estimate_seconds,
    neuron_features,
)
from ..analysis.fourier import layer_frequencies
from ..trace import METRICS, NetworkTrace
from ..views import clusters as views
from ..views.clusters import Clustering, Projection
from ..views.neuron_states import state_matrix
from ..viz import clusters as cviz
from ..work import result_key
from . import cache, state
from .app import require_shell
from .charts import BLANK, blank_missing, neuron_table, show_chart
from .clusters_settings import (
    HMM_FAILED,
    URL,
    Settings,
    controls,
    publish_url,
    selected,
)
from .clusters_time import through_time_section
from .compute import AUTO_SECONDS, computed, recall, remember, run_analysis
from .follow import live_note
from .neuron_states import neuron_states
from .text import fmt_duration, guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active

__all__ = ["URL", "Settings", "render_clusters", "start_warm_up_once"]


# -- warm-up ----------------------------------------------------------------------------------
def _real_server() -> bool:
    """Whether this runs in a Streamlit server (not AppTest, whose runtime is a mock)."""
    try:
        from streamlit.runtime import Runtime

        return Runtime.exists() and type(Runtime.instance()) is Runtime
    except Exception:
        return False


def start_warm_up_once() -> None:
    """Start UMAP's compilation in the background, once per server process (not in tests);
    ``NN_TRACING_UMAP_WARMUP=0`` switches it off."""
    if _real_server():
        numba_guard.start_warm_up()


# -- computations: on the analysis worker (nn_tracing.ui.compute) -------------------------------
def _features(active: ActiveTrace, spec: FeatureSpec) -> NeuronFeatures | None:
    return run_analysis(
        "features",
        active.key,
        spec.to_dict(),
        lambda progress: neuron_features(active.trace, spec),
        label=f"Describing the neurons: {spec.describe()}",
        button_key=f"{state.CLUSTERS_RUN}:features",
        short=True,  # reading features never waits behind a long analysis
    )


def _projection(
    active: ActiveTrace, features: NeuronFeatures, settings: Settings
) -> Projection | None:
    params = settings.projector_params()
    estimate = estimate_seconds(
        settings.projector, features.n_rows, n_features=features.values.shape[1]
    )
    name = PROJECTORS[settings.projector]
    return run_analysis(
        "projection",
        active.key,
        [features.spec.to_dict(), params],
        lambda progress: views.project(features.values, params, progress),
        label=f"{name} of {features.n_rows} neurons",
        estimate=estimate,
        button=f"Compute the {name} map ({fmt_duration(estimate)})",
        button_key=f"{state.CLUSTERS_RUN}:projection",
    )


def _clustering(
    active: ActiveTrace,
    features: NeuronFeatures,
    projection: Projection | None,
    settings: Settings,
) -> Clustering | None:
    data = views.clustering_input(features, projection, settings.on)
    if data is None:
        return None
    estimate = estimate_seconds(settings.method, data.shape[0], n_features=data.shape[1])
    name = CLUSTERERS[settings.method]
    return run_analysis(
        "clusters",
        active.key,
        [features.spec.to_dict(), settings.clusterer_params()],
        lambda progress: views.cluster(data, settings.clusterer(), progress),
        label=f"{name} clustering",
        estimate=estimate,
        button=f"Cluster with {name} ({fmt_duration(estimate)})",
        button_key=f"{state.CLUSTERS_RUN}:clusters",
    )


def _chance(active: ActiveTrace, features: NeuronFeatures, settings: Settings) -> ChanceTest | None:
    if not settings.nulls:
        st.warning(
            "No null model is chosen: pick at least one, or nothing says whether these clusters "
            "are more than chance."
        )
        return None
    params = _chance_params(features, settings, settings.permutations)
    projector_params = settings.projector_params() if settings.on == "map" else None
    previous = _previous_test(active, features, settings)
    reused = previous.n_permutations if previous is not None else 0
    estimate = views.chance_estimate(
        active.trace,
        features,
        settings.clusterer(),
        projector_params=projector_params,
        permutations=max(settings.permutations - reused, 1),
        nulls=settings.nulls,
    )
    if active.live:  # a new epoch makes a new trace version: run the test when asked
        estimate = max(estimate, AUTO_SECONDS + 1)
    return run_analysis(
        "chance",
        active.key,
        params,
        lambda progress: views.fit_chance_test(
            active.trace,
            features,
            settings.clusterer(),
            projector_params=projector_params,
            permutations=settings.permutations,
            nulls=settings.nulls,
            seed=settings.seed,
            progress=progress,
            previous=previous,
        ),
        label=f"Testing the clusters against up to {settings.permutations} versions of each null"
        + (f" (the {reused} already drawn reused)" if reused else ""),
        estimate=estimate,
        button=f"Run the test against chance ({fmt_duration(estimate)})",
        button_key=f"{state.CLUSTERS_RUN}:chance",
    )


def _chance_params(features: NeuronFeatures, settings: Settings, permutations: int) -> list[Any]:
    return [
        features.spec.to_dict(),
        settings.clusterer_params(),
        permutations,
        list(settings.nulls),
    ]


def _previous_test(
    active: ActiveTrace, features: NeuronFeatures, settings: Settings
) -> ChanceTest | None:
    """The finished test of the same clustering with the most versions below the page's P, if
    this server holds one (its versions are reused, not drawn again)."""
    for smaller in views.smaller_permutations(settings.permutations):
        params = _chance_params(features, settings, smaller)
        if not computed("chance", active.key, params):
            continue
        try:
            found = recall("chance", active.key, params)
        except (FeatureError, ValueError):  # that test failed: nothing to reuse
            continue
        if isinstance(found, ChanceTest):
            return found
    return None


def _more_versions(active: ActiveTrace, features: NeuronFeatures, settings: Settings) -> None:
    """A button that draws more versions of the test just shown, for a finer p-value."""
    more = views.more_permutations(settings.permutations)
    if more is None:
        return
    new_key = result_key("chance", active.key, _chance_params(features, settings, more))
    st.button(
        f"Draw more versions for a finer p-value: P = {more} (p can reach {1 / (more + 1):.2g}; "
        f"the {settings.permutations} drawn are reused)",
        key=f"{state.CLUSTERS_RUN}:more",
        on_click=_ask_for_more,
        args=(more, new_key),
        help="The test shown decides at p = 0.05 with the fewest versions. A larger P draws "
        "more versions of each null (the same seeds: the versions drawn so far are its first "
        "ones) and gives the p-value that P would have given from the start.",
    )


def _ask_for_more(permutations: int, key: str) -> None:
    state.put(state.CLUSTERS_PERMUTATIONS, permutations)
    state.put(f"{state.CLUSTERS_RUN}:chance:asked", key)  # run it without a second click


def _summary(
    active: ActiveTrace, features: NeuronFeatures, clustering: Clustering, settings: Settings
) -> ClusterSummary:
    params = [features.spec.to_dict(), settings.clusterer_params()]
    found = recall("summary", active.key, params)
    if found is None:
        found = views.summarise(features, clustering.labels)
        remember("summary", active.key, params, found)
    return found  # type: ignore[no-any-return]


# -- colours ----------------------------------------------------------------------------------
def _hmm_states(active: ActiveTrace) -> np.ndarray | None:
    """HMM states of every neuron at every recorded epoch, shape (n_neurons, n_epochs), from the
    neuron-level HMM the Dynamics page shares (:mod:`nn_tracing.ui.neuron_states`: one fit per
    trace); −1 for a neuron the HMM does not model. ``None`` when the fit fails (then
    remembered, and the colour option hidden)."""
    try:
        return state_matrix(neuron_states(active), active.trace)
    except Exception as exc:
        remember(HMM_FAILED, active.key, None, f"the HMM fit failed: {exc}")
        st.warning(
            f"HMM states cannot colour this trace: {md_escape(exc, 300)}. "
            "Colouring by cluster instead."
        )
        return None


def _coloring(
    active: ActiveTrace,
    neuron_ids: np.ndarray,
    layers: np.ndarray,
    cluster_labels: np.ndarray | None,
    settings: Settings,
    epoch: int,
) -> views.Coloring:
    """The colour of the points (the health flags and HMM states fetched when they colour)."""
    color = settings.color
    return views.point_colors(
        active.trace,
        neuron_ids,
        layers,
        cluster_labels,
        color,
        settings.color_metric,
        epoch,
        health=cache.health(active.key, active.trace) if color == "health" else None,
        hmm_states=_hmm_states(active) if color == "hmm" else None,
        frequencies=_frequencies(active.key, epoch, active.trace) if color == "frequency" else None,
    )


@st.cache_data(max_entries=16, show_spinner="Running every pair of residues through the model…")
def _frequencies(key: str, epoch: int, _trace: NetworkTrace) -> pd.DataFrame:
    """Every neuron's dominant frequency at ``epoch`` (modular traces only)."""
    return layer_frequencies(_trace, epoch)


# -- selection ----------------------------------------------------------------------------------
def _selection_from_event(
    event: Any, frame: pd.DataFrame, cell_of_point: np.ndarray
) -> list[int] | None:
    """The neurons a map event selects, or ``None`` when the event is not new."""
    selection = getattr(event, "selection", None) or {}
    if not isinstance(selection, dict):
        return None
    fingerprint = json.dumps(selection, sort_keys=True, default=str)
    if fingerprint == state.get(state.CLUSTERS_LAST_EVENT):
        return None
    state.put(state.CLUSTERS_LAST_EVENT, fingerprint)
    # a cleared selection keeps the list (use "Clear selection")
    return views.points_in_selection(selection, frame, cell_of_point)


# -- sections -------------------------------------------------------------------------------------
def _verdict(test: ChanceTest | None) -> None:
    """The test's verdict, shown above the map."""
    if test is None:
        st.warning(
            "**Against chance: not tested yet.** Any clustering algorithm returns clusters; "
            "run the test below before reading anything into them.",
            icon=":material/help:",
        )
        return
    verdict = views.verdict(test)
    show = {"success": st.success, "info": st.info}.get(verdict.kind, st.warning)
    show(f"**Against chance:** {md_escape(verdict.sentence, 600)}{verdict.note}", icon=verdict.icon)


def _chance_section(
    test: ChanceTest | None,
    clustering: Clustering,
    settings: Settings,
    active: ActiveTrace,
    features: NeuronFeatures,
) -> None:
    st.subheader("Against chance")
    st.caption(
        views.chance_caption(
            clustering.score_name, settings.permutations, settings.method, settings.on
        )
    )
    if test is None:
        return
    for result in test.results_.values():
        st.markdown(f"- **{md_escape(result.description)}** — {md_escape(result.sentence, 600)}")
    for name, reason in test.unavailable_.items():
        st.markdown(f"- **{md_escape(NULLS[name])}** — not run: {md_escape(reason, 400)}")
    reused = getattr(test, "reused_", 0)
    chart = views.null_chart(test)
    if chart is not None:
        show_chart(chart, width="content")
        shown, config = blank_missing(views.null_table(test))
        st.dataframe(shown, hide_index=True, column_config=config, placeholder=BLANK)
    st.caption(
        f"Real features: silhouette {test.observed_['silhouette']:.3f}, "
        f"{test.score_name_} {test.observed_['score']:.3f}, on {test.n_rows_} neurons; the "
        f"test drew {test.n_drawn_} null versions in {fmt_duration(test.seconds_)}"
        + (f" ({reused} of them reused from the test with fewer)" if reused else "")
        + ". Column "
        "shuffling destroys every dependence between features, not only clusters; the Gaussian "
        "null asks whether there is more than one cloud at all."
    )
    if any(not result.stopped_early for result in test.results_.values()):
        _more_versions(active, features, settings)  # a stopped null is decided for any P


def _map(
    active: ActiveTrace,
    features: NeuronFeatures,
    projection: Projection,
    clustering: Clustering | None,
    settings: Settings,
) -> pd.DataFrame:
    """The map with its selection; returns its points."""
    labels = clustering.labels if clustering is not None else None
    coloring = _coloring(
        active, features.neuron_ids, features.layers, labels, settings, settings.color_epoch
    )
    drawn = views.neuron_map(
        active.trace, features, projection, clustering, coloring, selected(), settings.projector
    )
    event = show_chart(
        drawn.chart, select=[cviz.CLICK, cviz.BOX], key=f"{state.CLUSTERS_MAP_CHART}:{active.key}"
    )
    st.caption(
        "Click a neuron (shift-click for more) or drag a box to select; the selection is listed "
        "below, and a click on a row there opens the neuron's profile."
    )
    picked = _selection_from_event(event, drawn.frame, drawn.cell_of_point)
    if picked is not None:
        state.put(state.CLUSTERS_SELECTION, picked)
        # the address bar shares the selection at once
        publish_url(replace(settings, selection=tuple(picked)), active.ref)
    return drawn.frame


def _projection_notes(projection: Projection, settings: Settings) -> None:
    """PCA's explained variance, or how a t-SNE or UMAP map was made."""
    if projection.explained.size:
        show_chart(cviz.explained_variance_chart(projection.explained), width="content")
        st.caption(views.variance_caption(projection.explained))
    else:
        took = fmt_duration(projection.seconds)
        st.caption(views.projection_caption(projection, settings.on, took))


def _selection_table(active: ActiveTrace, frame: pd.DataFrame) -> None:
    chosen = selected()
    st.subheader("Selected neurons")
    if not chosen:
        st.caption("Nothing selected: click or box-select neurons on the map.")
        return
    shown, missing = views.selected_rows(frame, chosen)
    left, right = st.columns([5, 1])
    left.caption(
        f"{len(shown)} neuron(s) selected — click a row to open its profile on the Neurons page."
        + (f" {missing} selected neuron(s) are not on this map." if missing else "")
    )
    right.button(
        "Clear selection",
        key=f"{state.CLUSTERS_RUN}:clear",
        on_click=state.put,
        args=(state.CLUSTERS_SELECTION, []),
    )
    neuron_table(
        active.name,
        shown,
        list(shown["signature"]),
        key=f"{state.CLUSTERS_SELECTION_TABLE}:{hash(tuple(chosen))}",
        max_height=360,
        column_config={m: st.column_config.NumberColumn(format="%.4g") for m in METRICS},
    )


def _summary_section(
    active: ActiveTrace, features: NeuronFeatures, summary: ClusterSummary
) -> None:
    st.subheader("The clusters")
    st.dataframe(
        views.summary_table(summary),
        hide_index=True,
        column_config={
            "share": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
            "spread": st.column_config.NumberColumn(format="%.3g"),
        },
    )
    show_chart(views.profiles_chart(summary, features.spec), width="content")
    left, right = st.columns(2)
    with left:
        show_chart(views.layers_chart(summary, active.trace), width="stretch")
    with right:
        st.markdown("**Most typical neurons** (nearest their cluster's centre) — click to open")
        typical = views.typical_table(summary)
        neuron_table(
            active.name,
            typical,
            list(typical["signature"]),
            key=f"{state.CLUSTERS_TYPICAL_TABLE}:{active.key}",
            max_height=320,
            column_config={"distance": st.column_config.NumberColumn(format="%.3g")},
        )


def _clusters_section(
    active: ActiveTrace,
    features: NeuronFeatures,
    clustering: Clustering,
    frame: pd.DataFrame | None,
    settings: Settings,
) -> None:
    """What every cluster holds, and the labels to download."""
    with guarded("summarising the clusters"):
        _summary_section(active, features, _summary(active, features, clustering, settings))
    if frame is not None:
        st.download_button(
            "Cluster labels (CSV)",
            data=lambda: views.labels_csv(
                features,
                frame,
                projector=settings.projector,
                method=settings.method,
                on=settings.on,
            ),
            file_name=f"{active.name or 'trace'}.clusters.csv",
            mime="text/csv",
            key=f"{state.CLUSTERS_RUN}:download",
            on_click="ignore",
        )


def _excluded(features: NeuronFeatures) -> None:
    if features.excluded.empty:
        return
    reasons = features.excluded["reason"].value_counts()
    summary = "; ".join(f"{count} {md_escape(reason, 120)}" for reason, count in reasons.items())
    with st.expander(
        f"{len(features.excluded)} neuron(s) cannot be placed on the map and are left out: "
        f"{summary}"
    ):
        st.dataframe(features.excluded, hide_index=True)


def _placeable(active: ActiveTrace, settings: Settings) -> NeuronFeatures | None:
    """The features of the neurons, said in place when there are none or too few to map."""
    try:
        features = _features(active, settings.spec())
    except FeatureError as exc:
        st.warning(f"These features cannot be built from this trace: {md_escape(exc, 600)}")
        return None
    if features is None:
        return None
    if features.sample is not None:
        st.caption(md_escape(features.sample.describe(len(features.columns)), 400))
    _excluded(features)
    for note in features.notes:
        st.caption(md_escape(note, 400))
    if features.n_rows < 5:
        st.warning(
            f"Only {features.n_rows} neuron(s) can be placed with these features: a map and "
            "clusters need at least 5. Include more layers or pick another feature set."
        )
        return None
    return features


def _fits(
    active: ActiveTrace, features: NeuronFeatures, settings: Settings
) -> tuple[Projection | None, Clustering | None, ChanceTest | None]:
    """The projection, the clustering and the test against chance (with its verdict); each
    one that cannot run says why in place."""
    projection = clustering = test = None
    with guarded(f"projecting the neurons with {PROJECTORS[settings.projector]}"):
        try:
            projection = _projection(active, features, settings)
        except ValueError as exc:
            st.warning(f"The projection cannot run: {md_escape(exc, 400)}")
    with guarded(f"clustering with {CLUSTERERS[settings.method]}"):
        try:
            clustering = _clustering(active, features, projection, settings)
        except ValueError as exc:
            st.warning(f"The clustering cannot run: {md_escape(exc, 400)}")
    if clustering is not None:
        with guarded("testing the clusters against chance"):
            try:
                test = _chance(active, features, settings)
            except (FeatureError, ValueError) as exc:
                st.warning(f"The test against chance cannot run: {md_escape(exc, 400)}")
        _verdict(test)
        st.caption(views.clustering_caption(clustering, settings.method, settings.on))
    return projection, clustering, test


def _results(active: ActiveTrace, settings: Settings) -> None:
    features = _placeable(active, settings)
    if features is None:
        return
    projection, clustering, test = _fits(active, features, settings)
    frame = None
    if projection is not None:
        with guarded("drawing the map"):
            frame = _map(active, features, projection, clustering, settings)
            _projection_notes(projection, settings)
    if clustering is not None:
        with guarded("summarising the test against chance"):
            _chance_section(test, clustering, settings, active, features)
    if frame is not None:
        with guarded("listing the selected neurons"):
            _selection_table(active, frame)
    if clustering is not None:
        _clusters_section(active, features, clustering, frame, settings)
    with guarded("following the neurons through training"):
        try:
            through_time_section(
                active, features, clustering, settings, _coloring, estimate_seconds
            )
        except (FeatureError, ValueError) as exc:
            st.warning(f"The joint embedding cannot run: {md_escape(exc, 400)}")


def render_clusters() -> None:
    """Draw the Clusters page."""
    require_shell()
    st.caption(
        "A meta-model of the neurons: describe each neuron by features, project them to a map, "
        "cluster them — and test whether the clusters are more than chance."
    )
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    live_note(active, "the map describes the epochs recorded so far")
    status = numba_guard.warm_up_status()
    if status.state == "running":
        st.caption(
            f"UMAP is compiling in the background (started {fmt_duration(status.seconds)} "
            "ago); a UMAP asked for now waits for it."
        )
    settings: Settings | None = None
    with guarded("reading the settings"):
        settings = controls(active)
        publish_url(settings, active.ref)
    if settings is None:
        return
    problem = reinitialisation_problem(active.trace)
    if problem and "untrained" in settings.nulls and settings.kind != "trajectory":
        st.caption(f"The untrained-network null cannot run: {md_escape(problem, 300)}")
    _results(active, settings)
