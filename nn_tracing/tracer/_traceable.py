"""``TraceableNN``: the wrapper a user trains, composing the tracer's collaborators.

It behaves like the wrapped module, keeps the schedule and the history, and at every recorded
epoch asks one collaborator for the metrics: :class:`~._probe.ProbeMeasurement` with a probe,
:class:`~._streaming.BatchStream` without one; :class:`~._steps.StepRecorder` adds per-step
statistics when ``drop_batches=False``. It assembles what they measured into a
:class:`~nn_tracing.trace.NetworkTrace`.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..schedule import EpochIntervals, should_record
from ..step_schedule import StepIntervals, checked_step_schedule, step_predicate
from ..trace import METRICS, LayerInfo, NetworkTrace
from ._arguments import checked_probe, checked_schedule, example_args
from ._budget import RecordingBudget
from ._discovery import discover, module_device
from ._distributed import ShardedProbe, resolve_collective, state_arrays, unwrap_data_parallel
from ._history import checked_history, history_frame
from ._hooks import Measuring
from ._probe import ProbeMeasurement, pooled_activations
from ._selection import select_layers
from ._stats import WeightColumns
from ._steps import StepRecorder
from ._storage import STORED_DTYPES, kept_rows, stored_tensors
from ._streaming import BatchStream, measure_example

if TYPE_CHECKING:  # imported where it is used: most tracers write no directory
    from ..rundir_log import RunLog

__all__ = ["TraceBudgetWarning", "TraceableNN"]


class TraceBudgetWarning(UserWarning):
    """Recording stopped because the trace would have grown past ``max_trace_bytes``."""


class TraceableNN(nn.Module):
    """Wrap ``module`` so that its neurons are traced while it trains.

    The wrapper behaves like the module: same ``forward``, same ``parameters()`` and the same
    ``state_dict()`` keys (it shares the module's parameter, buffer and child dictionaries).
    Tracing never changes what the model computes: a traced and an untraced run with the same
    seed end with bitwise identical weights.

    Parameters
    ----------
    module
        Any ``nn.Module`` whose forward takes a tensor (batch first) and returns logits.
    example_input
        A batch (tensor, or tuple of positional arguments) for the dry run; defaults to the
        first two probe samples.
    epoch_intervals
        Which epochs to record: ``None``, ``n > 0``, ``-1`` or a list (see
        :mod:`nn_tracing.schedule`). ``E_0`` is recorded at construction.
    probe
        ``(x, y)``: a fixed batch on which every recorded epoch is measured in eval mode.
        Without it, activation statistics stream over the training batches of each recorded
        epoch and ``grad_norm`` is the RMS over those batches of the incoming-weight gradient
        norm; ``E_0`` is then measured on ``example_input``.
    loss_fn
        ``loss_fn(logits, y) -> scalar`` (mean-reduced) for the probe gradient; defaults to
        cross-entropy for integer labels and MSE otherwise.
    num_epochs
        The length of the run, needed for "and the last" (``n > 0``) and ``-1`` without a
        probe; with a probe, :meth:`finish` records the last epoch if it was not yet recorded.
    keep_weights
        Also keep the full ``state_dict`` at every recorded epoch.
    drop_batches
        ``False`` records per-step, per-layer statistics of the training batches.
    layer_names
        Optional ``{qualified module name: layer name}`` renames.
    meta
        Extra JSON-ready metadata for ``network_trace.meta`` (config, dataset, ...).
    chunk_size
        Samples per forward when the tracer runs the model itself (probe, :meth:`activations`).
    log_dir
        A run directory (e.g. ``"runs/my-run"``) to write as training goes
        (:class:`~nn_tracing.rundir_log.RunLog`): every recorded epoch at its ``end_epoch``
        (``E_0`` at the first ``start_epoch``), a heartbeat while training, the final status
        and weights at :meth:`finish`. A script that never calls :meth:`finish` leaves a run
        that reads as ``interrupted`` once its process ends. History values are written with
        their epoch: give them to :meth:`end_epoch` (or :meth:`set_history` before the next
        epoch starts). It must not hold a run already.
    on_write_error
        What a failed write of ``log_dir`` does (a full disk, a read-only folder): ``"stop"``
        raises :class:`~nn_tracing.rundir.RunWriteError` from the call that wrote (the epochs
        written before stay readable); ``"continue"`` warns once and writes no more.
    process_group
        The ``torch.distributed`` group whose ranks share the measuring (see
        :mod:`._distributed`); ``None``: the default group when ``torch.distributed`` is
        initialised with more than one rank; ``False``: trace this process alone. Every rank
        measures its shard of the probe (or its own batches) and the ranks merge statistics;
        only rank 0 writes ``log_dir`` and keeps the probe activations. A
        ``DistributedDataParallel`` module is traced through its ``.module``.
    layers
        The layers to trace, by name (after ``layer_names``) or module qualified name;
        ``None``: every traceable layer. The input layer is always traced; the others keep
        their order and their neurons are numbered without gaps.
    activation_samples
        How many probe samples keep their activations, logits and predictions at every
        recorded epoch (``None``: all); the statistics use the whole probe. The kept samples
        are a seeded subset (:func:`~._storage.kept_rows` with ``activation_seed``) in probe
        order, and ``network_trace.probe`` is that subset.
    activation_seed
        Seeds that subset.
    activation_dtype
        ``"float32"`` or ``"float16"``: the stored precision of activations and logits.
    step_intervals
        Record on optimizer steps instead of epochs (see :mod:`nn_tracing.step_schedule`):
        ``n > 0``, ``-1``, a list of steps, ``"log"`` or ``"log:N"`` (Pythia-style: 1, 2, 4,
        … below N, then every N-th). The trace's axis is then ``"step"`` (``S_<step>``
        signatures, :mod:`nn_tracing.timeaxis`). Call :meth:`step` after every optimizer
        step; ``S_0`` is recorded at construction. Needs a probe; ``epoch_intervals`` must
        then be left ``None``. :meth:`start_epoch` / :meth:`end_epoch` stay optional (their
        history values go to the row of the step the epoch ended on).
    num_steps
        The run's length in steps, for "and the last" of a step schedule; without it
        :meth:`finish` records the last step if it was not yet recorded.
    max_trace_bytes
        A budget for the trace: before an epoch is recorded, if one more epoch the size of
        the largest so far would take what the trace holds (counted, or the ``log_dir`` on
        disk if larger) over it, recording stops for the rest of the run — a
        :class:`TraceBudgetWarning` once, ``meta["budget"]["recording_stopped"]`` says where
        and why, and :attr:`recording_stopped` is set. Training itself goes on (it is the
        caller's loop); :func:`nn_tracing.train` ends the run there with status ``stopped``.

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> model = TraceableNN(net, probe=(x, y), epoch_intervals=[1, 2])
    >>> model.neural_index
    {'input': (0, 3), '0': (4, 11), '2': (12, 14)}
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> for epoch in (1, 2):
    ...     model.start_epoch(epoch)
    ...     loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    ...     _ = model.end_epoch(epoch, train_loss=loss.item())
    >>> trace = model.finish()
    >>> trace.epochs
    [0, 1, 2]
    """

    def __init__(
        self,
        module: nn.Module,
        example_input: Any = None,
        epoch_intervals: EpochIntervals = None,
        *,
        probe: tuple[Any, Any] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        num_epochs: int | None = None,
        keep_weights: bool = False,
        drop_batches: bool = True,
        layer_names: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
        chunk_size: int = 8192,
        log_dir: str | os.PathLike | None = None,
        on_write_error: str = "stop",
        process_group: Any = None,
        activation_samples: int | None = None,
        activation_seed: int = 0,
        activation_dtype: str = "float32",
        max_trace_bytes: int | None = None,
        layers: Sequence[str] | None = None,
        step_intervals: StepIntervals = None,
        num_steps: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"TraceableNN wraps an nn.Module, not {type(module).__name__}")
        intervals = checked_schedule(epoch_intervals, num_epochs, has_probe=probe is not None)
        #: the step schedule (``None``: the trace records epochs)
        self.step_intervals = checked_step_schedule(
            step_intervals, epoch_intervals, num_steps, has_probe=probe is not None
        )
        self.num_steps = num_steps
        #: asked after every optimizer step: the schedule validated once
        self._records_step = (
            step_predicate(self.step_intervals, num_steps)
            if self.step_intervals is not None
            else None
        )
        # Share the module's dictionaries: same parameters(), state_dict() keys, .to().
        object.__setattr__(self, "_wrapped", module)
        inner = unwrap_data_parallel(module)  # DDP's .module: measured and hooked
        object.__setattr__(self, "_inner", inner)
        self._collective = resolve_collective(process_group)
        self._parameters = module._parameters
        self._buffers = module._buffers
        self._modules = module._modules
        self._non_persistent_buffers_set = module._non_persistent_buffers_set
        self.training = module.training

        device = module_device(inner)
        probe_xy = checked_probe(probe, device)
        args = example_args(example_input, probe_xy, device)
        self._example_args = args
        self._layout = select_layers(discover(inner, args, layer_names), layers)
        #: the names asked for (``None``: every layer), as the meta records them
        self._selected = [layers] if isinstance(layers, str) else layers and list(layers)
        self._chunk_size = int(chunk_size)
        self._measuring = Measuring()
        self._weights = WeightColumns()
        self._probe: ProbeMeasurement | None = None
        if probe_xy is not None:
            probe_args = (inner, self._layout, *probe_xy, loss_fn, self._chunk_size, self._weights)
            self._probe = (
                ShardedProbe(*probe_args, collective=self._collective)
                if self._collective is not None
                else ProbeMeasurement(*probe_args)
            )

        self.epoch_intervals = intervals
        self.num_epochs = num_epochs
        self.keep_weights = bool(keep_weights)
        self.drop_batches = bool(drop_batches)
        self._meta_extra = dict(meta or {})
        self._storage(activation_samples, activation_seed, activation_dtype, max_trace_bytes)
        self._start_recording(inner)
        self._record(0)
        if log_dir is not None and (self._collective is None or self._collective.rank == 0):
            self._log = self._open_log(log_dir, on_write_error)
            if self._budget is not None:
                self._budget.directory = self._log.directory

    def _storage(
        self, samples: int | None, seed: int, dtype: str, max_trace_bytes: int | None
    ) -> None:
        """What every recorded epoch keeps of the probe's tensors, and the trace budget."""
        if dtype not in STORED_DTYPES:
            raise ValueError(
                f"activation_dtype={dtype!r}: choose one of {', '.join(STORED_DTYPES)}"
            )
        if samples is not None and (isinstance(samples, bool) or int(samples) < 1):
            raise ValueError(f"activation_samples={samples!r} must be a positive integer")
        n_probe = int(self._probe.x.shape[0]) if self._probe is not None else 0
        self._kept_rows = kept_rows(n_probe, samples, seed) if self._probe is not None else None
        self._activation_seed = int(seed)
        self.activation_dtype = dtype
        self._budget: RecordingBudget | None = None
        if max_trace_bytes is not None:
            if isinstance(max_trace_bytes, bool) or int(max_trace_bytes) < 1:
                raise ValueError(f"max_trace_bytes={max_trace_bytes!r} must be a positive size")
            probe = self._stored_probe()
            fixed = sum(p.numel() * p.element_size() for p in self._wrapped.parameters())
            fixed += sum(a.nbytes for a in probe) if probe is not None else 0
            self._budget = RecordingBudget(int(max_trace_bytes), fixed_bytes=int(fixed) + 16_384)

    def watch_directory(self, directory: str | os.PathLike) -> None:
        """Measure ``directory`` (the run directory another writer fills with this trace)
        for ``max_trace_bytes`` too; nothing without a budget."""
        if self._budget is not None:
            from pathlib import Path

            self._budget.directory = Path(directory)

    @property
    def recording_stopped(self) -> int | None:
        """The epoch at which recording stopped for ``max_trace_bytes`` (``None``: it did not)."""
        return self._budget.stopped_at if self._budget is not None else None

    def _stored_probe(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The probe ``(x, y)`` as the trace keeps it: the kept samples only."""
        probe = self._probe
        if probe is None:
            return None
        x, y = probe.x.detach().cpu().numpy(), probe.y.detach().cpu().numpy()
        rows = self._kept_rows
        return (x, y) if rows is None else (x[rows], y[rows])

    def _budget_allows(self, epoch: int) -> bool:
        """Whether ``epoch`` may be recorded under ``max_trace_bytes``; the first time it may
        not, recording stops (a warning, and ``meta["budget"]`` says why)."""
        budget = self._budget
        if budget is None:
            return True
        fits = budget.stopped_at is not None or budget.next_fits()
        if self._collective is not None and budget.stopped_at is None:
            fits = self._collective.rank0_decides(fits, module_device(self._inner))
        if budget.stopped_at is None and not fits:
            budget.stopped_at = epoch
            message = budget.message(epoch)
            warnings.warn(message, TraceBudgetWarning, stacklevel=3)
            self._meta_extra.setdefault("budget", {})
            self._meta_extra["budget"] = {
                **self._meta_extra["budget"],
                "recording_stopped": {"epoch": epoch, "message": message},
            }
        return budget.stopped_at is None

    def _start_recording(self, module: nn.Module) -> None:
        """Empty records, the run's status, and the per-step recorder when asked for."""
        self._epoch_metrics: dict[int, np.ndarray] = {}
        self._epoch_tensors: dict[int, dict[str, np.ndarray]] = {}
        self._history: dict[int, dict[str, Any]] = {}
        self._step_tables: list[pd.DataFrame] = []
        self._stream: BatchStream | None = None
        self._epoch: int | None = None
        self._epoch_started: float | None = None
        self._last_epoch = 0
        self._step = 0
        self._finished = False
        self._status = "running"
        self._status_message = ""
        self._trace_seconds = 0.0
        self._final_weights: dict[str, np.ndarray] | None = None
        self._final_epoch: int | None = None
        self._steps: StepRecorder | None = None
        self._log: RunLog | None = None
        if not self.drop_batches:
            self._steps = StepRecorder(module, self._layout.layers, self._measuring)

    # -- behaving like the wrapped module --------------------------------------------------
    @property
    def module(self) -> nn.Module:
        """The wrapped module."""
        return self._wrapped

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_wrapped"), name)

    def train(self, mode: bool = True) -> TraceableNN:
        self._wrapped.train(mode)
        self.training = mode
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._stream is not None:
            self._stream.before_forward(args)
        if self._steps is not None:
            self._steps.before_forward()
        log = self._log
        if log is not None and time.monotonic() >= log.next_beat:
            log.beat(epoch=self._epoch, epochs=self.num_epochs)
        output = self._wrapped(*args, **kwargs)
        if self._steps is not None:
            self._steps.after_forward()
        return output

    # -- public API ------------------------------------------------------------------------
    @property
    def neural_index(self) -> dict[str, tuple[int, int]]:
        """``{layer: (first_id, last_id)}``, inclusive global ids, ``input`` first."""
        return {info.name: (info.first_id, info.last_id) for info in self._layout.infos}

    @property
    def neuron_ids(self) -> list[str]:
        """``["n_0", "n_1", …]`` in layer order."""
        return [f"n_{i}" for i in range(self._layout.n_neurons)]

    @property
    def layers(self) -> list[LayerInfo]:
        return self._layout.infos

    @property
    def recorded_epochs(self) -> list[int]:
        """The epochs recorded so far, ascending."""
        return sorted(self._epoch_metrics)

    @property
    def axis(self) -> str:
        """``"step"`` with a step schedule, else ``"epoch"``: what the recorded points count."""
        return "epoch" if self.step_intervals is None else "step"

    @property
    def current_step(self) -> int:
        """Optimizer steps counted so far by :meth:`step` (0 before the first)."""
        return self._step

    def will_record(self, point: int) -> bool:
        """Whether the schedule records ``point`` (an epoch, or a step on the step axis)."""
        if self._records_step is not None:
            return self._records_step(point)
        return should_record(point, self.epoch_intervals, self.num_epochs)

    def step(self, **history: float) -> bool:
        """Call after every optimizer step of a step-schedule run; records the step if the
        schedule says so and returns whether it did.

        Keyword arguments (``train_loss=…``) go into the history row of this step. Inside an
        epoch (:meth:`start_epoch`) the run directory gets a recorded step at
        :meth:`end_epoch`, with that epoch's history; outside one, at once.
        """
        self._check_open()
        if self.step_intervals is None:
            raise RuntimeError(
                "step() counts optimizer steps for a step schedule; this TraceableNN records "
                "epochs (give step_intervals= to record on steps)"
            )
        self._step += 1
        point = self._step
        if history:
            self._history.setdefault(point, {}).update(checked_history(history))
        record = self.will_record(point) and self._budget_allows(point)
        if record:
            self._record(point)
        log = self._log
        if self._epoch is None:
            self._write_log()
        elif log is not None and time.monotonic() >= log.next_beat:
            log.beat(epoch=self._epoch, epochs=self.num_epochs)
        return record

    def start_epoch(self, epoch: int) -> None:
        """Call before the first batch of ``epoch`` (1-based)."""
        self._check_open()
        if not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"epochs are counted from 1; got {epoch!r}")
        self._epoch = epoch
        self._epoch_started = time.perf_counter()
        if self._probe is None and self.will_record(epoch):
            self._stop_streaming()
            self._stream = BatchStream(self._inner, self._layout, self._measuring)
        self._write_log()

    def end_epoch(self, epoch: int, *, force: bool = False, **history: float) -> bool:
        """Call after the last batch of ``epoch``; records it if the schedule says so.

        Keyword arguments (``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``)
        go into ``trace.history``. ``force=True`` records the epoch whatever the schedule.
        Returns whether the epoch was recorded. With a step schedule the epoch's values go to
        the row of the current step, which ``force`` records (the schedule records steps in
        :meth:`step`); the return value says whether that step is recorded.
        """
        self._check_open()
        if self._epoch is not None and epoch != self._epoch:
            raise ValueError(f"end_epoch({epoch}) does not match start_epoch({self._epoch})")
        seconds = (
            time.perf_counter() - self._epoch_started
            if self._epoch_started is not None
            else float("nan")
        )
        point = self.end_point(epoch)
        record = self.record_epoch(epoch, force=force)
        self._stop_streaming()
        row = self._history.setdefault(point, {})
        row.update(checked_history(history))
        row["seconds"] = seconds
        row["recorded"] = record
        self._last_epoch = max(self._last_epoch, epoch)
        self._epoch = None
        self._epoch_started = None
        self._write_log(force=True)
        return record

    def record_epoch(self, epoch: int, *, force: bool = False) -> bool:
        """Record ``epoch`` now if :meth:`end_epoch` would (the schedule, or ``force``), so
        that what the record measured is known before the epoch ends: ``train`` takes the
        probe's share of the validation loss from :meth:`history_values` instead of a second
        forward over the probe. Returns whether the epoch's point is recorded (now or
        before); :meth:`end_epoch` does not record it again."""
        self._check_open()
        self._flush_steps(epoch)
        point = self.end_point(epoch)
        scheduled = self.step_intervals is None and self.will_record(epoch)
        due = (force or scheduled) and point not in self._epoch_metrics
        if due and self._budget_allows(point):
            self._record(point)
        return point in self._epoch_metrics

    def history_values(self, point: int) -> dict[str, float]:
        """The history row of a recorded point so far (a copy): what :meth:`end_epoch`,
        :meth:`set_history` and the record itself (``probe_loss``, ``probe_acc``) put there."""
        return {
            key: value
            for key, value in self._history.get(point, {}).items()
            if isinstance(value, float)
        }

    def end_point(self, epoch: int) -> int:
        """The recorded point an epoch ends on: the epoch, or on the step axis the step."""
        if self.step_intervals is None:
            return epoch
        if self._step == 0:
            raise ValueError(
                f"end_epoch({epoch}) after no step: with step_intervals, call step() after "
                "every optimizer step"
            )
        return self._step

    def set_history(self, epoch: int, **values: float) -> None:
        """Add values (``val_loss=…``) to the history row of ``epoch``."""
        self._history.setdefault(epoch, {"recorded": epoch in self._epoch_metrics}).update(
            checked_history(values)
        )

    def log_step(self, loss: torch.Tensor | float) -> None:
        """Record the loss of the current training step (``drop_batches=False`` only)."""
        if self._steps is not None:
            self._steps.log_loss(loss)
        log = self._log
        if log is not None and time.monotonic() >= log.next_beat:
            log.beat(epoch=self._epoch, epochs=self.num_epochs)

    def finish(self, status: str = "complete", message: str = "") -> NetworkTrace:
        """End tracing: record the last epoch if due, keep the final weights, remove hooks.

        ``status`` is ``complete``, ``stopped`` or ``diverged``. Returns the trace.
        """
        if status not in ("complete", "stopped", "diverged"):
            raise ValueError(f"status={status!r}: use complete, stopped or diverged")
        if not self._finished:
            last = self._last_epoch if self.step_intervals is None else self._step
            if self.step_intervals is None:
                scheduled_last = (
                    self.num_epochs is None
                    and self.epoch_intervals is not None
                    and not isinstance(self.epoch_intervals, tuple)
                )
            else:
                scheduled_last = not isinstance(self.step_intervals, tuple)
            due = (
                status == "complete"
                and last > 0
                and last not in self._epoch_metrics
                and scheduled_last
                and self._probe is not None
                and self._budget_allows(last)
            )
            if due:
                self._record(last)
                self._history.setdefault(last, {})["recorded"] = True
            open_epoch = self._epoch is not None
            if open_epoch:
                self._flush_steps(self._epoch)
                self._epoch = None
            self._final_weights = self._state_numpy()
            # the final weights belong to an epoch only if training ended at its end
            self._final_epoch = None if open_epoch else last
            self.remove_hooks()
            self._finished = True
        self._status = status
        self._status_message = message
        trace = self.network_trace
        if self._log is not None:
            self._log.close(trace, status)
        return trace

    @property
    def network_trace(self) -> NetworkTrace:
        """The trace so far (a new, cheap view over the recorded data at every call)."""
        return NetworkTrace(
            layers=self._layout.infos,
            epoch_metrics=dict(self._epoch_metrics),
            meta=self._build_meta(),
            history=history_frame(self._history, self._epoch_metrics),
            steps=pd.concat(self._step_tables, ignore_index=True) if self._step_tables else None,
            probe=self._stored_probe(),
            epoch_tensors=dict(self._epoch_tensors),
            final_weights=self._final_weights,
        )

    def remove_hooks(self) -> None:
        """Remove every hook the tracer holds on the module."""
        if self._steps is not None:
            self._steps.close()
        self._steps = None
        self._stop_streaming()

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """Every neuron's activation on ``x`` in inference mode: (n_samples, n_neurons).

        The same definition as the trace's probe activations (input features first, channels
        averaged over positions), computed without gradients and without touching the model's
        state. Used to evaluate a neuron anywhere in input space (activation fields).
        """
        device = module_device(self._inner)
        x = torch.as_tensor(x).to(device)
        with self._measuring():
            return pooled_activations(self._inner, self._layout, x, self._chunk_size, device)

    def update_meta(self, **values: Any) -> None:
        """Add JSON-ready metadata to the trace (``config=…``, ``dataset=…``, ``timings=…``)."""
        self._meta_extra.update(values)

    # -- the run directory (log_dir) ------------------------------------------------------
    def _open_log(self, log_dir: str | os.PathLike, on_write_error: str) -> RunLog:
        """The run directory made at once (probe set, heartbeat), so that a folder that holds
        a run or cannot be written fails before training does."""
        from ..rundir_log import RunLog

        log = RunLog(log_dir, on_write_error=on_write_error)
        log.open(self.network_trace)
        return log

    def _write_log(self, *, force: bool = False) -> None:
        """The recorded epochs not in the run directory yet, written (``end_epoch`` returns
        once its epoch is on disk, so a script killed after it keeps it); the heartbeat kept
        (written now if ``force``: once an epoch, at its end)."""
        log = self._log
        if log is None or not log.writing:
            return
        if self._epoch_metrics and max(self._epoch_metrics) > log.last_handed:
            log.sync(self.network_trace, wait=True)
        log.beat(force=force, epoch=self._epoch or self._last_epoch, epochs=self.num_epochs)

    # -- recording -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("this TraceableNN has finished; start a new one to trace again")

    def _stop_streaming(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = None

    def _flush_steps(self, epoch: int) -> None:
        if self._steps is not None:
            table = self._steps.flush(epoch)
            if table is not None:
                self._step_tables.append(table)

    def _record(self, epoch: int) -> None:
        started = time.perf_counter()
        device = module_device(self._inner)
        tensors: dict[str, np.ndarray] = {}
        extra: dict[str, float] = {}
        with self._measuring():
            if self._probe is not None:
                metrics, tensors, extra = self._probe.measure(device)
                tensors = stored_tensors(tensors, self._kept_rows, self.activation_dtype)
            elif epoch == 0 or self._stream is None:
                # E_0 (or an epoch forced without streaming): measured on example_input.
                metrics = measure_example(
                    self._inner,
                    self._layout,
                    self._example_args,
                    self._weights,
                    device,
                    self._collective,
                )
            else:
                metrics = self._stream.measure(self._weights, device, self._collective)
        if self.keep_weights:
            for key, value in self._state_numpy().items():
                tensors["weights/" + key] = value
        self._epoch_metrics[epoch] = metrics
        self._epoch_tensors[epoch] = tensors
        if self._budget is not None:
            self._budget.add(epoch, tensors, self._layout.n_neurons)
        self._history.setdefault(epoch, {}).update(extra)
        self._trace_seconds += time.perf_counter() - started

    def _n_kept(self) -> int:
        """Probe samples whose tensors every recorded epoch keeps."""
        if self._probe is None:
            return 0
        rows = self._kept_rows
        return int(self._probe.x.shape[0]) if rows is None else len(rows)

    def _state_numpy(self) -> dict[str, np.ndarray]:
        return state_arrays(self._inner)

    # -- assembling the trace --------------------------------------------------------------
    def _build_meta(self) -> dict[str, Any]:
        intervals = self.epoch_intervals
        probe = self._probe
        meta: dict[str, Any] = {
            "model": {
                "class": type(self._inner).__name__,
                "builtin": False,
                "n_parameters": int(sum(p.numel() for p in self._inner.parameters())),
            },
            "layers": [info.to_dict() for info in self._layout.infos],
            "metrics": list(METRICS),
            "axis": self.axis,
            "epoch_intervals": list(intervals) if isinstance(intervals, tuple) else intervals,
            "num_epochs": self.num_epochs,
            "recorded_epochs": sorted(self._epoch_metrics),
            "keep_weights": self.keep_weights,
            "drop_batches": self.drop_batches,
            "traced_layers": self._selected,
            "statistics_source": "probe" if probe is not None else "training batches",
            "n_probe": int(probe.x.shape[0]) if probe is not None else 0,
            "activation_samples": self._n_kept(),
            "activation_dtype": self.activation_dtype,
            "status": self._status,
            "status_message": self._status_message,
            "final_weights_epoch": self._final_epoch,
            "versions": _versions(),
            "timings": {"trace_seconds": round(self._trace_seconds, 4)},
        }
        if self.step_intervals is not None:
            steps = self.step_intervals
            meta["step_intervals"] = list(steps) if isinstance(steps, tuple) else steps
            meta["num_steps"] = self.num_steps
            meta["steps_done"] = self._step
        if self._collective is not None:
            meta["distributed"] = self._collective.meta()
        if self._kept_rows is not None:
            meta["activation_subset"] = {"seed": self._activation_seed, "method": "kept_rows"}
        if self._budget is not None:
            meta["budget"] = {"max_trace_bytes": self._budget.max_bytes}
        for key, value in self._meta_extra.items():
            if key in ("model", "budget") and isinstance(value, dict):
                meta[key] = {**meta.get(key, {}), **value}
            elif key == "timings" and isinstance(value, dict):
                meta["timings"] = {**meta["timings"], **value}
            else:
                meta[key] = value
        return meta


def _versions() -> dict[str, str]:
    from .. import __version__

    return {
        "nn_tracing": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }
