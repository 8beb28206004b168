"""View models of the app's pages: pure builders, no Streamlit.

Each module here (one per page) turns a trace and the page's plain settings into the frames,
Altair charts and texts that page shows; the page's module in the app (``ui/<page>.py``)
keeps the widgets and the layout only. Nothing here imports Streamlit or the app's ``ui``
package.
"""
