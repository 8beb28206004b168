"""What the app's pages show, built without Streamlit: one module per page.

Each module holds pure builders that turn a trace and a page's settings (plain values) into
the frames, charts and texts the page draws; the page module of the app keeps the widgets and
the layout only. Nothing here imports Streamlit or the app, so every builder runs (and is
tested) without a server.
"""
