"""Which of the discovered layers are traced: a selection by name, the neurons renumbered.

Discovery (:mod:`._discovery`) finds every traceable layer; a selection keeps some of them.
The input layer is always traced (its neurons are the probe's features). The kept layers keep
their call order, and their neurons get global ids again, ``n_0 … n_m`` without gaps, so a
trace of a selection is a trace like any other, only with fewer layers. A layer that is not
traced costs nothing: no hook, no statistics, no stored activations.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._discovery import Layout, replace_info

__all__ = ["select_layers"]


def select_layers(layout: Layout, names: Sequence[str] | None) -> Layout:
    """``layout`` with only the layers ``names`` names (their name, or their module's
    qualified name), renumbered; ``None`` keeps every layer.

    Raises
    ------
    ValueError
        A name that is no traceable layer (the message lists them), or an empty selection.
    """
    if names is None:
        return layout
    if isinstance(names, str):
        names = [names]
    wanted = [str(name) for name in names]
    known = {layer.info.name for layer in layout.layers} | {
        layer.info.module for layer in layout.layers
    }
    unknown = [name for name in wanted if name not in known]
    if unknown:
        listed = ", ".join(layer.info.name for layer in layout.layers)
        raise ValueError(f"layers={unknown!r}: no such traceable layer; the layers are {listed}")
    kept = [
        layer for layer in layout.layers if layer.info.name in wanted or layer.info.module in wanted
    ]
    if not kept:
        raise ValueError("layers=[] traces no layer; name at least one (or None for all)")
    first = layout.input_info.n_neurons
    for layer in kept:
        layer.info = replace_info(layer.info, first_id=first)
        first += layer.info.n_neurons
    return Layout(kept, layout.input_info, layout.input_dim, first)
