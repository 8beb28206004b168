"""Every chart the pages draw on a real trace speaks the palette of nn_tracing/viz/palette.py:
signed values orange above zero and blue below, Vega schemes and colour literals only from
the palette module."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest
from apptest_support import assert_healthy, shown_charts
from streamlit.testing.v1 import AppTest

from nn_tracing.viz import palette

PAGES = [
    "pages/overview.py",
    "pages/neurons.py",
    "pages/clusters.py",
    "pages/dynamics.py",
    "pages/breadcrumbs.py",
]
_HEX = re.compile(r"#[0-9a-fA-F]{6}")


def _walk(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _palette_problems(spec: dict) -> list[str]:
    """What in one Vega-Lite spec does not come from the palette module."""
    problems = []
    for node in _walk(spec):
        scheme = node.get("scheme")
        if isinstance(scheme, str) and scheme not in palette.SCHEMES:
            problems.append(f"scheme {scheme}")
        if node.get("domainMid") == 0 and (
            scheme != palette.DIVERGING_SCHEME or node.get("reverse")
        ):
            problems.append(f"signed scale {node}")
        sign = node.get("domain") == ["positive", "negative"]
        if sign and node.get("range") != [palette.POSITIVE, palette.NEGATIVE]:
            problems.append(f"sign colours {node}")
    text = json.dumps({k: v for k, v in spec.items() if k != "datasets"})
    for colour in _HEX.findall(text):
        if colour.lower() not in palette.all_colors():
            problems.append(f"colour {colour}")
    return problems


def test_the_spec_check_catches_a_reversed_or_stray_scale() -> None:
    good = {"encoding": {"color": {"scale": {"scheme": "blueorange", "domainMid": 0}}}}
    assert _palette_problems(good) == []
    reversed_ = {"scale": {"scheme": "blueorange", "domainMid": 0, "reverse": True}}
    assert _palette_problems(reversed_) != []
    assert _palette_problems({"scale": {"scheme": "redblue"}}) == ["scheme redblue"]
    assert _palette_problems({"mark": {"color": "#3b78b0"}}) == ["colour #3b78b0"]
    swapped = {"domain": ["positive", "negative"], "range": [palette.NEGATIVE, palette.POSITIVE]}
    assert _palette_problems(swapped) != []


@pytest.mark.parametrize("page", PAGES)
def test_every_chart_of_every_page_uses_the_palette(app: Callable[[], AppTest], page: str) -> None:
    at = app().run()
    at.switch_page(page).run()
    assert_healthy(at)
    charts = shown_charts(at)
    assert charts, f"{page} draws no chart"
    specs = [json.loads(chart.proto.spec) for chart in charts]
    problems = [p for spec in specs for p in _palette_problems(spec)]
    assert problems == []
    # a nominal colour without a scale of its own takes the palette's categories too
    for spec in specs:
        assert spec["config"]["range"]["category"] == list(palette.CATEGORICAL)
    for graph in at.get("graphviz_chart"):
        for colour in _HEX.findall(graph.proto.spec):
            assert colour.lower() in palette.all_colors(), colour


def test_breadcrumbs_draws_support_for_the_class_in_orange(app: Callable[[], AppTest]) -> None:
    at = app().run()
    at.switch_page("pages/breadcrumbs.py").run()
    assert_healthy(at)
    specs = [json.loads(chart.proto.spec) for chart in shown_charts(at)]
    sign_scales = [
        node["scale"]
        for spec in specs
        for node in _walk(spec)
        if node.get("field") == "sign" and isinstance(node.get("scale"), dict)
    ]
    assert sign_scales, "the attribution bars are drawn by sign"
    for scale in sign_scales:
        assert scale["range"][scale["domain"].index("positive")] == palette.POSITIVE
