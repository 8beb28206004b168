"""A stated, seeded sample of neurons for the analyses that need a dense matrix.

Projections and clusterings (the Clusters page) hold one row per neuron and one column per
feature in memory, as float64. On a trace of 100k neurons × 100 epochs that is 80 MB for one
metric's trajectory and far more time than a page should take; above a limit the user sets,
:func:`sample_neurons` draws a seeded sample of the neurons (the same for the same trace,
limit and seed), and :meth:`DenseSample.describe` says what is loaded and how it was chosen.

>>> import numpy as np
>>> sample = sample_neurons(np.arange(100_000), max_neurons=20_000)
>>> sample.n_rows, sample.sampled, bool(np.all(np.diff(sample.ids) > 0))
(20000, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_MAX_NEURONS", "SAMPLE_SEED", "DenseSample", "sample_neurons"]

#: The most neurons a dense analysis takes unless the user raises it.
DEFAULT_MAX_NEURONS = 20_000
#: The seed of every sample (a stated sample: the same neurons every time).
SAMPLE_SEED = 0


@dataclass(frozen=True)
class DenseSample:
    """The neurons a dense analysis takes.

    Attributes
    ----------
    ids : the global ids taken, ascending, array of shape (n_rows,)
    positions : their positions in the ids offered, array of shape (n_rows,)
    n_total : how many neurons were offered
    max_neurons : the limit (``None``: none)
    seed : the seed of the sample
    """

    ids: np.ndarray
    positions: np.ndarray
    n_total: int
    max_neurons: int | None
    seed: int = SAMPLE_SEED

    @property
    def n_rows(self) -> int:
        return int(self.ids.size)

    @property
    def sampled(self) -> bool:
        return self.n_rows < self.n_total

    def describe(self, n_columns: int, itemsize: int = 8) -> str:
        """What is loaded (rows × columns, MiB) and, for a sample, how it was drawn."""
        mib = self.n_rows * n_columns * itemsize / 2**20
        loaded = (
            f"Loads {self.n_rows:,} neurons × {n_columns:,} features ({mib:,.1f} MiB as "
            f"{'float64' if itemsize == 8 else f'{itemsize}-byte values'})"
        )
        if not self.sampled:
            return f"{loaded}: every neuron of the chosen layers."
        full = self.n_total * n_columns * itemsize / 2**20
        return (
            f"{loaded}: a random sample (seed {self.seed}) of the {self.n_total:,} neurons of "
            f"the chosen layers ({full:,.1f} MiB in all), above the limit of "
            f"{self.max_neurons:,} neurons; raise the limit to take more."
        )


def sample_neurons(
    ids: np.ndarray, max_neurons: int | None = DEFAULT_MAX_NEURONS, seed: int = SAMPLE_SEED
) -> DenseSample:
    """``ids`` when there are at most ``max_neurons`` of them (or no limit), else a seeded
    sample of ``max_neurons`` of them, in their order."""
    ids = np.asarray(ids)
    if max_neurons is not None and max_neurons < 1:
        raise ValueError(f"max_neurons={max_neurons}: take at least one neuron")
    if max_neurons is None or ids.size <= max_neurons:
        positions = np.arange(ids.size)
    else:
        rng = np.random.default_rng(seed)
        positions = np.sort(rng.choice(ids.size, size=max_neurons, replace=False))
    return DenseSample(ids[positions], positions, int(ids.size), max_neurons, seed)
