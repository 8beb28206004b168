"""Replicates: runs of one configuration that differ only in their seed.

A joint HMM fit over several runs (:class:`~nn_tracing.analysis.hmm.TrainingMap`) needs runs
of the same configuration; here they are found in the runs folder from each file's manifest
(fast: no trace is loaded), and configurations for new seeds are made for training more.
Settings that change what is recorded but not how the network trains (``keep_weights``,
``drop_batches``) and the device are not part of the comparison.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .runs import run_name, run_paths, runs_dir
from .store import TraceFormatError, read_manifest

__all__ = [
    "IGNORED_FIELDS",
    "Replicate",
    "find_replicates",
    "free_seeds",
    "replicate_config",
    "replicate_key",
]

#: Config fields that do not make two runs different experiments.
IGNORED_FIELDS: frozenset[str] = frozenset({"seed", "keep_weights", "drop_batches", "device"})


def replicate_key(config: Mapping[str, Any]) -> str:
    """A string equal for two configs that differ only in :data:`IGNORED_FIELDS` (a field an
    older trace's config lacks counts as its default: ``model`` is ``"mlp"``)."""
    filled = {**TrainConfig().to_dict(), **config}
    kept = {k: v for k, v in filled.items() if k not in IGNORED_FIELDS}
    return json.dumps(kept, sort_keys=True, default=str)


@dataclass(frozen=True)
class Replicate:
    """A trace in the runs folder: its name, file, seed and status."""

    name: str
    path: Path
    seed: int | None
    status: str


def _meta_of(path: Path) -> dict[str, Any]:
    try:
        meta = read_manifest(path).get("meta", {})
    except (TraceFormatError, OSError):
        return {}
    return meta if isinstance(meta, dict) else {}


def find_replicates(
    config: Mapping[str, Any], directory: Path | None = None, *, exclude: Iterable[str] = ()
) -> list[Replicate]:
    """Traces in ``directory`` (default: the runs folder) whose config equals ``config``
    except for :data:`IGNORED_FIELDS`, sorted by seed then name; names in ``exclude`` are
    left out (e.g. the active trace). Only manifests are read."""
    key = replicate_key(config)
    skip = set(exclude)
    out = []
    for path in run_paths(directory or runs_dir()):
        name = run_name(path)
        if name in skip:
            continue
        meta = _meta_of(path)
        other = meta.get("config")
        if not isinstance(other, dict) or replicate_key(other) != key:
            continue
        seed = other.get("seed")
        out.append(
            Replicate(
                name,
                path,
                seed if isinstance(seed, int) else None,
                str(meta.get("status", "complete")),
            )
        )
    return sorted(out, key=lambda r: (r.seed if r.seed is not None else -1, r.name))


def free_seeds(taken: Iterable[int | None], n: int) -> list[int]:
    """The ``n`` smallest non-negative seeds not in ``taken``."""
    used = {s for s in taken if s is not None}
    out, candidate = [], 0
    while len(out) < n:
        if candidate not in used:
            out.append(candidate)
        candidate += 1
    return out


def replicate_config(config: Mapping[str, Any], seed: int) -> TrainConfig:
    """The same configuration with another seed (validated; raises ``ValueError`` for a
    config that is not a valid :class:`TrainConfig`)."""
    return TrainConfig.from_dict({**dict(config), "seed": int(seed)})
