"""``train(config)``: the built-in traced training run.

Builds the data and the MLP from a :class:`~nn_tracing.config.TrainConfig`, wraps the model in
:class:`~nn_tracing.tracer.TraceableNN` and trains it with mini-batches, reporting
:class:`TrainingProgress` and honouring a stop request between batches. A non-finite loss ends
the run with status ``diverged``; a stop request ends it with status ``stopped`` and records the
epoch in progress (``meta["partial_epoch"]``). Either way the trace so far is kept.
A run with ``max_trace_bytes`` is planned against it first (:mod:`nn_tracing.trace_budget`:
refused or adapted), and ends with status ``stopped`` if its recorded data reaches it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig
from .data import DataSplits, as_model_inputs, input_shape_for, prepare_data
from .heap import release_freed_memory
from .models import build_model, model_meta
from .stopping import StopRequest
from .trace import NetworkTrace
from .tracer import TraceableNN, chunk_rows

if TYPE_CHECKING:  # imported where it is used: most runs write no directory
    from .rundir_log import RunLog

__all__ = [
    "Progress",
    "TracedRun",
    "TrainingDiverged",
    "TrainingProgress",
    "make_optimizer",
    "train",
]

StopSignal = threading.Event | StopRequest | Callable[[], bool] | None


class TrainingDiverged(RuntimeError):
    """Raised by callers that want an exception for a diverged run (``train`` itself returns)."""


@dataclass(frozen=True)
class TrainingProgress:
    """A snapshot of a training run, passed to :func:`train`'s ``progress`` callback.

    (Analyses report a plain fraction and message instead: :data:`nn_tracing.progress.Progress`.)

    ``status`` is ``running`` until the end, then ``complete``, ``stopped`` or ``diverged``.
    """

    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    loss: float
    elapsed: float
    recorded_epochs: tuple[int, ...] = ()
    status: str = "running"
    message: str = ""
    epoch_done: bool = False

    @property
    def fraction(self) -> float:
        """Share of all training steps done, in [0, 1]."""
        total = self.epochs * max(self.steps_per_epoch, 1)
        done = (self.epoch - 1) * self.steps_per_epoch + self.step if self.epoch else 0
        return min(max(done / total, 0.0), 1.0)

    @property
    def eta(self) -> float | None:
        """Seconds left, estimated from the pace so far (``None`` before the first step)."""
        fraction = self.fraction
        if fraction <= 0 or self.status != "running":
            return None if self.status == "running" else 0.0
        return self.elapsed * (1 - fraction) / fraction


#: The old name of :class:`TrainingProgress` (``nt.Progress``), kept for old imports.
Progress = TrainingProgress


@dataclass
class TracedRun:
    """The result of :func:`train`: the trained model, its trace, the config and the data."""

    model: nn.Module
    trace: NetworkTrace | None
    config: TrainConfig
    data: DataSplits = field(repr=False)

    @property
    def status(self) -> str:
        return self.trace.status if self.trace is not None else "complete"


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names, with its learning rate and weight decay."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    raise ValueError(f"optimizer={config.optimizer!r} is not known")


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA device is available")
    return torch.device(name)


def _stop_requested(stop: StopSignal) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


@torch.no_grad()
def _evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode (restores the mode afterwards)."""
    losses, correct = _evaluate_sums(model, X, y)
    n = max(X.shape[0], 1)
    return losses / n, correct / n


