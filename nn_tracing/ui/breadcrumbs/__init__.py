"""The Breadcrumbs page: which neurons made this output, and what happens without them.

Four tabs over one model state (a recorded epoch with weights):

* **Attribution & trail** (:mod:`.trail`) — per-neuron attribution of a class (or one probe
  sample) by the chosen Captum method; the breadcrumb trail from the output back to the input
  features as a layered graph and a table; the trail checked by ablation against random
  neurons; "since when" (the trail neurons' scores over the recorded epochs, when the run kept
  weights); and how far the four methods agree.
* **Ablation** (:mod:`.ablation`) — zero or mean-replace any set of neurons: accuracy per
  class, class logits, confusion matrices, flipped samples; ablation curves of a layer in four
  orders with the random band and the selectivity–importance correlation.
* **Pruning** (:mod:`.pruning`) — remove the k least important neurons of every hidden layer
  (structured) against k random ones; download the pruned model and its trace.
* **Intervention** (:mod:`.intervention`) — clamp or scale a neuron, or edit one weight:
  accuracy, flipped predictions, what changed downstream, and for 2-D inputs the decision
  boundary.

:mod:`.page` draws the page: its :class:`~.page.Settings` (every control, in the address bar),
the controls above the tabs, and the open tab. The tab modules hold widgets and layout only:
what they show is built by :mod:`nn_tracing.views.breadcrumbs`, and computed through
:mod:`.work` (slow work on the analysis worker, fast work cached); :mod:`.widgets` holds what
the tabs share. A package because the page is big: one module per tab, like
:mod:`nn_tracing.analysis.intervention`.
"""

from .page import URL, Settings, render_breadcrumbs

__all__ = ["URL", "Settings", "render_breadcrumbs"]
