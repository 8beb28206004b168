"""The trace budget while recording: stop before a recorded epoch would take the trace over it.

The estimate made before a run (:mod:`nn_tracing.estimate`) can be wrong — a user's own model,
a schedule forced by a stop, a file system with large blocks. :class:`RecordingBudget` counts
what the trace really holds as it grows: the exact bytes of every epoch's tensors, the neuron
table's rows at their Parquet size, the probe set and the final weights still to come, and —
when the run writes a directory — the directory's size on disk if that is larger. Before an
epoch is recorded it asks whether one more epoch of the size of the last one still fits; when
it does not, recording stops there (the caller says so in the trace's meta and status).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["NEURON_ROW_BYTES", "RecordingBudget", "directory_bytes"]

#: Bytes on disk per row of the neuron table (13 float32 metrics, zstd Parquet; as
#: :data:`nn_tracing.estimate.NEURON_ROW_FILE_BYTES`) and per safetensors entry's header.
NEURON_ROW_BYTES = 45
HEADER_BYTES = 96


def directory_bytes(directory: str | os.PathLike) -> int:
    """Bytes of the regular files under ``directory`` (symlinks not followed; 0 if missing)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += stat.st_size
    return total


@dataclass
class RecordingBudget:
    """What the trace holds so far against ``max_bytes``.

    Attributes
    ----------
    max_bytes
        The budget, in bytes.
    fixed_bytes
        Bytes written once per run: the probe set, the final weights, the manifest.
    directory
        The run directory being written, measured on disk (``None``: counted bytes only).
    epoch_bytes
        ``{epoch: bytes}`` of every recorded epoch (tensors and neuron rows).
    stopped_at
        The epoch that was not recorded because it would not fit (``None`` while recording).
    """

    max_bytes: int
    fixed_bytes: int = 0
    directory: Path | None = None
    epoch_bytes: dict[int, int] = field(default_factory=dict)
    stopped_at: int | None = None

    def add(self, epoch: int, tensors: Mapping[str, np.ndarray], n_neurons: int) -> None:
        """Count one recorded epoch: its tensors' bytes and its neuron rows."""
        tensor_bytes = sum(int(np.asarray(v).nbytes) for v in tensors.values())
        headers = HEADER_BYTES * len(tensors)
        self.epoch_bytes[epoch] = tensor_bytes + headers + n_neurons * NEURON_ROW_BYTES

    @property
    def used_bytes(self) -> int:
        """The trace's size so far: counted, or the directory's on disk if that is larger."""
        counted = self.fixed_bytes + sum(self.epoch_bytes.values())
        if self.directory is not None:
            return max(counted, directory_bytes(self.directory))
        return counted

    def next_fits(self) -> bool:
        """Whether one more epoch, the size of the largest recorded so far, fits the budget."""
        step = max(self.epoch_bytes.values(), default=0)
        return self.used_bytes + step <= self.max_bytes

    def message(self, epoch: int) -> str:
        """Why ``epoch`` (and every later one) is not recorded."""
        from ..estimate import format_bytes

        step = max(self.epoch_bytes.values(), default=0)
        return (
            f"recording stopped before epoch {epoch}: the trace holds about "
            f"{format_bytes(self.used_bytes)} and one more recorded epoch (about "
            f"{format_bytes(step)}) would take it over max_trace_bytes "
            f"({format_bytes(self.max_bytes)}); the epochs recorded before are kept"
        )