@torch.no_grad()
def _evaluate_sums(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """Summed cross-entropy and number correct in eval mode (restores the mode afterwards)."""
    was_training = model.training
    model.eval()
    rows = chunk_rows(X, 8192)  # smaller chunks of large samples (images) on the CPU
    losses, correct = 0.0, 0
    try:
        for start in range(0, X.shape[0], rows):
            logits = model(X[start : start + rows])
            target = y[start : start + rows]
            losses += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    finally:
        model.train(was_training)
    return losses, correct


#: Training rows whose loss and accuracy give the untrained network's point (E_0).
_E0_TRAIN_ROWS = 1024


class _Validation:
    """The validation loss and accuracy of a traced run, sharing the probe's forward.

    The probe is drawn from the validation split and measured in eval mode with the same
    loss, so when the tracer has just recorded the epoch, its ``probe_loss`` and
    ``probe_acc`` are the probe rows' share of the validation figures: only the other rows
    are run again (for the benchmark's CNN a fifth of an epoch's recording cost). Without a
    record (or a probe not drawn from ``X_val``) every row is run, as untraced.
    """

    def __init__(self, X_val: torch.Tensor, y_val: torch.Tensor, probe_index: Any) -> None:
        self.X, self.y = X_val, y_val
        self.n_probe = 0
        if probe_index is not None and 0 < len(probe_index) <= X_val.shape[0]:
            rest = np.setdiff1d(np.arange(X_val.shape[0]), np.asarray(probe_index))
            if len(rest) == X_val.shape[0] - len(probe_index):  # distinct rows of X_val
                index = torch.from_numpy(rest).to(X_val.device)
                self.X_rest, self.y_rest = X_val[index], y_val[index]
                self.n_probe = len(probe_index)

    def __call__(self, module: nn.Module, probe: dict[str, float]) -> tuple[float, float]:
        """``(val_loss, val_acc)``; ``probe``: the history row of a record made just now."""
        n = max(self.X.shape[0], 1)
        loss, acc = probe.get("probe_loss"), probe.get("probe_acc")
        if not self.n_probe or loss is None or acc is None:
            return _evaluate(module, self.X, self.y)
        losses, correct = 0.0, 0
        if self.X_rest.shape[0]:  # none when the probe is the whole validation split
            losses, correct = _evaluate_sums(module, self.X_rest, self.y_rest)
        losses += loss * self.n_probe  # the probe's mean loss over its rows
        correct += round(acc * self.n_probe)
        return losses / n, correct / n


def _dataset_meta(data: DataSplits) -> dict[str, Any]:
    ds = data.dataset
    return {
        "name": ds.name,
        "description": ds.description,
        "n_features": ds.n_features,
        "n_classes": ds.n_classes,
        "feature_names": list(ds.feature_names),
        "class_names": list(ds.class_names),
        "image_shape": list(ds.image_shape) if ds.image_shape else None,
        "n_train": int(data.X_train.shape[0]),
        "n_val": int(data.X_val.shape[0]),
        "n_probe": int(data.X_probe.shape[0]),
        "feature_mean": [float(v) for v in data.mean],
        "feature_scale": [float(v) for v in data.scale],
    }


def _tracer_for(
    config: TrainConfig,
    module: nn.Module,
    data: DataSplits,
    device: torch.device,
    started_at: datetime,
    budget_meta: dict[str, Any] | None = None,
) -> TraceableNN:
    """The :class:`TraceableNN` that records ``module``'s run of ``config``."""
    steps_per_epoch = math.ceil(data.X_train.shape[0] / config.batch_size)
    on_steps = config.step_intervals is not None
    return TraceableNN(
        module,
        epoch_intervals=config.epoch_intervals,
        step_intervals=config.step_intervals,
        num_steps=config.epochs * steps_per_epoch if on_steps else None,
        probe=(torch.from_numpy(data.X_probe), torch.from_numpy(data.y_probe)),
        loss_fn=F.cross_entropy,
        num_epochs=config.epochs,
        keep_weights=config.keep_weights,
        drop_batches=config.drop_batches,
        activation_samples=config.activation_samples,
        activation_seed=config.data_seed,
        activation_dtype=config.activation_dtype,
        max_trace_bytes=config.max_trace_bytes,
        layers=None if config.traced_layers is None else [*config.traced_layers, "output"],
        meta={
            **({"budget": budget_meta} if budget_meta else {}),
            "config": config.to_dict(),
            "dataset": _dataset_meta(data),
            "model": model_meta(config, data.X_probe.shape[1:], module),
            "device": str(device),
            "created": started_at.isoformat(timespec="seconds"),
            "steps_per_epoch": steps_per_epoch,
        },
    )


@dataclass
class _EpochSums:
    """What one epoch's batches added up to, and why they ended (``""``: every batch ran)."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    ended: str = ""


class _TrainingLoop:
    """One run of :func:`train` in progress: the model, its data on the device, the tracer,
    the optimizer, how the run ends (``status``, ``message``) and its progress reports."""

    def __init__(
        self,
        config: TrainConfig,
        data: DataSplits,
        *,
        traced: bool,
        progress: Callable[[TrainingProgress], None] | None,
        progress_every: float,
        started_at: datetime,
        t0: float,
        budget_meta: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.data = config, data
        self.progress, self.progress_every, self.t0 = progress, progress_every, t0
        device = _resolve_device(config.device)
        self.device = device
        ds = data.dataset
        input_shape = input_shape_for(config, ds.n_features, ds.image_shape)
        self.data = data = as_model_inputs(data, input_shape)  # images for a CNN
        self.module = build_model(config, ds.n_features, ds.n_classes, input_shape).to(device)
        self.X = torch.from_numpy(data.X_train).to(device)
        self.y = torch.from_numpy(data.y_train).to(device)
        self.X_val = torch.from_numpy(data.X_val).to(device)
        self.y_val = torch.from_numpy(data.y_val).to(device)
        self.validation = _Validation(self.X_val, self.y_val, data.probe_index)
        self.order = torch.Generator().manual_seed(config.seed)
        self.optimizer = make_optimizer(config, self.module.parameters())
        self.tracer: TraceableNN | None = None
        self.model: nn.Module = self.module
        if traced:
            self.tracer = _tracer_for(config, self.module, data, device, started_at, budget_meta)
            self.model = self.tracer
            self._record_untrained(self.tracer)
        self.steps_per_epoch = math.ceil(self.X.shape[0] / config.batch_size)
        self.status, self.message = "complete", ""
        self.extra_meta: dict[str, Any] = {}
        self.last_report = time.perf_counter()
        self.last_loss = float("nan")

    def _record_untrained(self, tracer: TraceableNN) -> None:
        """The untrained network's history row (E_0)."""
        # the training loss on a fixed share of the training set: the first point of a curve,
        # whose mean 1024 rows give to about a percent (4096 rows cost a twentieth of a
        # CNN epoch on this machine, for one point)
        n0 = min(self.X.shape[0], _E0_TRAIN_ROWS)
        train_loss0, train_acc0 = _evaluate(self.module, self.X[:n0], self.y[:n0])
        val_loss0, val_acc0 = self.validation(self.module, tracer.history_values(0))
        tracer.set_history(
            0,
            train_loss=train_loss0,
            train_acc=train_acc0,
            val_loss=val_loss0,
            val_acc=val_acc0,
            lr=self.optimizer.param_groups[0]["lr"],
            seconds=0.0,
        )

    def report(self, epoch: int, step: int, **kw: Any) -> None:
        """Send a :class:`TrainingProgress` to the ``progress`` callback, if any."""
        if self.progress is None:
            return
        tracer = self.tracer
        self.progress(
            TrainingProgress(
                epoch=epoch,
                epochs=self.config.epochs,
                step=step,
                steps_per_epoch=self.steps_per_epoch,
                loss=self.last_loss,
                elapsed=time.perf_counter() - self.t0,
                recorded_epochs=tuple(tracer.recorded_epochs) if tracer is not None else (),
                **kw,
            )
        )

    def run_epochs(self, stop: StopSignal, share: _Share) -> int:
        """Train epoch after epoch until the last, a stop request or divergence; returns the
        last epoch begun."""
        epoch = 0
        for epoch in range(1, self.config.epochs + 1):
            if self.tracer is not None:
                self.tracer.start_epoch(epoch)
            sums = self._train_batches(epoch, stop)
            if sums.ended == "diverged" or not self._end_epoch(epoch, sums, share):
                break
            self.report(epoch, self.steps_per_epoch, epoch_done=True)
        return epoch

    def _train_batches(self, epoch: int, stop: StopSignal) -> _EpochSums:
        """One epoch's mini-batches, in the order of the seeded permutation."""
        config, device = self.config, self.device
        self.module.train()
        n, bs = self.X.shape[0], config.batch_size
        perm = torch.randperm(n, generator=self.order).to(device)
        sums = _EpochSums(
            torch.zeros((), dtype=torch.float64, device=device),
            torch.zeros((), dtype=torch.int64, device=device),
        )
        tracked = stop if isinstance(stop, StopRequest) else None
        for step in range(self.steps_per_epoch):
            idx = perm[step * bs : (step + 1) * bs]
            xb, yb = self.X[idx], self.y[idx]
            logits = self.model(xb)
            loss = F.cross_entropy(logits, yb)
            self.last_loss = loss.item()
            if not math.isfinite(self.last_loss):
                self._end_run("diverged", epoch, step)
                sums.ended = "diverged"
                return sums
            if self.tracer is not None and not config.drop_batches:
                self.tracer.log_step(loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.tracer is not None and config.step_intervals is not None:
                self.tracer.step()
            sums.loss_sum += loss.detach().to(torch.float64) * xb.shape[0]
            sums.correct += (logits.detach().argmax(1) == yb).sum()
            sums.seen += xb.shape[0]
            if tracked is not None:
                tracked.position = (epoch, step + 1)
            if _stop_requested(stop):
                self._end_run("stopped", epoch, step, stop)
                sums.ended = "stopped"
                return sums
            if self.progress is not None and (
                time.perf_counter() - self.last_report >= self.progress_every
            ):
                self.last_report = time.perf_counter()
                self.report(epoch, step + 1)
        return sums

    def _end_run(self, status: str, epoch: int, step: int, stop: StopSignal = None) -> None:
        """Record why the run ends early (``diverged`` or ``stopped``) at ``epoch``, ``step``
        (and, for a :class:`~nn_tracing.stopping.StopRequest`, where the stop was asked for)."""
        self.status = status
        if status == "diverged":
            self.message = (
                f"the loss became {self.last_loss} at epoch {epoch}, step {step + 1}; training "
                f"stopped and the trace keeps the epochs recorded before"
            )
            self.extra_meta["diverged_epoch"] = epoch
        else:
            self.message = f"stopped by the user at epoch {epoch}, step {step + 1}"
            self.extra_meta["stopped_epoch"] = epoch
            self.extra_meta["stopped_step"] = step + 1
            requested = stop.requested_meta() if isinstance(stop, StopRequest) else None
            if requested is not None:
                self.extra_meta["stop_requested_at"] = requested

    def _end_epoch(self, epoch: int, sums: _EpochSums, share: _Share) -> bool:
        """The epoch's history row (and its record in the trace); whether training goes on."""
        stopped = sums.ended == "stopped"
        history = {"lr": float(self.optimizer.param_groups[0]["lr"])}
        if sums.seen:
            history["train_loss"] = float(sums.loss_sum) / sums.seen
            history["train_acc"] = int(sums.correct) / sums.seen
        if self.tracer is None:
            # an untraced run keeps no history, but it is the benchmarks' baseline: a real
            # training loop validates every epoch, as a traced run does
            _evaluate(self.module, self.X_val, self.y_val)
            return not stopped
        if stopped and sums.seen:
            self.extra_meta["partial_epoch"] = epoch
        force = stopped and sums.seen > 0
        probe: dict[str, float] = {}
        if self.tracer.record_epoch(epoch, force=force):  # before the validation: it shares
            probe = self.tracer.history_values(self.tracer.end_point(epoch))
        val_loss, val_acc = self.validation(self.module, probe)
        history.update(val_loss=val_loss, val_acc=val_acc)
        recorded = self.tracer.end_epoch(epoch, force=force, **history)
        if recorded and not stopped and share.due():
            share(self.tracer.network_trace)
        if self.tracer.recording_stopped is not None and not stopped:
            return self._stop_for_budget(epoch)
        return not stopped

    def _stop_for_budget(self, epoch: int) -> bool:
        """End the run: the trace reached ``max_trace_bytes`` (the tracer stopped recording)."""
        budget = self.tracer.network_trace.meta.get("budget", {}) if self.tracer else {}
        stopped = budget.get("recording_stopped", {})
        self.status = "stopped"
        self.message = (
            f"stopped after epoch {epoch}: {stopped.get('message', 'max_trace_bytes reached')}"
        )
        self.extra_meta["stopped_epoch"] = epoch
        self.extra_meta["stopped_by"] = "max_trace_bytes"
        return False

    def finish(self, tracer: TraceableNN, started_at: datetime) -> NetworkTrace:
        """The finished trace: timings, status and the final validation accuracy."""
        finished_at = datetime.now(UTC)
        tracer.update_meta(
            timings={
                "train_seconds": round(time.perf_counter() - self.t0, 3),
                "started": started_at.isoformat(timespec="seconds"),
                "finished": finished_at.isoformat(timespec="seconds"),
            },
            **self.extra_meta,
        )
        trace = tracer.finish(self.status, self.message)
        trace.meta["final_val_acc"] = (
            float(trace.history["val_acc"].dropna().iloc[-1])
            if len(trace.history["val_acc"].dropna())
            else None
        )
        tracer.update_meta(final_val_acc=trace.meta["final_val_acc"])
        return trace


def _beat_then(
    log: RunLog, progress: Callable[[TrainingProgress], None] | None
) -> Callable[[TrainingProgress], None]:
    """A callback that keeps the run directory's heartbeat (``writer.json``) fresh with the
    run's progress (at most once a second, written by the writing thread), then calls
    ``progress``."""

    def beat_then_call(p: TrainingProgress) -> None:
        log.beat(
            epoch=p.epoch,
            epochs=p.epochs,
            step=p.step,
            steps_per_epoch=p.steps_per_epoch,
            loss=p.loss,
            fraction=p.fraction,
            eta=p.eta,
            elapsed=p.elapsed,
            message=p.message,
        )
        if progress is not None:
            progress(p)

    return beat_then_call


class _Share:
    """Where the trace goes after a recorded epoch: to ``on_trace`` every time, and to the run
    directory when its writer is due (every time too when there is an ``on_trace``, which
    then sees the epoch on disk). The trace is snapshot only when one of them takes it."""

    def __init__(self, on_trace: Callable[[NetworkTrace], None] | None, log: RunLog | None) -> None:
        self.on_trace, self.log = on_trace, log

    def due(self) -> bool:
        return self.on_trace is not None or (self.log is not None and self.log.due())

    def __call__(self, trace: NetworkTrace) -> None:
        if self.log is not None:
            self.log.sync(trace, wait=self.on_trace is not None)
        if self.on_trace is not None:
            self.on_trace(trace)


def train(
    config: TrainConfig,
    progress: Callable[[TrainingProgress], None] | None = None,
    stop: StopSignal = None,
    *,
    traced: bool = True,
    data: DataSplits | None = None,
    progress_every: float = 0.25,
    on_trace: Callable[[NetworkTrace], None] | None = None,
    out: str | os.PathLike | None = None,
    on_write_error: str = "stop",
) -> TracedRun:
    """Train the model that ``config`` describes, tracing it; return a :class:`TracedRun`.

    The model is the built-in MLP or CNN, or an entry point that is allowed
    (``NN_TRACING_MODELS``) or trusted (``with nn_tracing.model_entry.trusted_models():``);
    see :mod:`nn_tracing.model_entry`.

    Parameters
    ----------
    config
        The run's settings.
    progress
        Called with a :class:`TrainingProgress` after every epoch and at most every
        ``progress_every`` seconds within one.
    stop
        A :class:`threading.Event` (or a callable returning ``True``) that ends training after
        the current batch; the trace is kept with status ``stopped`` (``meta["stopped_epoch"]``
        and ``meta["stopped_step"]`` say where). A :class:`~nn_tracing.stopping.StopRequest`
        also records where training was when the stop was asked for
        (``meta["stop_requested_at"]``).
    traced
        ``False`` trains the same model in the same way without tracing (for benchmarks and
        for the bitwise-identity test); ``run.trace`` is then ``None``.
    data
        Pre-built splits (otherwise made from ``config``).
    progress_every
        Seconds between two progress reports within an epoch.
    on_trace
        Called with the trace so far after every recorded epoch (for live views); the final
        trace is ``run.trace``.
    out
        A run directory to write as training goes (:class:`~nn_tracing.rundir.RunWriter`):
        every recorded epoch is added as it is recorded, by a background thread
        (:class:`~nn_tracing.rundir_log.RunLog`) — those of a fast run a few at a time, at
        most every ``WRITE_INTERVAL`` (1 s); with ``on_trace``, each epoch before
        ``on_trace`` sees it — and the final status and weights at the end, before ``train``
        returns. After an error in training, every recorded epoch is written; a run that
        never ends reads as ``interrupted``. Needs ``traced``.
    on_write_error
        What a failed write of ``out`` does (a full disk, a read-only folder): ``"stop"``
        raises :class:`~nn_tracing.rundir.RunWriteError` (one error naming the directory,
        the epoch and the epochs kept, which stay readable) and training stops there (at the
        next hand-over of epochs: the writing is in the background); ``"continue"`` warns
        once (:class:`~nn_tracing.rundir_log.RunWriteWarning`) and trains on without
        writing the directory (``run.trace`` has every epoch).

    Raises
    ------
    nn_tracing.trace_budget.TraceBudgetExceeded
        Before anything is made, when ``config.max_trace_bytes`` is set, the estimated trace
        is over it and ``config.on_budget`` is ``"refuse"`` (or nothing fits). With
        ``"adapt"`` the run trains the adapted config (``run.config``; the trace's
        ``meta["budget"]`` says what changed). A run whose recorded data reaches the budget
        while training ends with status ``stopped`` (``meta["stopped_by"]``).
    """
    if out is not None and not traced:
        raise ValueError("out= writes the trace as it is recorded; it needs traced=True")
    plan = None
    if traced and config.max_trace_bytes is not None:
        from .trace_budget import plan_budget

        plan = plan_budget(config, run_directory=out is not None)  # may refuse
        config = plan.config
    log = None
    if out is not None:
        from .rundir_log import RunLog

        log = RunLog(out, on_write_error=on_write_error)
        progress = _beat_then(log, progress)
    share = _Share(on_trace, log)
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    data = data if data is not None else prepare_data(config)
    loop = _TrainingLoop(
        config,
        data,
        traced=traced,
        progress=progress,
        progress_every=progress_every,
        started_at=started_at,
        t0=t0,
        budget_meta=plan.meta() if plan is not None else None,
    )
    try:
        if loop.tracer is not None:
            if log is not None:  # the directory made before training (or its error raised)
                log.open(loop.tracer.network_trace)
                loop.tracer.watch_directory(log.directory)
            if share.due():
                share(loop.tracer.network_trace)
        loop.report(0, 0)
        epoch = loop.run_epochs(stop, share)
        trace = loop.finish(loop.tracer, started_at) if loop.tracer is not None else None
        release_freed_memory()  # the run's garbage, before the trace is saved or explored
        if log is not None and trace is not None:
            log.close(trace)
    except BaseException as exc:
        if log is not None:  # what was recorded is written; the run stays "running"
            log.abandon(loop.tracer)
        if isinstance(exc, OSError) and loop.tracer is not None:  # RunWriteError
            loop.tracer.remove_hooks()
        raise
    loop.report(
        epoch, loop.steps_per_epoch, status=loop.status, message=loop.message, epoch_done=True
    )
    return TracedRun(model=loop.module, trace=trace, config=config, data=loop.data)
