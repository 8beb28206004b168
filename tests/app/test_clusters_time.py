"""The Clusters page's "Through training" section (nn_tracing/ui/clusters_time.py) with each
method of the map through time, through the real entrypoint on the tiny trace."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from apptest_support import assert_healthy, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing.analysis.embedding import TIME_MAPS
from nn_tracing.ui import state

PAGE = "pages/clusters.py"


def _open(app: Callable[[], AppTest], **params: str) -> AppTest:
    at = app()
    at.query_params["trace"] = "tiny"
    for key, value in {"perms": "5", **params}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(PAGE).run()
    return at


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in shown_charts(at)]


def _title(spec: dict) -> str:
    title = spec.get("title")
    return title if isinstance(title, str) else (title or {}).get("text", "")


@pytest.mark.parametrize("method", list(TIME_MAPS))
def test_every_map_through_time_draws_with_its_faithfulness(
    app: Callable[[], AppTest], method: str
) -> None:
    at = _open(app, features="activations", time_map=method)
    assert_healthy(at)
    assert at.radio(key=state.CLUSTERS_TIME_METHOD).value == method
    asked = [b for b in at.button if b.key == f"{state.CLUSTERS_RUN}:joint"]
    if asked:  # a long fit (aligned UMAP's compilation) waits for a click
        asked[0].click().run()
        assert_healthy(at)
    name = TIME_MAPS[method]
    titles = [_title(spec) for spec in _specs(at)]
    assert f"{name[0].upper()}{name[1:]}: the neurons at E_4" in titles, titles
    scrub = [s for s in _specs(at) if _title(s).endswith("scrubbed in the browser")]
    assert len(scrub) == 1
    bound = [p for p in scrub[0].get("params", []) if p.get("bind")]
    bound += [p for layer in scrub[0].get("layer", []) for p in layer.get("params", [])]
    assert any(p.get("bind", {}).get("input") == "range" for p in bound), scrub[0].get("params")
    info = texts(at.main.info)
    assert f"How faithful this {name} is:" in info
    assert "did not change moved at most" in info or "cannot be measured" in info
    assert "Nearest neighbours kept (k = 10)" in info
    captions = texts(at.main.caption)
    assert ("Visualisation entropy of this map" in captions) == (method == "mphate")
    assert at.query_params["time_map"] == method


def test_the_map_through_time_follows_the_radio_and_the_url_keeps_it(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app, features="activations")
    assert_healthy(at)
    assert at.radio(key=state.CLUSTERS_TIME_METHOD).value == "pca"
    at.radio(key=state.CLUSTERS_TIME_METHOD).set_value("mphate").run()
    assert_healthy(at)
    assert at.query_params["time_map"] == "mphate"
    assert "Visualisation entropy of this map" in texts(at.main.caption)
