"""The Streamlit app's building blocks — the only package of nn_tracing that imports Streamlit.

``streamlit_app.py`` and the scripts in ``pages/`` stay thin: they call these functions.

* :mod:`.app` — page config, navigation, the shared shell (demo trace, deep links, sidebar);
* :mod:`.sidebar` — pick / upload / download traces, the training form and live progress;
* :mod:`.overview`, :mod:`.neurons`, :mod:`.clusters`, :mod:`.dynamics`, :mod:`.breadcrumbs` —
  the pages (each imports leaves, never another page); :mod:`.clusters_settings` — the
  Clusters page's settings and their widgets; :mod:`.neurons_channels` — the Neurons page's
  views of a convolution channel;
* :mod:`.traces` — the active trace and where it comes from; :mod:`.cache` — cached frames;
* :mod:`.runs_folder` — the runs folder's table, rename and delete; :mod:`.follow` — pages
  that follow a run directory still being written (a polling fragment);
* :mod:`.compute` — slow work through the library's analysis worker, with a progress bar;
* :mod:`.url` — every page's settings in the address bar;
* :mod:`.links`, :mod:`.widgets`, :mod:`.charts`, :mod:`.neuron_states` — leaves every page
  shares (opening a neuron, shared widgets, showing charts, the shared neuron-level HMM); they
  import no page;
* :mod:`.findings` — the findings box every page opens with (under its title);
* :mod:`.state` — every session-state key.

Names are imported on first use, so that ``from nn_tracing.ui import state`` (tests,
benchmarks) does not set up the cached functions outside a running app.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "configure_page": "app",
    "navigation": "app",
    "open_neuron": "links",
    "page": "app",
    "run_page": "app",
    "shell": "app",
    "render_clusters": "clusters",
    "start_warm_up_once": "clusters",
    "render_neurons": "neurons",
    "render_overview": "overview",
    "findings_first": "findings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
