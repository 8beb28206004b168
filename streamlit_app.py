"""nn_tracing's app: ``make run`` (``streamlit run streamlit_app.py``) opens it.

Page config, the shared sidebar (active trace, upload and download, training form and live
progress) and the navigation over the pages in ``pages/``. The logic lives in
``nn_tracing.ui``; this file only puts it together.
"""

from nn_tracing import ui

ui.configure_page()
current = ui.navigation(
    [
        ui.page("pages/overview.py", "Overview", ":material/monitor_heart:", default=True),
        ui.page("pages/neurons.py", "Neurons", ":material/neurology:"),
        ui.page("pages/clusters.py", "Clusters", ":material/scatter_plot:"),
        ui.page("pages/dynamics.py", "Dynamics", ":material/timeline:"),
        ui.page("pages/breadcrumbs.py", "Breadcrumbs", ":material/account_tree:"),
        ui.page("pages/compare.py", "Compare", ":material/compare_arrows:"),
    ]
)
ui.shell(current)
ui.run_page(current)
ui.start_warm_up_once()  # UMAP compiles in the background, once the first page is drawn
