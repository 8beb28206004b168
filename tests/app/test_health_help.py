"""The health flags' definitions are written once and shown the same way on every page that
shows flags (nn_tracing/ui/widgets.py health_definitions): folded, never pasted as a caption."""

from __future__ import annotations

from collections.abc import Callable

from apptest_support import assert_healthy, texts
from streamlit.testing.v1 import AppTest

DEFINITION = "never active on the probe set"


def test_overview_and_neurons_share_one_folded_definition(app: Callable[[], AppTest]) -> None:
    at = app().run()
    shown = []
    for page in ("pages/overview.py", "pages/neurons.py"):
        at.switch_page(page).run()
        assert_healthy(at)
        assert DEFINITION not in texts(at.caption)  # no longer pasted under the charts
        definitions = [m.value for m in at.markdown if DEFINITION in m.value]
        assert len(definitions) == 1, page
        shown.append(definitions[0])
    assert shown[0] == shown[1]  # the same text, from one place
    assert "**gradient-starved**" in shown[0] and "**exploding**" in shown[0]
