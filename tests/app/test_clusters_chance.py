"""The Clusters page's test against chance: decision-sized by default (P = 19), and a button
that draws more versions for a finer p-value, reusing those already drawn."""

from __future__ import annotations

from collections.abc import Callable

from apptest_support import assert_healthy, texts
from streamlit.testing.v1 import AppTest

from nn_tracing.ui import state
from nn_tracing.views.clusters import DECISION_PERMUTATIONS

PAGE = "pages/clusters.py"
MORE = f"{state.CLUSTERS_RUN}:more"


def _open(app: Callable[[], AppTest], **params: str) -> AppTest:
    at = app()
    at.query_params["trace"] = "tiny"
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(PAGE).run()
    return at


def _captions(at: AppTest) -> str:
    return " ".join(texts(caption) for caption in at.caption)


def test_the_default_test_decides_at_p_005_and_more_versions_reuse_the_drawn_ones(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app, features="metrics", nulls="shuffled")
    assert_healthy(at)
    assert at.number_input(key=state.CLUSTERS_PERMUTATIONS).value == DECISION_PERMUTATIONS == 19
    shown = _captions(at)
    assert "null versions in" in shown and "reused" not in shown
    # the tiny trace's clusters beat the shuffled null (all 19 drawn): more versions can help
    assert "stopped there" not in " ".join(texts(m) for m in at.markdown)
    more = at.button(key=MORE)
    assert "P = 99" in more.label and "the 19 drawn are reused" in more.label
    more.click().run()  # starts at once: no second click on the estimate's button
    assert_healthy(at)
    assert at.number_input(key=state.CLUSTERS_PERMUTATIONS).value == 99
    shown = _captions(at)
    assert "(19 of them reused from the test with fewer)" in shown, shown
    assert at.query_params["perms"] == "99"
