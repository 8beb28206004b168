"""Every session-state key the app uses, in one place.

Session state holds keys, names and small messages only — never DataFrames or traces: the
active trace is a reference string (see :mod:`nn_tracing.ui.traces`), a running job is its id
in the process-wide job registry, and every frame is cached by the trace's sha256 digest.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

__all__ = ["get", "pop", "put"]

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
#: A neuron picked in a chart, waiting for the page switch: ``(trace name, signature)``.
PENDING_NEURON = _PREFIX + "pending_neuron"

# -- training ----------------------------------------------------------------------------------
#: Id of this session's training job (see :mod:`nn_tracing.jobs`).
JOB_ID = _PREFIX + "job_id"
#: The job's ``trace_version`` the pages last drew (a newer one triggers a full rerun).
JOB_SEEN_VERSION = _PREFIX + "job_seen_version"
#: Field errors of the last submitted training form: ``{field: message}``.
FORM_ERRORS = _PREFIX + "form_errors"
#: Prefix of the training form's widget keys (``nnt.form.<field>``).
FORM_FIELD = _PREFIX + "form."

# -- messages shown once, next to where they belong: ``(kind, text)`` ------------------------
TRACE_MESSAGE = _PREFIX + "trace_message"
UPLOAD_MESSAGE = _PREFIX + "upload_message"
JOB_MESSAGE = _PREFIX + "job_message"

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
NEURON_EPOCH = _PREFIX + "neurons.epoch"
NEURON_PICK = _PREFIX + "neurons.pick"


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
