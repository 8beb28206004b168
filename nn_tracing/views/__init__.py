"""Pure builders of the app's pages: (trace, settings) → the frames, charts and texts a page shows.

One module per page (and one per thing several pages share). Nothing here imports Streamlit or
the app's ``ui`` package: a page's module there draws the widgets and the layout, and calls
these.
"""
