"""Compare: runs side by side, neurons matched across runs, representations compared."""

from nn_tracing.ui.compare import render_compare

render_compare()
