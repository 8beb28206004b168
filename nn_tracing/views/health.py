"""Neuron health as the pages show it: the Overview's tiles and flagged table, the Neurons
page's health line of one neuron and its filtered table of every neuron, and the flags'
definitions under both.

Pure builders over :class:`~nn_tracing.analysis.health.NeuronHealth` (no Streamlit): they
return frames, plain values and Markdown (constants and numbers only; a layer name reaches
Markdown only through :func:`~nn_tracing.views.text.md_escape`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from ..analysis.health import FLAG_TITLES, FLAGS, HealthThresholds, NeuronHealth
from ..analysis.health_neuron import NeuronFlags, flags_of
from ..timeaxis import time_key
from ..trace import NetworkTrace
from .text import md_escape

__all__ = [
    "MAX_TABLE_ROWS",
    "VALUE_COLUMNS",
    "HealthTile",
    "count_note",
    "defined_flags",
    "flag_definitions",
    "flagged_table",
    "health_tiles",
    "neuron_health_line",
    "population",
    "table_caption",
    "table_view",
]

#: The columns of :meth:`NeuronHealth.table` that hold the values behind the flags.
VALUE_COLUMNS: tuple[str, ...] = ("saturation", "grad_ratio", "w_growth")


@dataclass(frozen=True)
class HealthTile:
    """One figure of the Overview's health row (the arguments of a metric tile).

    ``delta`` is ``None`` for a flag this network cannot have (``value`` is then ``"n/a"``).
    """

    label: str
    value: str
    delta: str | None = None
    delta_color: Literal["normal", "inverse", "off"] = "off"
    help: str | None = None


def defined_flags(health: NeuronHealth) -> list[str]:
    """The flags defined for at least one neuron of this network, in :data:`FLAGS` order."""
    return [flag for flag in FLAGS if health.applies[flag].any()]


def population(health: NeuronHealth, flag: str) -> str:
    """The neurons ``flag`` is counted among, in words: ``"hidden neurons"``, ``"neurons with
    weights (hidden and output)"``, or the layers by name."""
    applies = health.applies[flag]
    names = [info.name for info in health.layers if applies[info.first_id : info.last_id + 1].any()]
    hidden = [info.name for info in health.layers[1:-1]]
    if names == hidden:
        return "hidden neurons"
    if names == [*hidden, health.layers[-1].name]:
        return "neurons with weights (hidden and output)"
    return "neurons of " + ", ".join(f"L_{name}" for name in names)


def count_note(health: NeuronHealth) -> str:
    """One sentence: what each flag's "k of n" counts among, e.g. "Dead: of the 48 hidden
    neurons. Gradient-starved, exploding: of the 50 neurons with weights (hidden and
    output)." — the same words for the same neurons on every page."""
    groups: dict[tuple[int, str], list[str]] = {}
    for flag in defined_flags(health):
        key = (int(health.applies[flag].sum()), population(health, flag))
        groups.setdefault(key, []).append(FLAG_TITLES[flag])
    return " ".join(
        f"{', '.join(titles).capitalize()}: of the {n} {what}."
        for (n, what), titles in groups.items()
    )


def health_tiles(health: NeuronHealth, epoch: int, baseline: int) -> list[HealthTile]:
    """One tile per flag: how many neurons carry it at ``epoch`` of how many it applies to,
    and the change since ``baseline`` (the first recorded epoch); "n/a" where the flag is
    not defined for this network's activations."""
    defined = defined_flags(health)
    totals, before = health.totals(epoch), health.totals(baseline)
    tiles = []
    for flag in FLAGS:
        title = FLAG_TITLES[flag].capitalize()
        if flag not in defined:
            tiles.append(
                HealthTile(title, "n/a", help="Not defined for this network's activations.")
            )
            continue
        change = totals[flag] - before[flag]
        tiles.append(
            HealthTile(
                f"{title} at {time_key(epoch)}",
                f"{totals[flag]} of {int(health.applies[flag].sum())}",
                help=f"of the {int(health.applies[flag].sum())} {population(health, flag)}",
                delta=f"{change:+d} vs {time_key(baseline)}",
                delta_color="inverse" if change else "off",
            )
        )
    return tiles


