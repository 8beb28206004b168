"""View models of the app's pages: pure builders that turn (trace, settings) into what a page
shows — frames, Altair charts, sentences — without Streamlit.

One module per page (``nn_tracing.views.<page>``). The page's module in the app's ``ui``
package keeps the widgets and the layout and calls these builders; the builders import the
library only (never the ``ui`` package, never ``streamlit``), so they are tested like any
library code.
"""
