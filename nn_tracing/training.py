"""``train(config)``: the built-in traced training run.

Builds the data and the MLP from a :class:`~nn_tracing.config.TrainConfig`, wraps the model in
:class:`~nn_tracing.tracer.TraceableNN` and trains it with mini-batches, reporting
:class:`TrainingProgress` and honouring a stop request between batches. A non-finite loss ends
the run with status ``diverged``; a stop request ends it with status ``stopped`` and records the
epoch in progress (``meta["partial_epoch"]``). Either way the trace so far is kept.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig
from .data import DataSplits, prepare_data
from .models import build_model
from .trace import NetworkTrace
from .tracer import TraceableNN

__all__ = [
    "Progress",
    "TracedRun",
    "TrainingDiverged",
    "TrainingProgress",
    "make_optimizer",
    "train",
]

StopSignal = threading.Event | Callable[[], bool] | None


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
    was_training = model.training
    model.eval()
    try:
        losses, correct = 0.0, 0
        for start in range(0, X.shape[0], 8192):
            logits = model(X[start : start + 8192])
            target = y[start : start + 8192]
            losses += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    finally:
        model.train(was_training)
    n = max(X.shape[0], 1)
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


def train(
    config: TrainConfig,
    progress: Callable[[TrainingProgress], None] | None = None,
    stop: StopSignal = None,
    *,
    traced: bool = True,
    data: DataSplits | None = None,
    progress_every: float = 0.25,
    on_trace: Callable[[NetworkTrace], None] | None = None,
) -> TracedRun:
    """Train the MLP that ``config`` describes, tracing it; return a :class:`TracedRun`.

    Parameters
    ----------
    config
        The run's settings.
    progress
        Called with a :class:`TrainingProgress` after every epoch and at most every
        ``progress_every`` seconds within one.
    stop
        A :class:`threading.Event` (or a callable returning ``True``) that ends training after
        the current batch; the trace is kept with status ``stopped``.
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
    """
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    data = data if data is not None else prepare_data(config)
    device = _resolve_device(config.device)
    module = build_model(config, data.dataset.n_features, data.dataset.n_classes).to(device)
    X = torch.from_numpy(data.X_train).to(device)
    y = torch.from_numpy(data.y_train).to(device)
    X_val = torch.from_numpy(data.X_val).to(device)
    y_val = torch.from_numpy(data.y_val).to(device)
    order = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(config, module.parameters())

    model: nn.Module = module
    tracer: TraceableNN | None = None
    if traced:
        tracer = TraceableNN(
            module,
            epoch_intervals=config.epoch_intervals,
            probe=(torch.from_numpy(data.X_probe), torch.from_numpy(data.y_probe)),
            loss_fn=F.cross_entropy,
            num_epochs=config.epochs,
            keep_weights=config.keep_weights,
            drop_batches=config.drop_batches,
            meta={
                "config": config.to_dict(),
                "dataset": _dataset_meta(data),
                "model": {"class": "MLP", "builtin": True, "architecture": config.architecture},
                "device": str(device),
                "created": started_at.isoformat(timespec="seconds"),
            },
        )
        model = tracer
        # the untrained network's training loss, on a fixed share of the training set (the
        # full set would cost a noticeable part of a short run)
        n0 = min(X.shape[0], max(X_val.shape[0], 4096))
        train_loss0, train_acc0 = _evaluate(module, X[:n0], y[:n0])
        val_loss0, val_acc0 = _evaluate(module, X_val, y_val)
        tracer.set_history(
            0,
            train_loss=train_loss0,
            train_acc=train_acc0,
            val_loss=val_loss0,
            val_acc=val_acc0,
            lr=optimizer.param_groups[0]["lr"],
            seconds=0.0,
        )

    n = X.shape[0]
    bs = config.batch_size
    steps_per_epoch = math.ceil(n / bs)
    status, message = "complete", ""
    extra_meta: dict[str, Any] = {}
    last_report = time.perf_counter()
    last_loss = float("nan")

    def report(epoch: int, step: int, **kw: Any) -> None:
        if progress is None:
            return
        progress(
            TrainingProgress(
                epoch=epoch,
                epochs=config.epochs,
                step=step,
                steps_per_epoch=steps_per_epoch,
                loss=last_loss,
                elapsed=time.perf_counter() - t0,
                recorded_epochs=tuple(tracer.recorded_epochs) if tracer is not None else (),
                **kw,
            )
        )

    if tracer is not None and on_trace is not None:
        on_trace(tracer.network_trace)
    report(0, 0)
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        if tracer is not None:
            tracer.start_epoch(epoch)
        module.train()
        perm = torch.randperm(n, generator=order).to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        stopped = diverged = False
        for step in range(steps_per_epoch):
            idx = perm[step * bs : (step + 1) * bs]
            xb, yb = X[idx], y[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            last_loss = loss.item()
            if not math.isfinite(last_loss):
                diverged = True
                status = "diverged"
                message = (
                    f"the loss became {last_loss} at epoch {epoch}, step {step + 1}; training "
                    f"stopped and the trace keeps the epochs recorded before"
                )
                extra_meta["diverged_epoch"] = epoch
                break
            if tracer is not None and not config.drop_batches:
                tracer.log_step(loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().to(torch.float64) * xb.shape[0]
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += xb.shape[0]
            if _stop_requested(stop):
                stopped = True
                status = "stopped"
                message = f"stopped by the user at epoch {epoch}, step {step + 1}"
                extra_meta["stopped_epoch"] = epoch
                break
            if progress is not None and time.perf_counter() - last_report >= progress_every:
                last_report = time.perf_counter()
                report(epoch, step + 1)
        if diverged:
            break
        history = {"lr": float(optimizer.param_groups[0]["lr"])}
        if seen:
            history["train_loss"] = float(loss_sum) / seen
            history["train_acc"] = int(correct) / seen
        val_loss, val_acc = _evaluate(module, X_val, y_val)
        history.update(val_loss=val_loss, val_acc=val_acc)
        if tracer is not None:
            complete_epoch = not stopped
            if stopped and seen:
                extra_meta["partial_epoch"] = epoch
            recorded = tracer.end_epoch(epoch, force=stopped and seen > 0, **history)
            if recorded and on_trace is not None and not stopped:
                on_trace(tracer.network_trace)
            if not complete_epoch:
                break
        elif stopped:
            break
        report(epoch, steps_per_epoch, epoch_done=True)

    trace = None
    if tracer is not None:
        finished_at = datetime.now(UTC)
        tracer.update_meta(
            timings={
                "train_seconds": round(time.perf_counter() - t0, 3),
                "started": started_at.isoformat(timespec="seconds"),
                "finished": finished_at.isoformat(timespec="seconds"),
            },
            **extra_meta,
        )
        trace = tracer.finish(status, message)
        trace.meta["final_val_acc"] = (
            float(trace.history["val_acc"].dropna().iloc[-1])
            if len(trace.history["val_acc"].dropna())
            else None
        )
        tracer.update_meta(final_val_acc=trace.meta["final_val_acc"])
    report(epoch, steps_per_epoch, status=status, message=message, epoch_done=True)
    return TracedRun(model=module, trace=trace, config=config, data=data)
