"""Questions about a trace's neuron table, answered by DuckDB over its Parquet parts in place.

A run directory keeps the neuron table as one Parquet part per recorded epoch
(``neurons/epoch=<E>/part.parquet``, :mod:`nn_tracing.rundir`). A trace of 100k neurons
recorded at 100 epochs is 10M rows × 13 metrics: more than a page should hold to draw one
chart. :class:`NeuronQuery` answers the questions the pages ask — per-layer quantiles at
every epoch, one neuron's history, one epoch's slice, one metric over a range of neurons —
with `DuckDB <https://duckdb.org>`_ (embedded, larger than memory), reading only the columns
and row groups each question needs.

The parts are untrusted input, checked before they reach this module (names, symlinks,
sizes, Parquet footers: schema and row count). DuckDB is pointed at exactly those files: it is
given the explicit list of paths (a query parameter, never SQL text built from a path and
never a glob), its ``allowed_paths`` are those files, external access is then disabled and
the configuration locked, so a query can open no other file, no URL and load no extension.
A neuron's id is its row's position in its part (``file_row_number``) and its layer follows
from the manifest's layer ranges: the part's own ``neuron`` and ``layer`` columns (checked row
by row whenever a part is loaded whole) are never trusted here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .trace import METRICS, LayerInfo

__all__ = ["NeuronQuery"]

#: The most bytes of values the quantiles of one query hold (see ``NeuronQuery._chunks``).
QUANTILE_BYTES = 128 * 2**20
#: How many neurons' histories a query keeps (a few KiB each): those a page just showed.
HISTORIES_KEPT = 32
#: DuckDB's memory limit for one trace's queries (it spills or fails beyond it, see
#: docs/file-format.md).
MEMORY_LIMIT = "512MB"


class NeuronQuery:
    """DuckDB over the neuron parts of one run directory.

    Parameters
    ----------
    parts
        ``{epoch: path}`` of every recorded epoch's neuron part, ascending, each already
        checked (see the module docstring).
    layers
        The trace's layers (contiguous global ids, ``input`` first).
    threads
        DuckDB's worker threads (default: up to 4, at most the machine's cores).

    Every method returns NumPy arrays or pandas frames with rows in ``epochs`` order; a
    part DuckDB cannot read raises :class:`~nn_tracing.store.TraceFormatError`.
    """

    def __init__(
        self,
        parts: Mapping[int, str | os.PathLike],
        layers: Sequence[LayerInfo],
        *,
        threads: int | None = None,
    ) -> None:
        self.epochs = [int(e) for e in parts]
        self.files = [str(Path(p)) for p in parts.values()]
        self.layers = list(layers)
        self.n_neurons = sum(info.n_neurons for info in self.layers)
        self._lock = threading.Lock()
        self._con = _connect(self.files, threads or min(4, os.cpu_count() or 1))
        _OPEN.add(self)
        # the last neurons' histories: a page asks for a neuron's history several times in
        # one run (its profile, its percentiles, its health line), each a pass over every part
        self._histories: OrderedDict[int, pd.DataFrame] = OrderedDict()

    # -- plumbing ----------------------------------------------------------------------------
    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor of the shared database (one per query: cursors are thread-safe)."""
        import duckdb

        with self._lock:
            cursor = self._con.cursor()
        try:
            yield cursor
        except duckdb.Error as exc:
            from .store_archive import _fail

            raise _fail(f"the neuron table cannot be queried: {exc}") from None
        finally:
            cursor.close()

    def _source(self) -> str:
        """The neuron table as a subquery: ``file`` (the part's position in the bound list
        ``$files``), ``epoch`` (from the bound list ``$epochs``), ``neuron`` (the row's
        position in its part), ``layer_index`` and the metrics."""
        return (
            "(SELECT p.file_index::INTEGER AS file, $epochs[p.file_index::BIGINT + 1] AS epoch, "
            f"p.file_row_number::INTEGER AS neuron, "
            f"{self._layer_case('p.file_row_number')} AS layer_index, "
            f"{', '.join('p.' + m for m in METRICS)} "
            "FROM read_parquet($files, file_row_number = true) p "
            f"WHERE p.file_row_number < {int(self.n_neurons)})"
        )

    def _layer_case(self, column: str) -> str:
        """SQL for the layer index of neuron id ``column`` (validated integers only)."""
        if len(self.layers) == 1:
            return "0"
        arms = " ".join(
            f"WHEN {column} < {int(info.last_id) + 1} THEN {i}"
            for i, info in enumerate(self.layers[:-1])
        )
        return f"(CASE {arms} ELSE {len(self.layers) - 1} END)"

    def _params(self, epochs: Sequence[int] | None = None) -> dict[str, Any]:
        if epochs is None:
            return {"files": self.files, "epochs": self.epochs}
        index = {e: i for i, e in enumerate(self.epochs)}
        return {
            "files": [self.files[index[e]] for e in epochs],
            "epochs": [int(e) for e in epochs],
        }

    def _chunks(self, per_file_bytes: int, groups: Sequence[Sequence[int]]) -> list[list[int]]:
        """Runs of whole ``groups`` of part positions, each holding at most
        :data:`QUANTILE_BYTES` of values at ``per_file_bytes`` a part: a quantile keeps every
        value of its group in memory, so big questions are asked a few epochs at a time."""
        chunks: list[list[int]] = []
        current: list[int] = []
        for group in groups:
            if current and per_file_bytes * (len(current) + len(group)) > QUANTILE_BYTES:
                chunks.append(current)
                current = []
            current.extend(group)
        return [*chunks, current] if current else chunks

    def _chunk_params(self, positions: Sequence[int]) -> dict[str, Any]:
        """The bound ``$files`` and ``$epochs`` of the parts at ``positions``."""
        return {
            "files": [self.files[i] for i in positions],
            "epochs": [self.epochs[i] for i in positions],
        }

    def _fetch_chunks(
        self, sql: str, chunks: list[list[int]], extra: Callable[[list[int]], dict[str, Any]]
    ) -> dict[str, np.ndarray]:
        """``sql`` over each chunk of parts, the results joined; its ``file`` column made the
        part's position among every part."""
        parts = []
        for chunk in chunks:
            data = self._fetch(sql, {**self._chunk_params(chunk), **extra(chunk)})
            data["file"] = np.asarray(chunk, dtype=np.int64)[data["file"].astype(np.int64)]
            parts.append(data)
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    def _fetch(self, sql: str, params: dict[str, Any]) -> dict[str, np.ndarray]:
        with self._cursor() as cursor:
            return cursor.execute(sql, params).fetchnumpy()

    def _ids(self, first: int, last: int | None) -> tuple[int, int]:
        last = self.n_neurons - 1 if last is None else last
        if not 0 <= first <= last < self.n_neurons:
            raise KeyError(f"neurons n_{first} … n_{last} are not in this trace")
        return int(first), int(last)

    # -- questions ---------------------------------------------------------------------------
    def epoch_slice(self, epoch: int, first: int = 0, last: int | None = None) -> np.ndarray:
        """Every metric of neurons ``first … last`` at ``epoch``: array of shape
        ``(last - first + 1, len(METRICS))``, float32."""
        if epoch not in self.epochs:
            raise KeyError(f"epoch {epoch} was not recorded")
        first, last = self._ids(first, last)
        sql = (
            f"SELECT neuron, {', '.join(METRICS)} FROM {self._source()} "
            f"WHERE neuron BETWEEN {first} AND {last}"
        )
        data = self._fetch(sql, self._params([epoch]))
        out = np.full((last - first + 1, len(METRICS)), np.nan, dtype=np.float32)
        rows = data["neuron"].astype(np.int64) - first
        for m, name in enumerate(METRICS):
            out[rows, m] = data[name]
        return out

    def metric_matrix(self, metric: str, first: int = 0, last: int | None = None) -> np.ndarray:
        """One metric of neurons ``first … last`` at every epoch: array of shape
        ``(n_epochs, last - first + 1)``, float32."""
        return self.metric_matrices([metric], first, last)[metric]

    def metric_matrices(
        self, metrics: Sequence[str], first: int = 0, last: int | None = None
    ) -> dict[str, np.ndarray]:
        """Several metrics of neurons ``first … last`` at every epoch in one pass over the
        parts: ``{metric: array of shape (n_epochs, last - first + 1)}``, float32, NaN where a
        part holds no row for a neuron."""
        for metric in metrics:
            _check_metric(metric)
        first, last = self._ids(first, last)
        columns = ", ".join(dict.fromkeys(metrics))
        sql = (
            f"SELECT file, neuron, {columns} FROM {self._source()} "
            f"WHERE neuron BETWEEN {first} AND {last}"
        )
        data = self._fetch(sql, self._params())
        shape = (len(self.epochs), last - first + 1)
        flat = _grid_positions(data["file"], data["neuron"], first, shape)
        out = {}
        for metric in dict.fromkeys(metrics):
            values = np.asarray(data[metric], dtype=np.float32)
            if flat is None:  # every cell, in order (DuckDB keeps the parts' order)
                out[metric] = values.reshape(shape)
                continue
            matrix = np.full(shape, np.nan, dtype=np.float32)
            matrix.reshape(-1)[flat] = values
            out[metric] = matrix
        return out

    def binned_means(self, metric: str, first: int, last: int, size: int) -> np.ndarray:
        """The mean of ``metric``'s finite values over each run of ``size`` consecutive neurons
        of ``first … last`` (the last run may be shorter), at every epoch: array of shape
        ``(n_epochs, ceil((last - first + 1) / size))``, float64, NaN where a run has no finite
        value — :func:`nn_tracing.viz.common.binned_means` of :meth:`metric_matrix`, averaged by
        DuckDB so that only the means leave it."""
        _check_metric(metric)
        first, last = self._ids(first, last)
        size = max(int(size), 1)
        sql = (
            f"SELECT file, (neuron - {first}) // {size} AS cell, "
            f"avg(CASE WHEN isfinite({metric}) THEN {metric}::DOUBLE END) AS value "
            f"FROM {self._source()} WHERE neuron BETWEEN {first} AND {last} GROUP BY file, cell"
        )
        data = self._fetch(sql, self._params())
        cells = -(-(last - first + 1) // size)
        out = np.full((len(self.epochs), cells), np.nan)
        values = np.ma.filled(np.ma.asarray(data["value"], dtype=np.float64), np.nan)
        out[data["file"].astype(np.intp), data["cell"].astype(np.intp)] = values
        return out

    def neuron_history(self, neuron: int) -> pd.DataFrame:
        """Every metric of ``neuron`` at every recorded epoch: ``epoch`` and one float32
        column per metric, one row per epoch."""
        neuron, _ = self._ids(neuron, neuron)
        with self._lock:
            kept = self._histories.get(neuron)
            if kept is not None:
                self._histories.move_to_end(neuron)
                return kept.copy()
        sql = (
            f"SELECT epoch, {', '.join(METRICS)} FROM {self._source()} "
            f"WHERE neuron = {neuron} ORDER BY epoch"
        )
        data = self._fetch(sql, self._params())
        frame = pd.DataFrame({"epoch": data["epoch"].astype(np.int64)})
        for name in METRICS:
            frame[name] = np.asarray(data[name], dtype=np.float32)
        with self._lock:
            self._histories[neuron] = frame
            while len(self._histories) > HISTORIES_KEPT:
                self._histories.popitem(last=False)
        return frame.copy()

    def layer_quantiles(
        self,
        metric: str,
        quantiles: Sequence[float] = (0.25, 0.5, 0.75),
        epoch_groups: Sequence[Sequence[int]] | None = None,
    ) -> pd.DataFrame:
        """Quantiles of ``metric`` over each layer's finite values, per epoch (or per group
        of epochs), linear interpolation as :func:`numpy.percentile`'s default.

        Returns
        -------
        DataFrame with one row per (layer, group): ``layer_index``, ``group`` (the index in
        ``epoch_groups``; by default one group per epoch, in order), ``n`` (finite values)
        and one column ``q0``, ``q1``, … per quantile (NaN where ``n`` is 0).
        """
        _check_metric(metric)
        groups = [[e] for e in self.epochs] if epoch_groups is None else epoch_groups
        group_of = {int(e): g for g, members in enumerate(groups) for e in members}
        qs = ", ".join(repr(float(q)) for q in quantiles)
        sql = (
            "SELECT layer_index, $groups[file + 1] AS grp, first(file) AS file, count(*) AS n, "
            f"quantile_cont({metric}::DOUBLE, [{qs}]) AS q "
            f"FROM {self._source()} WHERE isfinite({metric}) GROUP BY layer_index, grp"
        )
        position = {e: i for i, e in enumerate(self.epochs)}
        chunks = self._chunks(
            8 * self.n_neurons, [[position[int(e)] for e in group] for group in groups]
        )
        data = self._fetch_chunks(
            sql, chunks, lambda chunk: {"groups": [group_of[self.epochs[i]] for i in chunk]}
        )
        full = pd.MultiIndex.from_product(
            [range(len(self.layers)), range(len(groups))], names=["layer_index", "group"]
        )
        frame = pd.DataFrame(
            {"n": data["n"].astype(np.int64)},
            index=pd.MultiIndex.from_arrays(
                [data["layer_index"].astype(np.int64), data["grp"].astype(np.int64)],
                names=["layer_index", "group"],
            ),
        )
        values = np.asarray([list(v) for v in data["q"]], dtype=np.float64).reshape(
            len(frame), len(quantiles)
        )
        for i in range(len(quantiles)):
            frame[f"q{i}"] = values[:, i]
        frame = frame.reindex(full)
        frame["n"] = frame["n"].fillna(0).astype(np.int64)
        return frame.reset_index()

    def layer_medians(
        self, metric: str, layer_index: int, epochs: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The median of ``metric`` over one layer's finite values at each of ``epochs``
        (default: every recorded epoch), linear interpolation as :func:`numpy.median`, and
        how many finite values it had: arrays of shape ``(len(epochs),)``, the median NaN
        where there are none. Reads the layer's rows only."""
        _check_metric(metric)
        info = self.layers[layer_index]
        epochs = self.epochs if epochs is None else [int(e) for e in epochs]
        sql = (
            f"SELECT file, quantile_cont({metric}::DOUBLE, 0.5) AS q, count(*) AS n "
            f"FROM {self._source()} WHERE isfinite({metric}) "
            f"AND neuron BETWEEN {info.first_id} AND {info.last_id} GROUP BY file"
        )
        data = self._fetch(sql, self._params(epochs))
        median, counts = np.full(len(epochs), np.nan), np.zeros(len(epochs), dtype=np.int64)
        rows = data["file"].astype(np.intp)
        median[rows], counts[rows] = data["q"], data["n"]
        return median, counts

    def layer_bands(self, layer_index: int) -> np.ndarray:
        """25th, 50th and 75th percentile of every metric over one layer's neurons (NaN
        left out, as :func:`numpy.nanpercentile`), per epoch: array of shape
        ``(len(METRICS), n_epochs, 3)``; NaN where the layer has no finite value."""
        info = self.layers[layer_index]
        arms = ", ".join(
            f"quantile_cont((CASE WHEN isnan({m}) THEN NULL ELSE {m} END)::DOUBLE, "
            f"[0.25, 0.5, 0.75]) AS q_{m}, sum(isfinite({m})::INTEGER) AS f_{m}"
            for m in METRICS
        )
        sql = (
            f"SELECT file, {arms} FROM {self._source()} "
            f"WHERE neuron BETWEEN {info.first_id} AND {info.last_id} GROUP BY file"
        )
        each = [[i] for i in range(len(self.epochs))]
        chunks = self._chunks(8 * info.n_neurons * len(METRICS), each)
        data = self._fetch_chunks(sql, chunks, lambda chunk: {})
        out = np.full((len(METRICS), len(self.epochs), 3), np.nan)
        rows = data["file"]
        for m, name in enumerate(METRICS):
            for r, q, finite in zip(rows, data[f"q_{name}"], data[f"f_{name}"], strict=True):
                if finite and q is not None:
                    out[m, r] = np.asarray(list(q), dtype=np.float64)
        return out

    def neuron_percentiles(
        self, neuron: int, layer_index: int, own: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Share of the layer's neurons whose value is below ``neuron``'s (ties counted
        half, over finite values), for every metric at every epoch: array of shape
        ``(len(METRICS), n_epochs)``; NaN where the neuron's value is not finite. ``own``:
        the neuron's :meth:`neuron_history` when the caller has it already."""
        own = self.neuron_history(neuron) if own is None else own
        info = self.layers[layer_index]
        params = self._params()
        for m in METRICS:
            params[f"own_{m}"] = [float(v) for v in own[m]]
        arms = ", ".join(
            f"count_if({m} < $own_{m}[file + 1]::FLOAT) AS below_{m}, "
            f"count_if({m} = $own_{m}[file + 1]::FLOAT) AS equal_{m}, "
            f"count_if(isfinite({m})) AS finite_{m}"
            for m in METRICS
        )
        sql = (
            f"SELECT file, {arms} FROM {self._source()} "
            f"WHERE neuron BETWEEN {info.first_id} AND {info.last_id} GROUP BY file"
        )
        data = self._fetch(sql, params)
        out = np.full((len(METRICS), len(self.epochs)), np.nan)
        rows = data["file"]
        for m, name in enumerate(METRICS):
            finite = data[f"finite_{name}"].astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = (data[f"below_{name}"] + 0.5 * data[f"equal_{name}"]) / finite
            own_finite = np.isfinite(own[name].to_numpy()[rows])
            out[m, rows] = np.where(own_finite, share, np.nan)
        return out

    def close(self) -> None:
        """Close the database (a later query raises); closing twice is harmless."""
        with self._lock:
            self._con.close()
        _OPEN.discard(self)


#: Every query not closed yet. A DuckDB database left for the interpreter's teardown (its
#: scheduler's threads still waiting) can hang or abort the process's exit (duckdb#13904): a
#: server stopped with Ctrl-C once waited over 30 s with dozens of threads in futex waits
#: (tests/e2e/test_server_lifecycle.py). They are closed while the interpreter is whole.
_OPEN: weakref.WeakSet[NeuronQuery] = weakref.WeakSet()


@atexit.register
def _close_open_queries() -> None:
    """Close every :class:`NeuronQuery` still open (run at the interpreter's exit)."""
    for query in list(_OPEN):
        with contextlib.suppress(Exception):
            query.close()


def _grid_positions(
    files: np.ndarray, neurons: np.ndarray, first: int, shape: tuple[int, int]
) -> np.ndarray | None:
    """Where rows ``(file, neuron)`` go in a flat ``shape`` matrix (epochs × neurons from
    ``first``); ``None`` when they are every cell in row-major order already (a reshape, no
    scatter: a dense question over every part comes back that way)."""
    if len(files) == shape[0] * shape[1]:
        in_order = (np.asarray(files).reshape(shape) == np.arange(shape[0])[:, None]).all() and (
            np.asarray(neurons).reshape(shape) == np.arange(first, first + shape[1])
        ).all()
        if in_order:
            return None
    return files.astype(np.int64) * shape[1] + (neurons.astype(np.int64) - first)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise KeyError(f"no metric {metric!r}; metrics: {', '.join(METRICS)}")


def _connect(files: list[str], threads: int) -> Any:
    """An in-memory DuckDB that may read ``files`` and nothing else."""
    import duckdb

    con = duckdb.connect(
        config={
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "threads": max(1, int(threads)),
            "memory_limit": MEMORY_LIMIT,
            # the parts are read where they lie, not kept in DuckDB's buffers between queries
            "enable_external_file_cache": False,
        }
    )
    # the parts' footers read once, not at every query (a neuron's history opens every part)
    con.execute("SET parquet_metadata_cache = true")
    con.execute("SET allowed_paths = $files", {"files": files})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
