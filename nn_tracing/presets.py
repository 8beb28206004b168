"""Named training presets: a :class:`~nn_tracing.config.TrainConfig` ready to run.

``nn-tracing train --preset grokking`` and the sidebar's preset choice start from one of
:data:`PRESETS`; any other flag or field still overrides it. The one built in is
**grokking** (Power et al. 2022): modular addition mod 59, 40 % of the pairs trained on, a
ReLU MLP with one hidden layer of 256, full-batch AdamW with weight decay 2. Training accuracy
reaches 100 % within a few hundred epochs; validation accuracy stays near chance for thousands
more, then jumps. The recording schedule (:func:`log_and_regular`) keeps a few hundred epochs:
log-spaced early on, where the memorisation is fast, and regular after, where the transition
and the clean-up are slow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import TrainConfig

__all__ = ["PRESETS", "Preset", "config_with_preset", "log_and_regular", "preset_config"]


def log_and_regular(epochs: int, n_log: int = 40, every: int = 30) -> tuple[int, ...]:
    """Epochs to record: ``n_log`` log-spaced epochs from 1 to ``epochs``, every ``every``-th
    epoch, and the last; sorted, distinct, all in ``1 … epochs``.

    >>> log_and_regular(100, n_log=5, every=50)
    (1, 3, 10, 31, 50, 100)
    """
    if epochs < 1 or n_log < 0 or every < 1:
        raise ValueError(f"log_and_regular({epochs}, {n_log}, {every}): needs positive numbers")
    logs = np.unique(np.round(np.logspace(0, np.log10(epochs), n_log)).astype(int))
    regular = np.arange(every, epochs + 1, every)
    chosen = np.union1d(np.union1d(logs, regular), [epochs])
    return tuple(int(e) for e in chosen if 1 <= e <= epochs)


@dataclass(frozen=True)
class Preset:
    """A named config: ``description`` (one line for menus) and ``fields`` (TrainConfig
    fields; the recording schedule is made from ``epochs`` when ``fields`` leaves it out)."""

    name: str
    description: str
    fields: dict[str, Any]


_GROKKING_EPOCHS = 6000

PRESETS: dict[str, Preset] = {
    "grokking": Preset(
        name="grokking",
        description=(
            "modular addition mod 59 on 40 % of the pairs, MLP 256 relu, full-batch AdamW "
            "with weight decay 2: memorises first, generalises thousands of epochs later"
        ),
        fields={
            "dataset": "modular_add",
            "modulus": 59,
            "modular_train_fraction": 0.4,
            "hidden_sizes": (256,),
            "activation": "relu",
            "optimizer": "adamw",
            "lr": 3e-3,
            "weight_decay": 2.0,
            "epochs": _GROKKING_EPOCHS,
            "batch_size": 4096,  # more than the 1392 training pairs: full batch
            "seed": 0,
            "data_seed": 0,
            "probe_size": 512,
            "keep_weights": True,  # the Neurons page's Fourier view runs every pair through
            "activation_samples": 128,
            "activation_dtype": "float16",
        },
    ),
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The config of preset ``name``, with ``overrides`` (TrainConfig fields) applied.

    Without an ``epoch_intervals`` of its own, the preset records :func:`log_and_regular` of
    its (possibly overridden) number of epochs. Raises :class:`ValueError` for an unknown name
    or an invalid field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    fields = {**PRESETS[name].fields, **overrides}
    if "epoch_intervals" not in fields:
        fields["epoch_intervals"] = log_and_regular(int(fields.get("epochs", 1)))
    return TrainConfig.from_dict(fields)


def config_with_preset(values: dict[str, Any], preset: str | None = None) -> TrainConfig:
    """``TrainConfig.from_dict(values)``, or with ``preset``: the preset with ``values`` over
    it (:func:`preset_config`)."""
    if preset:
        return preset_config(preset, **values)
    return TrainConfig.from_dict(values)
