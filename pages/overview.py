"""Overview: run summary, training curves, the brain scan and neuron health."""

from nn_tracing import ui

with ui.findings_first("overview"):  # the title, then what the page found
    ui.render_overview()
