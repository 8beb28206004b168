"""What the app's pages show, built without Streamlit: (trace, settings) → the frames, charts
and texts a page draws.

One module per page (and one per thing several pages share). Each holds pure builders that turn a
trace and a page's settings (plain values) into what the page draws; the page's module in the app
(``nn_tracing/ui/``) keeps the widgets and the layout only. Nothing here imports Streamlit or the
app, so every builder runs, and is tested, without a server.
"""
