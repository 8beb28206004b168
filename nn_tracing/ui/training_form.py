"""The sidebar's training form: every ``TrainConfig`` field, validated before a run starts.

The form is an ``st.form``: changing a field reruns nothing. Submitting calls
:func:`_submit` (a callback, so that it runs before the page is drawn): it turns the fields
into a :class:`~nn_tracing.config.TrainConfig` with :func:`config_from_form`, and either starts
a background job (:mod:`nn_tracing.jobs`) or keeps a message per field, which the form then
shows next to the field it concerns.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import streamlit as st

from .. import jobs
from ..budget import server_budget
from ..config import ACTIVATIONS, DATASETS, OPTIMIZERS, TrainConfig, config_problems
from ..data import BUILTIN_DATASETS
from ..estimate import RunTooLarge, format_bytes
from ..model_entry import (
    BUILTIN_MODELS,
    ENV_VAR,
    allowed_patterns,
    check_allowed,
    check_model_name,
)
from ..presets import PRESETS, preset_config
from ..runs import runs_dir
from ..step_schedule import format_step_spec, parse_step_spec
from ..trace_budget import plan_budget
from . import state
from .text import md_escape
from .traces import set_active

__all__ = [
    "DEFAULTS",
    "MODEL_CHOICES",
    "RECORD_MODES",
    "config_from_form",
    "estimate_lines",
    "load_settings",
    "render_form",
    "render_presets",
]

logger = logging.getLogger("nn_tracing.ui")

#: How ``epoch_intervals`` is chosen in the form, and what each choice means.
RECORD_MODES: dict[str, str] = {
    "every": "every epoch",
    "nth": "every n-th epoch (and the last)",
    "last": "the last epoch only",
    "list": "a list of epochs",
    "steps": "on optimizer steps: N, log, log:N, a list, last",
}

#: The form's model choices: the built-in ones, or an entry point typed in.
MODEL_CHOICES: dict[str, str] = {
    "mlp": "MLP (built in)",
    "cnn": "CNN (built in, image datasets)",
    "entry": "your own: package.module:factory",
}

#: The form's fields and their first values.
DEFAULTS: dict[str, Any] = {
    "dataset": "moons",
    "model": "mlp",
    "entry_point": "",
    "model_kwargs": "",
    "hidden": "16, 16",
    "activation": "relu",
    "epochs": 30,
    "batch_size": 64,
    "lr": 0.01,
    "optimizer": "adam",
    "seed": 0,
    "probe_size": 256,
    "record_mode": "every",
    "record_value": "5",
    "keep_weights": False,
    "keep_batches": False,
    "traced": "",
    "activation_samples": 0,
    "float16": False,
    "max_trace_mib": 0.0,
    "on_budget": "refuse",
    "n_samples": 2000,
    "dropout": 0.0,
    "weight_decay": 0.0,
    "momentum": 0.9,
    "data_seed": 0,
    "val_fraction": 0.25,
    "device": "cpu",
    "modulus": 59,
    "modular_train_fraction": 0.4,
    "modular_embedding_dim": 0,
    "name": "",
}

#: ``TrainConfig`` field -> form field (where its error is shown).
_FIELD_OF: dict[str, str] = {
    "hidden_sizes": "hidden",
    "epoch_intervals": "record_value",
    "step_intervals": "record_value",
    "drop_batches": "keep_batches",
    "activation_dtype": "float16",
    "max_trace_bytes": "max_trace_mib",
    "traced_layers": "traced",
}
#: Form fields that are ``TrainConfig`` fields of the same name and value.
_SAME_NAME = (
    "dataset",
    "activation",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "seed",
    "probe_size",
    "n_samples",
    "dropout",
    "weight_decay",
    "momentum",
    "data_seed",
    "val_fraction",
    "device",
    "on_budget",
    "modulus",
    "modular_train_fraction",
    "modular_embedding_dim",
)
FORM_LEVEL = "_form"
_DATASETS = [d for d in DATASETS if d != "csv"]  # CSV training needs a file path: CLI only


def _ints(text: str, field: str, what: str) -> tuple[int, ...]:
    parts = [p for p in re.split(r"[,\s;]+", str(text).strip()) if p]
    if not parts:
        raise ValueError(f"{field}: enter {what}")
    values = []
    for part in parts:
        try:
            values.append(int(part))
        except ValueError:
            raise ValueError(f"{field}: {part!r} is not a whole number") from None
    return tuple(values)


def _epoch_intervals(mode: str, value: str) -> int | tuple[int, ...] | None:
    if mode == "every":
        return None
    if mode == "last":
        return -1
    if mode == "nth":
        (n,) = _ints(value, "record_value", "n, e.g. 5")[:1] or (0,)
        if n < 1:
            raise ValueError("record_value: n must be a whole number of at least 1")
        return n
    if mode == "list":
        return _ints(value, "record_value", "the epochs to record, e.g. 1, 5, 10, 30")
    raise ValueError(f"record_mode: unknown choice {mode!r}")


def _step_intervals(value: str) -> int | tuple[int, ...] | str:
    """The step schedule typed in the form (``log:25``, ``25``, ``10, 100``, ``last``)."""
    try:
        return parse_step_spec(value)
    except ValueError as exc:
        raise ValueError(f"record_value: {exc}") from None


def _storage_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    """The storage knobs and the budget: ``0`` kept samples is all, ``0`` MiB is no budget."""
    kept = values["activation_samples"]
    mib = values["max_trace_mib"]
    traced = [name for name in re.split(r"[,\s;]+", str(values["traced"]).strip()) if name]
    return {
        "traced_layers": tuple(traced) if traced else None,
        "activation_samples": None if kept == 0 else kept,
        "activation_dtype": "float16" if values["float16"] else "float32",
        "max_trace_bytes": None if not mib else round(float(mib) * 2**20),
    }


def _model_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    """``model`` and ``model_kwargs`` from the form (``ValueError`` "field: why"). An entry
    point is checked against ``NN_TRACING_MODELS`` here, before anything is imported."""
    choice = values["model"]
    text = str(values["model_kwargs"]).strip()
    try:
        kwargs = json.loads(text) if text else None
    except ValueError as exc:
        raise ValueError(f"model_kwargs: not valid JSON ({exc})") from None
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError('model_kwargs: a JSON object, e.g. {"channels": [8, 16]}')
    if choice in BUILTIN_MODELS:
        return {"model": choice, "model_kwargs": kwargs}
    entry = str(values["entry_point"]).strip()
    if not entry:
        raise ValueError("entry_point: enter your model's entry point, package.module:factory")
    try:
        check_model_name(entry)
        check_allowed(entry)
    except ValueError as exc:
        raise ValueError(f"entry_point: {exc}") from None
    return {"model": entry, "model_kwargs": kwargs}


def config_from_form(values: Mapping[str, Any]) -> tuple[TrainConfig | None, dict[str, str]]:
    """Turn the form's values into a config, or say what is wrong with which field.

    Returns ``(config, {})`` or ``(None, {form field: message})``; ``"_form"`` holds a
    message that belongs to no single field.
    """
    errors: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    try:
        kwargs["hidden_sizes"] = _ints(values["hidden"], "hidden", "layer widths, e.g. 16, 16")
    except ValueError as exc:
        errors["hidden"] = str(exc).split(": ", 1)[1]
    try:
        if values["record_mode"] == "steps":
            kwargs["step_intervals"] = _step_intervals(values["record_value"])
        else:
            mode, value = values["record_mode"], values["record_value"]
            kwargs["epoch_intervals"] = _epoch_intervals(mode, value)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        errors[field] = message
    try:
        kwargs.update(_model_kwargs(values))
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        errors[field] = message
    kwargs.update({field: values[field] for field in _SAME_NAME})
    kwargs["keep_weights"] = bool(values["keep_weights"])
    kwargs["drop_batches"] = not values["keep_batches"]
    kwargs.update(_storage_kwargs(values))
    # every field that does not validate, at once (one that did not parse above is left to
    # its default here, and said once)
    try:
        problems = config_problems(**kwargs)
    except TypeError as exc:
        return None, {**errors, FORM_LEVEL: str(exc)}
    for name, why in problems.items():
        field = _FIELD_OF.get(name, name) if name else FORM_LEVEL
        if field == "model" and values["model"] not in BUILTIN_MODELS:
            field = "entry_point"
        errors.setdefault(field if field in DEFAULTS else FORM_LEVEL, why)
    if errors:
        return None, errors
    return TrainConfig(**kwargs), {}


def _key(field: str) -> str:
    return state.FORM_FIELD + field


def _values() -> dict[str, Any]:
    return {field: state.get(_key(field), default) for field, default in DEFAULTS.items()}


def _submit() -> None:
    """Form callback: validate, then start the job (or keep the errors for the form)."""
    state.put(state.SUBMIT_HANDLED, True)
    owner = state.session_id()
    try:
        values = _values()
        config, errors = config_from_form(values)
        if config is not None and any(j.is_running() for j in jobs.jobs_of(owner)):
            errors = {FORM_LEVEL: "This session is training already; stop that run first."}
        if config is None or errors:
            state.put(state.FORM_ERRORS, errors)
            return
        name = str(values["name"]).strip() or None
        job = jobs.start_job(config, runs_dir(), name=name, owner=owner)
    except (jobs.JobLimitError, RunTooLarge) as exc:
        state.put(state.FORM_ERRORS, {FORM_LEVEL: str(exc)})
        return
    except Exception as exc:  # shown next to the button, traceback to the log
        logger.exception("could not start a training run")
        state.put(state.FORM_ERRORS, {FORM_LEVEL: f"Could not start training: {exc}"})
        return
    for ended in jobs.jobs_of(owner):
        if ended is not job:
            ended.dismiss()  # the new run replaces what the form said of earlier ones
    state.put(state.FORM_ERRORS, {})
    state.put(state.JOB_SEEN_VERSION, 0)
    set_active(f"job:{job.job_id}")


def load_settings(config: Mapping[str, Any]) -> None:
    """Button callback: fill the form from a trace's config (validated first; a config that
    does not validate leaves the form as it is and says why under the Run button)."""
    try:
        cfg = TrainConfig.from_dict({k: v for k, v in config.items() if k != "csv_path"})
    except (TypeError, ValueError) as exc:
        state.put(state.FORM_ERRORS, {FORM_LEVEL: f"The trace's settings cannot be used: {exc}"})
        return
    intervals = cfg.epoch_intervals
    mode, value = "every", DEFAULTS["record_value"]
    if intervals == -1:
        mode = "last"
    elif isinstance(intervals, int):
        mode, value = "nth", str(intervals)
    elif isinstance(intervals, tuple):
        mode, value = "list", ", ".join(map(str, intervals))
    if cfg.step_intervals is not None:
        mode, value = "steps", format_step_spec(cfg.step_intervals)
    fields = {field: getattr(cfg, field) for field in _SAME_NAME}
    fields.update(
        model=cfg.model if cfg.model in BUILTIN_MODELS else "entry",
        entry_point="" if cfg.model in BUILTIN_MODELS else cfg.model,
        model_kwargs=json.dumps(cfg.model_kwargs) if cfg.model_kwargs else "",
        dataset=cfg.dataset if cfg.dataset in _DATASETS else DEFAULTS["dataset"],
        hidden=", ".join(map(str, cfg.hidden_sizes)),
        record_mode=mode,
        record_value=value,
        keep_weights=cfg.keep_weights,
        keep_batches=not cfg.drop_batches,
        traced=", ".join(cfg.traced_layers) if cfg.traced_layers is not None else "",
        activation_samples=cfg.activation_samples or 0,
        float16=cfg.activation_dtype == "float16",
        max_trace_mib=round(cfg.max_trace_bytes / 2**20, 3) if cfg.max_trace_bytes else 0.0,
    )
    for field, value_ in fields.items():
        state.put(_key(field), value_)
    state.put(state.FORM_ERRORS, {})


_ADVANCED = (
    "n_samples",
    "val_fraction",
    "dropout",
    "weight_decay",
    "momentum",
    "data_seed",
    "device",
    "modulus",
    "modular_train_fraction",
    "modular_embedding_dim",
    "name",
)


def _field(widget: Any, field: str, label: str, errors: Mapping[str, str], **kwargs: Any) -> None:
    """Draw one field and, right under it, the reason it was refused (if it was)."""
    widget(label, key=_key(field), **kwargs)
    if field in errors:
        st.error(md_escape(errors[field], max_length=400))


def estimate_lines(values: Mapping[str, Any]) -> tuple[str, str]:
    """What the form's settings would take, for the caption under it: ``(estimate, refusal)``.

    The estimate names the knobs' effect (kept samples, dtype, recorded epochs) and, when the
    run would be adapted to its budget, what would change; the refusal (empty when none) is
    the budget's message, naming each knob and what it would bring the trace to.
    """
    config, errors = config_from_form(values)
    if config is None or errors:
        return "", ""
    try:
        plan = plan_budget(config, run_directory=True)
    except RunTooLarge as exc:
        return "", str(exc)
    except ValueError as exc:  # the dataset's size or the entry point's layers cannot be known
        return ("", "") if config.model in BUILTIN_MODELS else ("", str(exc))
    estimate = plan.estimate
    kept = (
        f"{estimate.n_kept} of {estimate.n_probe}"
        if estimate.n_kept < estimate.n_probe
        else f"all {estimate.n_probe}"
    )
    line = (
        f"Estimate: about {format_bytes(estimate.peak_bytes)} of memory and a run directory "
        f"of {format_bytes(estimate.rundir_bytes)} ({estimate.n_recorded} recorded "
        f"{'steps' if config.step_intervals is not None else 'epochs'}, "
        f"{estimate.n_neurons} neurons, activations of {kept} probe samples in "
        f"{estimate.activation_dtype})."
    )
    if plan.adapted:
        line += " " + plan.describe()
    return line, ""


def _budget_line() -> str:
    try:
        return server_budget().describe(jobs.memory_in_use())
    except ValueError as exc:  # the owner's setting does not parse: say so, run nothing big
        return f"The server's memory budget is misconfigured: {exc}"


def _network_fields(errors: Mapping[str, str]) -> None:
    """Dataset, architecture and optimisation."""
    _field(
        st.selectbox,
        "dataset",
        "Dataset",
        errors,
        options=_DATASETS,
        format_func=lambda d: f"{d} — {BUILTIN_DATASETS.get(d, '')}",
    )
    _model_fields(errors)
    _field(
        st.text_input,
        "hidden",
        "Hidden layer sizes",
        errors,
        help="Widths of the hidden layers of the MLP, comma-separated: 16, 16 is two layers of 16.",
    )
    left, right = st.columns(2)
    with left:
        _field(st.selectbox, "activation", "Activation", errors, options=ACTIVATIONS)
        _field(st.number_input, "epochs", "Epochs", errors, step=1)
        _field(st.number_input, "lr", "Learning rate", errors, step=0.001, format="%.5g")
        _field(st.number_input, "seed", "Seed", errors, step=1)
    with right:
        _field(st.selectbox, "optimizer", "Optimizer", errors, options=OPTIMIZERS)
        _field(st.number_input, "batch_size", "Batch size", errors, step=1)
        _field(
            st.number_input,
            "probe_size",
            "Probe size",
            errors,
            step=1,
            help="Held-out samples on which every recorded epoch is measured.",
        )


def _model_fields(errors: Mapping[str, str]) -> None:
    """The model: built in, or an entry point of the user's (allowed by the server's owner)."""
    _field(
        st.selectbox,
        "model",
        "Model",
        errors,
        options=list(MODEL_CHOICES),
        format_func=MODEL_CHOICES.__getitem__,
        help="The CNN trains on image datasets (digits). Your own model is a factory "
        "package.module:factory(input_shape=..., n_classes=..., **kwargs) returning an "
        f"nn.Module; this server imports only the entry points that {ENV_VAR} allows.",
    )
    _field(
        st.text_input,
        "entry_point",
        "Entry point (your own model)",
        errors,
        placeholder="mypkg.models:make_net",
        help=f"Used when the model is 'your own'. Allowed on this server: "
        f"{ENV_VAR}={', '.join(allowed_patterns()) or '(empty: none)'}.",
    )
    _field(
        st.text_input,
        "model_kwargs",
        "Model keyword arguments (JSON)",
        errors,
        placeholder='{"channels": [8, 16]}',
        help="A JSON object passed to the model: the CNN's channels, kernel_size, pool; your "
        "factory's own keywords. The MLP takes none (use the hidden layer sizes).",
    )


def _recording_fields(errors: Mapping[str, str]) -> None:
    """Which epochs are traced, and what is kept of them."""
    _field(
        st.selectbox,
        "record_mode",
        "Record",
        errors,
        options=list(RECORD_MODES),
        format_func=RECORD_MODES.__getitem__,
        help="Which epochs (or optimizer steps) are traced; E_0 (S_0), the untrained "
        "network, always is. On steps, the trace counts steps: S_<step> signatures.",
    )
    _field(
        st.text_input,
        "record_value",
        "n, the epochs, or the step schedule",
        errors,
        help="For 'every n-th epoch': n (e.g. 5). For 'a list of epochs': e.g. 1, 5, "
        "10, 30. On steps: 25 (every 25th step), log (1, 2, 4, 8, …), log:25 (log-spaced "
        "below 25, then every 25th, like Pythia's checkpoints), 10, 100, 1000, or last. "
        "Ignored otherwise.",
    )
    _field(st.checkbox, "keep_weights", "Keep weights at every recorded epoch", errors)
    _field(
        st.checkbox,
        "keep_batches",
        "Keep per-batch statistics",
        errors,
        help="Also stream statistics of every training batch (costs some speed).",
    )
    _storage_fields(errors)


def _storage_fields(errors: Mapping[str, str]) -> None:
    """Which layers are traced, what a recorded epoch keeps of the probe, the trace budget."""
    _field(
        st.text_input,
        "traced",
        "Hidden layers traced",
        errors,
        placeholder="all",
        help="e.g. hidden_2 (comma-separated); the input and output layers always are. "
        "Empty: every layer.",
    )
    left, right = st.columns(2)
    with left:
        _field(
            st.number_input,
            "activation_samples",
            "Probe samples kept",
            errors,
            step=1,
            min_value=0,
            help="Probe samples whose activations every recorded epoch stores (a seeded "
            "subset); 0 keeps all. Statistics always use the whole probe.",
        )
        _field(
            st.number_input,
            "max_trace_mib",
            "Trace budget (MiB)",
            errors,
            step=10.0,
            min_value=0.0,
            format="%.1f",
            help="The most the run directory may take; 0: no budget.",
        )
    with right:
        _field(
            st.checkbox,
            "float16",
            "Store activations as float16",
            errors,
            help="Half the size; about three significant digits.",
        )
        _field(
            st.selectbox,
            "on_budget",
            "Over the budget",
            errors,
            options=("refuse", "adapt"),
            help="Refuse the run, or adapt it: float16, then fewer kept samples, then fewer "
            "recorded epochs.",
        )


def _advanced_fields(errors: Mapping[str, str]) -> None:
    """The folded settings: data size and split, regularisation, seed, device, name."""
    with st.expander("More settings", expanded=any(f in errors for f in _ADVANCED)):
        _field(st.number_input, "n_samples", "Samples (synthetic datasets)", errors, step=100)
        _field(
            st.number_input,
            "val_fraction",
            "Validation share",
            errors,
            step=0.05,
            format="%.2f",
        )
        _field(st.number_input, "dropout", "Dropout", errors, step=0.05, format="%.2f")
        _field(st.number_input, "weight_decay", "Weight decay", errors, step=0.0001, format="%.5g")
        _field(
            st.number_input,
            "momentum",
            "Momentum (SGD, RMSprop)",
            errors,
            step=0.05,
            format="%.3f",
        )
        _field(st.number_input, "data_seed", "Data seed", errors, step=1)
        _modular_fields(errors)
        _field(st.selectbox, "device", "Device", errors, options=("cpu", "auto", "cuda"))
        _field(
            st.text_input,
            "name",
            "Run name",
            errors,
            placeholder="automatic",
            help="File name in runs/ (letters, digits, . _ -).",
        )


def _modular_fields(errors: Mapping[str, str]) -> None:
    """The options of the modular arithmetic datasets (ignored by the others)."""
    left, middle, right = st.columns(3)
    with left:
        _field(st.number_input, "modulus", "Modulus p", errors, step=1, help="Modular datasets.")
    with middle:
        _field(
            st.number_input,
            "modular_train_fraction",
            "Pairs trained on",
            errors,
            step=0.05,
            format="%.2f",
            help="Modular datasets: the share of the p² pairs trained on; the rest is the "
            "validation split (instead of the validation share) and the probe is drawn from it.",
        )
    with right:
        _field(
            st.number_input,
            "modular_embedding_dim",
            "Embedding",
            errors,
            step=1,
            min_value=0,
            help="Modular datasets: 0 one-hot inputs; d > 0 a fixed random embedding of length d.",
        )


def _load_preset() -> None:
    """Button callback: fill the form with the chosen preset (:mod:`nn_tracing.presets`)."""
    name = state.get(state.FORM_PRESET, next(iter(PRESETS)))
    load_settings(preset_config(name).to_dict())


def render_presets() -> None:
    """A preset choice and the button that fills the form with it."""
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    with left:
        st.selectbox(
            "Preset",
            list(PRESETS),
            key=state.FORM_PRESET,
            help="\n\n".join(f"**{p.name}**: {p.description}" for p in PRESETS.values()),
        )
    with right:
        st.button("Load preset", key=state.FORM_PRESET_LOAD, on_click=_load_preset, width="stretch")


def render_form(busy: bool) -> None:
    """Draw the form (fields, their errors, and the Run button)."""
    for field, default in DEFAULTS.items():
        if _key(field) not in st.session_state:
            state.put(_key(field), default)
    errors: dict[str, str] = state.get(state.FORM_ERRORS, {})
    render_presets()
    with st.form("nnt.train_form", border=False):
        _network_fields(errors)
        _recording_fields(errors)
        _advanced_fields(errors)
        submitted = st.form_submit_button(
            "Run training", type="primary", on_click=_submit, disabled=busy, width="stretch"
        )
        if FORM_LEVEL in errors:
            st.error(md_escape(errors[FORM_LEVEL], max_length=800))
    estimate, refusal = estimate_lines(_values())
    if estimate:
        st.caption(md_escape(estimate, max_length=600))
    if refusal:
        st.warning(md_escape(refusal, max_length=800))
    st.caption(md_escape(_budget_line(), max_length=400))
    # Streamlit skips a callback whose widget it has not registered in the run before (a click
    # that lands while another page starts): the click still reaches the script, so start here.
    if not state.pop(state.SUBMIT_HANDLED, False) and submitted and not busy:
        _submit()
        state.pop(state.SUBMIT_HANDLED)
        st.rerun()
