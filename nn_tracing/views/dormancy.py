"""τ-dormant neurons as the Overview shows them: one tile per hidden layer at the chosen epoch,
and the sentence that says where mean |activation| came from.

Pure builders over the frame of :func:`nn_tracing.viz.dormancy.dormancy_frame` (no Streamlit).
The definitions themselves live in :data:`nn_tracing.analysis.dormancy.DEFINITIONS`.
"""

from __future__ import annotations

import pandas as pd

from ..analysis.dormancy import DEFINITIONS
from ..timeaxis import time_key
from .health import HealthTile
from .text import md_escape

__all__ = ["dormancy_caption", "dormancy_tiles"]


def dormancy_tiles(frame: pd.DataFrame, epoch: int, tau: float, baseline: int) -> list[HealthTile]:
    """One tile per hidden layer: its τ-dormant neurons at ``epoch`` of its neurons, and the
    change since ``baseline`` (the first recorded epoch)."""
    at = frame[frame["tau"] == tau]
    tiles = []
    for layer, rows in at.groupby("layer", sort=False):
        now = rows[rows["epoch"] == epoch]
        before = rows[rows["epoch"] == baseline]
        if now.empty or pd.isna(now["n_dormant"].iloc[0]):
            tiles.append(HealthTile(f"{layer} at {time_key(epoch)}", "–", help="unknown"))
            continue
        count, total = int(now["n_dormant"].iloc[0]), int(now["n_neurons"].iloc[0])
        known = len(before) and not pd.isna(before["n_dormant"].iloc[0])
        change = count - int(before["n_dormant"].iloc[0]) if known else None
        tiles.append(
            HealthTile(
                f"{layer} at {time_key(epoch)}",
                f"{count} of {total} ({count / total:.0%})",
                delta=f"{change:+d} vs {time_key(baseline)}" if change is not None else None,
                delta_color="inverse" if change else "off",
                help=f"τ-dormant at τ = {tau:g}",
            )
        )
    return tiles


def dormancy_caption(frame: pd.DataFrame) -> str:
    """Markdown: the definition, and where each layer's mean |activation| comes from."""
    sources = frame.drop_duplicates("layer")[["layer", "source"]]
    estimated = [
        f"{md_escape(str(layer), 100)}: {md_escape(str(source), 200)}"
        for layer, source in zip(sources["layer"], sources["source"], strict=True)
        if not str(source).startswith("exact")
    ]
    note = (
        " Where mean |activation| is not exact — " + "; ".join(estimated) + "."
        if estimated
        else " Mean |activation| is exact for every layer."
    )
    return DEFINITIONS["dormant"] + note
