"""The Overview's τ-dormant tiles and caption (nn_tracing.views.dormancy)."""

from __future__ import annotations

import re

import pandas as pd

from nn_tracing.views.dormancy import dormancy_caption, dormancy_tiles


def _frame() -> pd.DataFrame:
    rows = [
        (0, "hidden_1", 0.1, pd.NA, 8, float("nan"), "unavailable at some epochs: …"),
        (5, "hidden_1", 0.1, 3, 8, 3 / 8, "unavailable at some epochs: …"),
        (0, "hidden_2", 0.1, 1, 4, 0.25, "exact: kept probe activations"),
        (5, "hidden_2", 0.1, 2, 4, 0.5, "exact: kept probe activations"),
    ]
    frame = pd.DataFrame(
        rows, columns=["epoch", "layer", "tau", "n_dormant", "n_neurons", "fraction", "source"]
    )
    return frame.astype({"n_dormant": "Int64"})


def test_each_layer_gets_a_tile_with_its_change_since_the_first_epoch() -> None:
    tiles = dormancy_tiles(_frame(), 5, 0.1, 0)
    assert [(t.label, t.value, t.delta) for t in tiles] == [
        ("hidden_1 at E_5", "3 of 8 (38%)", None),  # unknown at E_0: no change shown
        ("hidden_2 at E_5", "2 of 4 (50%)", "+1 vs E_0"),
    ]
    unknown = dormancy_tiles(_frame(), 0, 0.1, 0)
    assert unknown[0].value == "–" and unknown[1].delta == "+0 vs E_0"


def test_the_caption_defines_the_score_and_names_layers_that_are_not_exact() -> None:
    caption = re.sub(r"\\(.)", r"\1", dormancy_caption(_frame()))  # Markdown escapes removed
    assert caption.startswith("**τ-dormant** (Sokar et al., ICML 2023)")
    assert "hidden_1: unavailable at some epochs" in caption and "hidden_2:" not in caption
