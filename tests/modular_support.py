"""The small modular-addition run (mod 13) that the Fourier tests train, one definition for the
unit and the app tests."""

from __future__ import annotations

from typing import Any

import nn_tracing as nt

#: The modulus of the test runs.
P = 13


def modular_config(**changes: Any) -> nt.TrainConfig:
    """``a + b mod 13`` on half the pairs, MLP 16, three epochs of full-batch AdamW; ``changes``
    are TrainConfig fields over it."""
    fields: dict[str, Any] = {
        "dataset": "modular_add",
        "modulus": P,
        "modular_train_fraction": 0.5,
        "hidden_sizes": (16,),
        "epochs": 3,
        "batch_size": 256,
        "optimizer": "adamw",
        "lr": 1e-2,
        "probe_size": 40,
        **changes,
    }
    return nt.TrainConfig(**fields)
