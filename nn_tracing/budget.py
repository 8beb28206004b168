"""How much memory and disk the runs that one server trains may take, and the check made
before each run starts.

A server trains runs for anyone who can reach it, so a run is admitted only when its
estimated peak memory (:func:`nn_tracing.estimate.estimate_run`), added to the estimates of
the runs already training, fits the server's memory budget, and its estimated trace fits the
free disk of the runs folder. The budget is ``$NN_TRACING_MEMORY_BUDGET`` — a size such as
``6GiB``, ``512MiB``, ``8e9`` (bytes), or a share of the machine's memory such as ``40%`` —
and by default :data:`DEFAULT_SHARE` of the machine's memory. ``0`` or ``off`` turns the
check off (the owner's own machine, on purpose).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .estimate import RunEstimate, RunTooLarge, format_bytes

__all__ = [
    "BUDGET_ENV",
    "DEFAULT_SHARE",
    "MemoryBudget",
    "admit",
    "machine_memory",
    "parse_size",
    "server_budget",
]

#: The environment variable the server's owner sets the budget with.
BUDGET_ENV = "NN_TRACING_MEMORY_BUDGET"
#: Share of the machine's memory that training runs may take by default: the rest is for
#: the server, the analyses it runs (a t-SNE of 20k neurons takes ~1 GB) and the system.
DEFAULT_SHARE = 0.5

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@functools.cache
def machine_memory() -> int:
    """Bytes of memory of this machine (``MemTotal``; a cgroup limit when lower). Read once per
    process: the training form shows the budget on every rerun."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def parse_size(text: str, total: int) -> int | None:
    """Bytes that ``text`` names (``6GiB``, ``512M``, ``8e9``, ``40%`` of ``total``);
    ``None`` for ``0``/``off``/``none`` (no budget). Raises ``ValueError`` for anything else."""
    value = text.strip().lower().replace(" ", "")
    if value in ("0", "off", "none", "unlimited"):
        return None
    if value.endswith("%"):
        try:
            share = float(value[:-1])
        except ValueError:
            share = -1.0
        if not 0 < share <= 100:
            raise ValueError(f"{BUDGET_ENV}={text!r}: a share must be between 0 and 100 %")
        return int(total * share / 100)
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)([kmgt]?)(?:i?b)?", value)
    if match is None:
        raise ValueError(f"{BUDGET_ENV}={text!r} is not a size: use e.g. 6GiB, 512MiB, 8e9 or 40%")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size <= 0:
        return None
    return size


@dataclass(frozen=True)
class MemoryBudget:
    """The memory that training runs of one server may take at once (``None``: no limit)."""

    limit: int | None
    source: str

    def describe(self, in_use: int = 0) -> str:
        """One line for the app: the budget, what runs hold now, how it is set."""
        if self.limit is None:
            return f"No memory budget for training runs ({self.source})."
        return (
            f"Training runs on this server may use {format_bytes(self.limit)} of memory "
            f"together ({self.source}); runs training now hold about {format_bytes(in_use)}."
        )


def server_budget() -> MemoryBudget:
    """The budget the server's owner set (``$NN_TRACING_MEMORY_BUDGET``), or the default."""
    total = machine_memory()
    configured = os.environ.get(BUDGET_ENV, "").strip()
    if configured:
        return MemoryBudget(parse_size(configured, total), f"{BUDGET_ENV}={configured}")
    share = int(DEFAULT_SHARE * 100)
    return MemoryBudget(
        int(total * DEFAULT_SHARE),
        f"{share} % of this machine's {format_bytes(total)}; set {BUDGET_ENV} to change it",
    )


def admit(
    estimate: RunEstimate,
    running: Iterable[RunEstimate],
    budget: MemoryBudget,
    directory: Path,
) -> None:
    """Raise :class:`~nn_tracing.estimate.RunTooLarge` unless the run fits.

    It fits when its peak memory plus that of the runs already training is within
    ``budget``, and its trace within the free disk of ``directory`` (or its nearest
    existing parent).
    """
    held = sum(other.peak_bytes for other in running)
    if budget.limit is not None and held + estimate.peak_bytes > budget.limit:
        left = max(budget.limit - held, 0)
        busy = f" Runs training now hold about {format_bytes(held)} of it." if held else ""
        raise RunTooLarge(
            f"{estimate.describe()} This server lets training runs use "
            f"{format_bytes(budget.limit)} of memory together ({budget.source}), which leaves "
            f"{format_bytes(left)} for this run.{busy}",
            estimate,
        )
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if estimate.trace_bytes > free:
        raise RunTooLarge(
            f"{estimate.describe()} The runs folder has only {format_bytes(free)} of free disk.",
            estimate,
        )
