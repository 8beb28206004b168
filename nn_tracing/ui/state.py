"""Every session-state key the app uses, in one place.

Session state holds keys, names and small messages only — never DataFrames or traces: the
active trace is a reference string (see :mod:`nn_tracing.ui.traces`), a running job is its id
in the process-wide job registry, and every frame is cached by the trace's sha256 digest.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

__all__ = ["get", "pop", "put", "session_id"]

_PREFIX = "nnt."

# -- the active trace and what the session has loaded ------------------------------------------
#: Reference of the active trace: ``run:<name>``, ``upload:<digest>`` or ``job:<job id>``.
ACTIVE_TRACE = _PREFIX + "active_trace"
#: Traces uploaded in this session: list of ``{"digest": str, "name": str}``.
UPLOADS = _PREFIX + "uploads"
#: The ``trace=`` query parameter the session last applied (so a new one is noticed).
APPLIED_TRACE_PARAM = _PREFIX + "applied_trace_param"
#: Set once the first run of the session has honoured a deep link.
DEEP_LINK_DONE = _PREFIX + "deep_link_done"

# -- training ----------------------------------------------------------------------------------
# (the session's runs live in the job registry, keyed by :func:`session_id`, not here)
#: The live run's ``trace_version`` the pages last drew (a newer one triggers a full rerun).
JOB_SEEN_VERSION = _PREFIX + "job_seen_version"
#: Set by the training form's callback, so that the form does not start the run twice.
SUBMIT_HANDLED = _PREFIX + "submit_handled"
#: Field errors of the last submitted training form: ``{field: message}``.
FORM_ERRORS = _PREFIX + "form_errors"
#: Prefix of the training form's widget keys (``nnt.form.<field>``).
FORM_FIELD = _PREFIX + "form."
#: The preset chosen above the training form (:mod:`nn_tracing.presets`).
FORM_PRESET = _PREFIX + "form_preset"
#: The button that fills the training form with that preset.
FORM_PRESET_LOAD = _PREFIX + "form_preset_load"

# -- the runs folder (nn_tracing.ui.runs_folder, nn_tracing.ui.follow) ------------------------
#: The run the runs-folder view manages (its reference), the action waiting for confirmation
#: (``("delete" | "rename", ref)``), the new name typed, and the outcome ``(kind, text)``.
RUNS_MANAGED = _PREFIX + "runs.managed"
RUNS_PENDING = _PREFIX + "runs.pending"
RUNS_NEW_NAME = _PREFIX + "runs.new_name"
RUNS_MESSAGE = _PREFIX + "runs.message"
#: The button of a page that does not follow a growing run: load its newer epochs.
LIVE_REFRESH = _PREFIX + "live_refresh"

# -- messages shown once, next to where they belong: ``(kind, text)`` ------------------------
TRACE_MESSAGE = _PREFIX + "trace_message"
UPLOAD_MESSAGE = _PREFIX + "upload_message"

# -- analyses on the worker (nn_tracing.ui.compute) -------------------------------------------
#: A "Compute" button of long work whose page names no key of its own (+ ``:<label>``); the
#: computation it asked for is kept under the button's key + ``:asked``.
RUN_ANALYSIS = _PREFIX + "run_analysis"

# -- the findings box (nn_tracing.ui.findings) -------------------------------------------------
#: The Overview's buttons that load another demo trace (+ ``:<demo>``).
DEMO_BUTTON = _PREFIX + "demo_button"

# -- settings in the URL (nn_tracing.ui.url) ---------------------------------------------------
#: The page parameters of the URL a page last applied to its widgets (+ ``:<page>``): a new
#: URL is applied again, an unchanged one leaves the widgets alone.
URL_APPLIED = _PREFIX + "url_applied"

# -- widgets -----------------------------------------------------------------------------------
TRACE_PICKER = _PREFIX + "trace_picker"
UPLOADER = _PREFIX + "uploader"
OVERVIEW_METRIC = _PREFIX + "overview.metric"
OVERVIEW_EPOCH = _PREFIX + "overview.epoch"  # + ":<trace ref>"
OVERVIEW_ORDER = _PREFIX + "overview.order"
OVERVIEW_PERCENTILE = _PREFIX + "overview.percentile"
OVERVIEW_DETAIL_LAYER = _PREFIX + "overview.detail_layer"
OVERVIEW_SCAN_CHART = _PREFIX + "overview.scan_chart"
OVERVIEW_DETAIL_CHART = _PREFIX + "overview.detail_chart"
OVERVIEW_FLAGGED_TABLE = _PREFIX + "overview.flagged_table"
OVERVIEW_OWN_HEALTH = _PREFIX + "overview.own_health"
OVERVIEW_DORMANT_TAU = _PREFIX + "overview.dormant_tau"
OVERVIEW_LOOKED = _PREFIX + "overview.looked"  # the big traces whose Overview this session drew
OVERVIEW_DEFERRED = _PREFIX + "overview.deferred"  # the trace whose sections wait, this run
NEURON_EPOCH = _PREFIX + "neurons.epoch"
NEURON_PICK = _PREFIX + "neurons.pick"


#: A random id of this session, which owns the runs it starts (see :func:`session_id`).
OWNER = _PREFIX + "owner"


def session_id() -> str:
    """This session's id, drawn on first use: the owner of the runs it starts.

    (Not Streamlit's own session id, which is one constant for every ``AppTest``.)
    """
    if OWNER not in st.session_state:
        import uuid

        st.session_state[OWNER] = uuid.uuid4().hex
    return str(st.session_state[OWNER])


def get(key: str, default: Any = None) -> Any:
    """``st.session_state[key]``, or ``default`` when unset."""
    return st.session_state.get(key, default)


def put(key: str, value: Any) -> None:
    """Set ``st.session_state[key]``."""
    st.session_state[key] = value


def pop(key: str, default: Any = None) -> Any:
    """Remove ``key`` and return its value (``default`` when unset)."""
    return st.session_state.pop(key, default)


def epoch_key(base: str, ref: str) -> str:
    """A widget key that belongs to one trace (its epochs differ from other traces')."""
    return f"{base}:{ref}"


# -- Neurons -----------------------------------------------------------------------------------
#: The open tab (its label; ``tab=`` in the URL).
NEURON_TAB = _PREFIX + "neurons.tab"
#: The neuron the page chose for a visit without a link: ``(trace key, neuron id, why)``.
NEURON_FIRST = _PREFIX + "neurons.first"
#: How many top-activating probe samples to show, and whether the most or least active.
NEURON_TOP_K = _PREFIX + "neurons.top_k"
NEURON_TOP_ORDER = _PREFIX + "neurons.top_order"
#: The probe sample whose activation map a channel neuron shows.
NEURON_MAP_SAMPLE = _PREFIX + "neurons.map_sample"
#: Filters of the health table: layers, and flags (a neuron must carry one of them).
NEURON_HEALTH_LAYERS = _PREFIX + "neurons.health_layers"
NEURON_HEALTH_FLAGS = _PREFIX + "neurons.health_flags"
#: The health table (+ ``:<neuron>:<epoch>:<filters>``, so a selection never outlives its view).
NEURON_HEALTH_TABLE = _PREFIX + "neurons.health_table"
#: Clickable charts (+ ``:<neuron>:<epoch>``): incoming weights, weight image, connections.
NEURON_WEIGHTS_CHART = _PREFIX + "neurons.weights_chart"
NEURON_IMAGE_CHART = _PREFIX + "neurons.image_chart"
NEURON_CONNECTIONS_CHART = _PREFIX + "neurons.connections_chart"


# -- Clusters ----------------------------------------------------------------------------------
#: Widgets of the feature set; those that list a trace's layers or epochs get ``:<trace ref>``.
CLUSTERS_FEATURES = _PREFIX + "clusters.features"
CLUSTERS_LAYERS = _PREFIX + "clusters.layers"  # + ":<trace ref>"
CLUSTERS_EPOCH = _PREFIX + "clusters.epoch"  # + ":<trace ref>"
CLUSTERS_RANGE = _PREFIX + "clusters.range"  # + ":<trace ref>"
CLUSTERS_METRIC = _PREFIX + "clusters.metric"
CLUSTERS_METRICS = _PREFIX + "clusters.metrics"
CLUSTERS_SCALE = _PREFIX + "clusters.scale"
CLUSTERS_MAX_NEURONS = _PREFIX + "clusters.max_neurons"
#: Widgets of the projection.
CLUSTERS_PROJECTOR = _PREFIX + "clusters.projector"
CLUSTERS_PERPLEXITY = _PREFIX + "clusters.perplexity"
CLUSTERS_NEIGHBORS = _PREFIX + "clusters.n_neighbors"
CLUSTERS_MIN_DIST = _PREFIX + "clusters.min_dist"
CLUSTERS_DISTANCE = _PREFIX + "clusters.distance"
CLUSTERS_REPRODUCIBLE = _PREFIX + "clusters.reproducible"
CLUSTERS_SEED = _PREFIX + "clusters.seed"
#: Widgets of the clustering.
CLUSTERS_METHOD = _PREFIX + "clusters.method"
CLUSTERS_K = _PREFIX + "clusters.k"
CLUSTERS_MIN_SIZE = _PREFIX + "clusters.min_size"
CLUSTERS_LINKAGE = _PREFIX + "clusters.linkage"
CLUSTERS_ON = _PREFIX + "clusters.on"
#: Widgets of the colour.
CLUSTERS_COLOR = _PREFIX + "clusters.color"
CLUSTERS_COLOR_METRIC = _PREFIX + "clusters.color_metric"
CLUSTERS_COLOR_EPOCH = _PREFIX + "clusters.color_epoch"  # + ":<trace ref>"
#: Widgets of the test against chance.
CLUSTERS_PERMUTATIONS = _PREFIX + "clusters.permutations"
CLUSTERS_NULLS = _PREFIX + "clusters.nulls"
#: "Compute" buttons of long computations (+ ``:<what>``).
CLUSTERS_RUN = _PREFIX + "clusters.run"
#: The selected neurons: list of global neuron ids (also ``sel=`` in the URL).
CLUSTERS_SELECTION = _PREFIX + "clusters.selection"
#: The last map selection event the page applied (so an unchanged event is not re-applied).
CLUSTERS_LAST_EVENT = _PREFIX + "clusters.last_event"
#: Charts and tables that report clicks.
CLUSTERS_MAP_CHART = _PREFIX + "clusters.map_chart"
CLUSTERS_SELECTION_TABLE = _PREFIX + "clusters.selection_table"
CLUSTERS_TYPICAL_TABLE = _PREFIX + "clusters.typical_table"
CLUSTERS_TIME_CHART = _PREFIX + "clusters.time_chart"
#: The epoch slider of the joint embedding (+ ":<trace ref>").
CLUSTERS_TIME_EPOCH = _PREFIX + "clusters.time_epoch"
#: The method of the map through time (``time_map=`` in the URL) and its trails toggle.
CLUSTERS_TIME_METHOD = _PREFIX + "clusters.time_method"
CLUSTERS_TIME_TRAILS = _PREFIX + "clusters.time_trails"


# -- Breadcrumbs -------------------------------------------------------------------------------
#: The model state (a recorded epoch with weights; + ":<trace ref>").
BREADCRUMBS_EPOCH = _PREFIX + "breadcrumbs.epoch"
#: What is explained: mode (a class / one probe sample), the class, the sample, the method,
#: the score (logit or margin) and the trail's neurons per layer.
BREADCRUMBS_MODE = _PREFIX + "breadcrumbs.mode"
BREADCRUMBS_CLASS = _PREFIX + "breadcrumbs.class"
BREADCRUMBS_SAMPLE = _PREFIX + "breadcrumbs.sample"
BREADCRUMBS_METHOD = _PREFIX + "breadcrumbs.method"
BREADCRUMBS_OBJECTIVE = _PREFIX + "breadcrumbs.objective"
BREADCRUMBS_K = _PREFIX + "breadcrumbs.k"
#: The open tab (lazy tabs: only the open one computes).
BREADCRUMBS_TAB = _PREFIX + "breadcrumbs.tab"
#: Clickable charts and the trail table (a click or a row opens the neuron).
BREADCRUMBS_ATTRIBUTION_CHART = _PREFIX + "breadcrumbs.attribution_chart"
BREADCRUMBS_IMAGE_CHART = _PREFIX + "breadcrumbs.image_chart"
BREADCRUMBS_TRAIL_TABLE = _PREFIX + "breadcrumbs.trail_table"
BREADCRUMBS_SINCE_CHART = _PREFIX + "breadcrumbs.since_chart"
BREADCRUMBS_CURVES_CHART = _PREFIX + "breadcrumbs.curves_chart"
#: Compare the four attribution methods (a toggle).
BREADCRUMBS_COMPARE = _PREFIX + "breadcrumbs.compare"
#: The neurons to ablate (global ids; + ":<trace ref>"), their fill, and "use the trail".
BREADCRUMBS_ABLATE = _PREFIX + "breadcrumbs.ablate"
BREADCRUMBS_ABLATE_FILL = _PREFIX + "breadcrumbs.ablate_fill"
BREADCRUMBS_USE_TRAIL = _PREFIX + "breadcrumbs.use_trail"
#: Set by "Use the trail"'s callback; the tab then fills the selection before drawing it (the
#: trail may need an attribution, which runs with a progress bar: never in a callback).
BREADCRUMBS_USE_TRAIL_ASKED = _PREFIX + "breadcrumbs.use_trail_asked"
#: Ablation curves: layer, random orders, fill, the Compute button and the parameters of the
#: last run (+ ":<trace ref>"; a tuple, so results show while the controls are unchanged).
BREADCRUMBS_CURVES_LAYER = _PREFIX + "breadcrumbs.curves_layer"
BREADCRUMBS_REPEATS = _PREFIX + "breadcrumbs.curves_repeats"
BREADCRUMBS_CURVES_FILL = _PREFIX + "breadcrumbs.curves_fill"
BREADCRUMBS_CURVES_BUTTON = _PREFIX + "breadcrumbs.curves_button"
BREADCRUMBS_CURVES_RUN = _PREFIX + "breadcrumbs.curves_run"
#: Pruning: k per layer (+ ":<layer>"), fill, random prunings, the button, the last run's
#: parameters (+ ":<trace ref>") and the three downloads.
BREADCRUMBS_PRUNE_K = _PREFIX + "breadcrumbs.prune_k"
BREADCRUMBS_PRUNE_FILL = _PREFIX + "breadcrumbs.prune_fill"
BREADCRUMBS_PRUNE_REPEATS = _PREFIX + "breadcrumbs.prune_repeats"
BREADCRUMBS_PRUNE_BUTTON = _PREFIX + "breadcrumbs.prune_button"
BREADCRUMBS_PRUNE_RUN = _PREFIX + "breadcrumbs.prune_run"
#: Channel pruning of a convolutional network: the conv layer and how many channels go (the
#: button, run key and random prunings are the pruning's above).
BREADCRUMBS_CHANNEL_LAYER = _PREFIX + "breadcrumbs.channel_layer"
BREADCRUMBS_CHANNEL_K = _PREFIX + "breadcrumbs.channel_k"
BREADCRUMBS_DOWNLOAD_WEIGHTS = _PREFIX + "breadcrumbs.download_weights"
BREADCRUMBS_DOWNLOAD_CONFIG = _PREFIX + "breadcrumbs.download_config"
BREADCRUMBS_DOWNLOAD_TRACE = _PREFIX + "breadcrumbs.download_trace"
#: Intervention: kind, the neuron, the value (+ ":<kind>:<neuron>" or
#: ":weight:<layer>:<row>:<column>"), and the weight's layer, row and column (+ ":<layer>").
BREADCRUMBS_KIND = _PREFIX + "breadcrumbs.kind"
BREADCRUMBS_NEURON = _PREFIX + "breadcrumbs.neuron"
BREADCRUMBS_VALUE = _PREFIX + "breadcrumbs.value"
BREADCRUMBS_WEIGHT_LAYER = _PREFIX + "breadcrumbs.weight_layer"
BREADCRUMBS_WEIGHT_ROW = _PREFIX + "breadcrumbs.weight_row"
BREADCRUMBS_WEIGHT_COLUMN = _PREFIX + "breadcrumbs.weight_column"
#: Intervention, recycle dormant neurons: τ, and the recycled model's downloads.
BREADCRUMBS_RECYCLE_TAU = _PREFIX + "breadcrumbs.recycle_tau"
BREADCRUMBS_RECYCLE_DOWNLOAD_WEIGHTS = _PREFIX + "breadcrumbs.recycle_download_weights"
BREADCRUMBS_RECYCLE_DOWNLOAD_CONFIG = _PREFIX + "breadcrumbs.recycle_download_config"
#: What a link brings for widgets whose keys are known only while the page draws them (+
#: ":<trace ref>"): k per hidden layer of the pruning, whether the ablation curves and the
#: pruning were shown, the intervention's value, the edited weight's row and column. The page
#: moves each into its widget's key when it draws that widget.
BREADCRUMBS_LINK_PRUNE = _PREFIX + "breadcrumbs.link_prune"
BREADCRUMBS_LINK_CURVES = _PREFIX + "breadcrumbs.link_curves"
BREADCRUMBS_LINK_PRUNED = _PREFIX + "breadcrumbs.link_pruned"
BREADCRUMBS_LINK_VALUE = _PREFIX + "breadcrumbs.link_value"
BREADCRUMBS_LINK_ROW = _PREFIX + "breadcrumbs.link_row"
BREADCRUMBS_LINK_COLUMN = _PREFIX + "breadcrumbs.link_column"

# -- Dynamics ----------------------------------------------------------------------------------
#: Training map: the other runs fitted jointly (+ ":<trace ref>"), the sequence (epochs or
#: steps), the features of each sequence (+ ":<trace ref>"), k ("bic", "aic" or a number, as
#: text), restarts, how features are standardised across runs, shuffles of the time test, the
#: curve drawn.
DYNAMICS_RUNS = _PREFIX + "dynamics.runs"
DYNAMICS_SEQUENCE = _PREFIX + "dynamics.sequence"
DYNAMICS_MAP_FEATURES = _PREFIX + "dynamics.map_features"
DYNAMICS_MAP_STEP_FEATURES = _PREFIX + "dynamics.map_step_features"
DYNAMICS_MAP_K = _PREFIX + "dynamics.map_k"
#: The largest k the map / the neuron-level model is fitted with (BIC at the boundary: more).
DYNAMICS_MAP_KMAX = _PREFIX + "dynamics.map_kmax"
DYNAMICS_NEURON_KMAX = _PREFIX + "dynamics.neuron_kmax"
DYNAMICS_MAP_RESTARTS = _PREFIX + "dynamics.map_restarts"
DYNAMICS_MAP_STANDARDIZE = _PREFIX + "dynamics.map_standardize"
DYNAMICS_MAP_SHUFFLES = _PREFIX + "dynamics.map_shuffles"
DYNAMICS_MAP_CURVE = _PREFIX + "dynamics.map_curve"
#: Extra seeds: how many to train, the button, and the ids of the jobs started from here.
DYNAMICS_SEED_COUNT = _PREFIX + "dynamics.seed_count"
DYNAMICS_SEED_BUTTON = _PREFIX + "dynamics.seed_button"
DYNAMICS_SEED_JOBS = _PREFIX + "dynamics.seed_jobs"
DYNAMICS_SEED_MESSAGE = _PREFIX + "dynamics.seed_message"
#: Runs this session trained from the Dynamics page, to tick in the joint fit once they exist.
DYNAMICS_SEED_TRAINED = _PREFIX + "dynamics.seed_trained"
#: Neuron-level model: features, layers (+ ":<trace ref>"), standardisation, k, row order,
#: the raster chart, the tables, and the parameters for which the time test was asked.
DYNAMICS_NEURON_FEATURES = _PREFIX + "dynamics.neuron_features"
DYNAMICS_NEURON_LAYERS = _PREFIX + "dynamics.neuron_layers"
DYNAMICS_NEURON_STANDARDIZE = _PREFIX + "dynamics.neuron_standardize"
DYNAMICS_NEURON_K = _PREFIX + "dynamics.neuron_k"
DYNAMICS_NEURON_MAX = _PREFIX + "dynamics.neuron_max"
DYNAMICS_NEURON_ORDER = _PREFIX + "dynamics.neuron_order"
DYNAMICS_RASTER_CHART = _PREFIX + "dynamics.raster_chart"
DYNAMICS_NEURON_TABLE = _PREFIX + "dynamics.neuron_table"
DYNAMICS_UNUSUAL_TABLE = _PREFIX + "dynamics.unusual_table"
DYNAMICS_NEURON_TEST = _PREFIX + "dynamics.neuron_test"
DYNAMICS_NEURON_TEST_BUTTON = _PREFIX + "dynamics.neuron_test_button"
#: Decision entropy: bins, binning, label, permutations, FDR level and family, the epoch of
#: the ranking (+ ":<trace ref>") and the ranking table.
DYNAMICS_ENTROPY_BINS = _PREFIX + "dynamics.entropy_bins"
DYNAMICS_ENTROPY_BINNING = _PREFIX + "dynamics.entropy_binning"
DYNAMICS_ENTROPY_LABEL = _PREFIX + "dynamics.entropy_label"
DYNAMICS_ENTROPY_PERMUTATIONS = _PREFIX + "dynamics.entropy_permutations"
DYNAMICS_ENTROPY_ALPHA = _PREFIX + "dynamics.entropy_alpha"
DYNAMICS_ENTROPY_FDR = _PREFIX + "dynamics.entropy_fdr"
DYNAMICS_ENTROPY_EPOCH = _PREFIX + "dynamics.entropy_epoch"
DYNAMICS_ENTROPY_TABLE = _PREFIX + "dynamics.entropy_table"
#: The random seed of restarts, shuffles and permutations on the whole page.
DYNAMICS_RANDOM_STATE = _PREFIX + "dynamics.random_state"

# -- Compare -----------------------------------------------------------------------------------
#: The other runs compared with the active one (+ ":<trace ref>"; references such as
#: ``run:<name>``), which of them is run B, the curves (quantity, smoothing, per step), the
#: metric of the quantile bands, the matched layer and epoch (+ ":<trace ref>"), the null and
#: its permutations, the similarity, the picked pair (+ ":<trace ref>"), the pair's metric and
#: the random seed.
COMPARE_RUNS = _PREFIX + "compare.runs"
COMPARE_B = _PREFIX + "compare.b"
COMPARE_QUANTITY = _PREFIX + "compare.quantity"
COMPARE_SMOOTHING = _PREFIX + "compare.smoothing"
COMPARE_PER_STEP = _PREFIX + "compare.per_step"
COMPARE_METRIC = _PREFIX + "compare.metric"
COMPARE_LAYER = _PREFIX + "compare.layer"
COMPARE_EPOCH = _PREFIX + "compare.epoch"
COMPARE_NULL = _PREFIX + "compare.null"
COMPARE_PERMUTATIONS = _PREFIX + "compare.permutations"
COMPARE_METHOD = _PREFIX + "compare.method"
COMPARE_PAIR = _PREFIX + "compare.pair"
COMPARE_PAIR_METRIC = _PREFIX + "compare.pair_metric"
COMPARE_PAIRS_CHART = _PREFIX + "compare.pairs_chart"
COMPARE_RANDOM_STATE = _PREFIX + "compare.random_state"
