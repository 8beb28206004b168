"""One visual language (nn_tracing/viz/palette.py): the palette's own scales, and no colour
literal in the chart, view and page modules outside it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nn_tracing.viz import palette
from nn_tracing.viz.common import color_scale, diverging_scale

ROOT = Path(__file__).resolve().parents[2]
#: Where charts and pages are built; only palette.py may name a colour.
SCANNED = ("nn_tracing/viz", "nn_tracing/ui", "nn_tracing/views", "pages")
#: A colour literal: a hex colour, a named colour handed to a mark or a value, a Vega scheme.
_LITERALS = (
    re.compile(r"[\"']#[0-9a-fA-F]{3,8}[\"'{]"),
    re.compile(r"""(?<!\w)(?:color|fill|stroke)=["'](?!independent|shared)[a-z]+["']"""),
    re.compile(r"""alt\.value\(["'](?:black|white|gr[ae]y|red|blue|orange)["']\)"""),
    re.compile(r"""scheme=["']"""),
)


def _colour_literals(path: Path) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if any(pattern.search(line) for pattern in _LITERALS):
            found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_colour_literal_outside_the_palette_module() -> None:
    files = [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 30  # the scan sees the chart and page modules
    stray = [hit for p in files if p.name != "palette.py" for hit in _colour_literals(p)]
    assert stray == []


def test_the_scan_catches_a_stray_literal(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        'a = alt.Scale(scheme="redblue")\nb = mark_rule(color="black")\nc = "#3b78b0"\n'
        "d = alt.value('white')\ne = 1  # fine\n"
    )
    hits = _colour_literals_in(bad)
    assert hits == [
        'a = alt.Scale(scheme="redblue")',
        'b = mark_rule(color="black")',
        'c = "#3b78b0"',
        "d = alt.value('white')",
    ]


def _colour_literals_in(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [line for line in lines if any(p.search(line) for p in _LITERALS)]


def test_signed_values_are_orange_above_zero_and_blue_below() -> None:
    scale = diverging_scale(np.array([-3.0, 1.0, np.nan])).to_dict()
    assert scale == {"scheme": "blueorange", "domain": [-3.0, 3.0], "domainMid": 0}
    assert "reverse" not in scale  # one direction on every page
    assert color_scale("w_mean").to_dict()["scheme"] == palette.DIVERGING_SCHEME
    assert color_scale("w_norm").to_dict()["scheme"] == palette.SEQUENTIAL_SCHEME
    sign = palette.sign_scale().to_dict()
    assert dict(zip(sign["domain"], sign["range"], strict=True)) == {
        "positive": palette.POSITIVE,
        "negative": palette.NEGATIVE,
    }
    assert palette.signed_color(0.5) == palette.POSITIVE
    assert palette.signed_color(-0.5) == palette.NEGATIVE


def test_categories_take_colours_in_order_and_noise_is_grey() -> None:
    scale = palette.categorical_scale(["c0", "noise", "c1", "n/a"]).to_dict()
    assert scale["range"] == [
        palette.CATEGORICAL[0],
        palette.MUTED,
        palette.CATEGORICAL[1],
        palette.MUTED,
    ]
    assert palette.categorical_colors(22)[20:] == list(palette.CATEGORICAL[:2])
    assert len(set(palette.CATEGORICAL)) == len(palette.CATEGORICAL)
