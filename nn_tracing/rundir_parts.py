"""A run directory's neuron parts, opened without reading them: footers at open, one part
when asked.

Opening a run directory (:func:`nn_tracing.rundir.load_run_directory`) reads each neuron
part's Parquet footer only — its schema and row count against the manifest and the layers,
its uncompressed size against the limit — so that opening costs the same for 1k neurons or
1M. An epoch's metrics are read when first asked for (:class:`EpochMetrics`, a mapping
``epoch -> array``, the last few kept), and then checked row by row as a zip's table is
(:func:`nn_tracing.store_checks._neuron_metrics`). Questions over every epoch go to DuckDB
(:mod:`nn_tracing.trace_query`) over the same checked files.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .store_archive import _fail, _looks_like_pickle
from .store_checks import _check_table_schema

__all__ = ["EpochMetrics", "check_part_footer"]

#: The largest footer a part may have (a part's is a few kilobytes).
MAX_FOOTER_BYTES = 16 * 2**20
#: Epochs whose metrics an :class:`EpochMetrics` keeps (pages move between neighbours).
KEPT_EPOCHS = 8


def check_part_footer(
    path: Path, entry: str, rows: int, columns: dict[str, str], max_bytes: int
) -> None:
    """The Parquet footer of the part ``entry`` at ``path`` (never through a symlink): its
    magic bytes, schema (``columns``: name -> kind, as
    :func:`~nn_tracing.store_checks._check_table_schema` takes them), row count ``rows`` and
    uncompressed size (at most ``max_bytes``). Reads only the footer."""
    footer = _read_footer(path, entry)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(pa.BufferReader(footer))
        schema = metadata.schema.to_arrow_schema()
    except Exception as exc:  # pyarrow raises several types for a bad footer
        raise _fail(f"{entry} is not a readable Parquet file: {exc}") from None
    spec = {"columns": list(columns)}
    _check_table_schema("neurons", entry, spec, schema, columns)
    if metadata.num_rows != rows:
        raise _fail(f"{entry} has {metadata.num_rows} rows; the trace has {rows} neurons")
    uncompressed = sum(
        metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
    )
    if uncompressed > max_bytes:
        raise _fail(f"{entry} would expand to {uncompressed} bytes, over the limit")


def _read_footer(path: Path, entry: str) -> bytes:
    """The footer of the Parquet file at ``path`` with its length and magic bytes (what a
    Parquet reader needs to parse it), after checking the leading magic bytes: a few
    kilobytes, whatever the size of the part."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            head = handle.read(4)
            if _looks_like_pickle(head[:2]):
                raise _fail(f"{entry} is a pickle; nn_tracing never unpickles trace files")
            size = handle.seek(0, os.SEEK_END)
            if head != b"PAR1" or size < 12:
                raise _fail(f"{entry} is not a Parquet file")
            handle.seek(size - 8)
            tail = handle.read(8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or not 0 < length <= min(size - 12, MAX_FOOTER_BYTES):
                raise _fail(f"{entry} is not a Parquet file (its footer is damaged)")
            handle.seek(size - 8 - length)
            return handle.read(length) + tail
    except OSError as exc:
        raise _fail(f"{entry} cannot be read: {exc}") from None


class EpochMetrics(Mapping[int, np.ndarray]):
    """``{epoch: array of shape (n_neurons, len(METRICS))}`` read on first use.

    Parameters
    ----------
    epochs
        The recorded epochs, ascending.
    load
        ``epoch -> array``: reads and checks one epoch's part.
    kept
        How many epochs to keep in memory (least recently used dropped first).
    """

    def __init__(
        self, epochs: list[int], load: Callable[[int], np.ndarray], kept: int = KEPT_EPOCHS
    ) -> None:
        self._epochs = list(epochs)
        self._known = set(self._epochs)
        self._load = load
        self._kept = max(1, kept)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        #: How many parts have been read (tests and benchmarks look at it).
        self.loads = 0

    def __getitem__(self, epoch: Any) -> np.ndarray:
        if epoch not in self._known:
            raise KeyError(epoch)
        with self._lock:
            if epoch in self._cache:
                self._cache.move_to_end(epoch)
                return self._cache[epoch]
        values = self._load(int(epoch))
        with self._lock:
            self.loads += 1
            self._cache[epoch] = values
            while len(self._cache) > self._kept:
                self._cache.popitem(last=False)
        return values

    def __contains__(self, epoch: object) -> bool:
        return epoch in self._known

    def __iter__(self) -> Iterator[int]:
        return iter(self._epochs)

    def __len__(self) -> int:
        return len(self._epochs)