def flag_definitions(thresholds: HealthThresholds) -> str:
    """Markdown: every flag's title and its definition with these thresholds."""
    described = thresholds.describe()
    return " · ".join(
        f"**{FLAG_TITLES[flag]}**: {md_escape(described[flag], 400)}" for flag in FLAGS
    )


#: The most rows a health table sends to the browser (a table of 100k rows costs it seconds).
MAX_TABLE_ROWS = 5_000


def flagged_table(
    health: NeuronHealth, trace: NetworkTrace, epoch: int
) -> tuple[pd.DataFrame, list[str]]:
    """The neurons flagged at ``epoch`` and their signatures.

    Returns
    -------
    ``(table, signatures)``: one row per flagged neuron (``signature``, ``layer``, a bool
    column per flag), and the signature of each row; both empty when no neuron is flagged.
    """
    flagged = health.flagged(epoch)
    signatures = [trace.signature(epoch, int(n)) for n in flagged["neuron"]]
    flagged.insert(0, "signature", signatures)
    return flagged.drop(columns=["neuron"]), signatures


def neuron_health_line(health: NeuronHealth | NeuronFlags, neuron: int, epoch: int) -> str:
    """Markdown: each flag of ``neuron`` at ``epoch`` (yes / no / n/a) and at how many
    recorded epochs it was raised — from the whole trace's health or from the neuron's own
    flags (:func:`~nn_tracing.analysis.health_neuron.neuron_flags`)."""
    flags = flags_of(health, neuron) if isinstance(health, NeuronHealth) else health
    history = flags.history
    parts = []
    for flag in FLAGS:
        if not flags.applies[flag]:
            parts.append(f"{FLAG_TITLES[flag]}: n/a")
            continue
        now = bool(history.loc[history["epoch"] == epoch, flag].iloc[0])
        epochs = history.loc[history[flag], "epoch"].tolist()
        when = f" (at {len(epochs)} of {len(history)} recorded epochs)" if epochs else ""
        parts.append(f"{FLAG_TITLES[flag]}: {'**yes**' if now else 'no'}{when}")
    return f"**Health at {time_key(epoch)}** — " + " · ".join(parts)


def table_view(
    table: pd.DataFrame,
    health: NeuronHealth,
    layers: Sequence[str] = (),
    flags: Sequence[str] = (),
) -> pd.DataFrame:
    """The rows of :meth:`NeuronHealth.table` to show: filtered, sorted, without empty columns.

    Parameters
    ----------
    table
        ``health.table(epoch)``: one row per neuron.
    health
        The health the table comes from (which flags this network can have).
    layers
        Keep the neurons of these layers (none: every layer).
    flags
        Keep the neurons that carry any of these flags (none: every neuron, flagged or not).

    Returns
    -------
    The kept rows, most flags first then by id, without the columns that say nothing about
    this network (a flag it cannot have, values missing for every neuron).
    """
    view = table
    if layers:
        view = view[view["layer"].isin(list(layers))]
    if flags:
        view = view[view[list(flags)].fillna(False).any(axis=1)]
    view = view.sort_values(["n_flags", "neuron"], ascending=[False, True], ignore_index=True)
    defined = defined_flags(health)
    empty = [flag for flag in FLAGS if flag not in defined]
    empty += [column for column in VALUE_COLUMNS if table[column].isna().all()]
    return view.drop(columns=empty)


def table_caption(
    table: pd.DataFrame,
    health: NeuronHealth,
    epoch: int,
    n_shown: int,
    n_matching: int | None = None,
) -> str:
    """Markdown under the health table: the flagged neurons per flag at ``epoch`` and how
    many rows are shown (of ``n_matching`` the filters keep, when the table holds fewer:
    :data:`MAX_TABLE_ROWS`)."""
    defined = defined_flags(health)
    counts = {flag: int(table[flag].fillna(False).sum()) for flag in defined}
    shown = (
        f"Showing the first {n_shown:,} of {n_matching:,} (most flags first): filter by layer "
        "or flag to see others"
        if n_matching is not None and n_matching > n_shown
        else f"Showing {n_shown}"
    )
    return (
        f"At {time_key(epoch)}: "
        + ", ".join(f"{counts[f]} {FLAG_TITLES[f]}" for f in defined)
        + f" of {len(table)} neurons. {shown}; click a column to sort, select a row "
        "to open that neuron. Empty flag cells: the flag is not defined for that layer."
    )
