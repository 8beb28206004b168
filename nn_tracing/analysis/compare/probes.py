"""Which probe activations two runs can be compared on.

Matching neurons and measuring representational similarity need both runs' activations on
the *same* samples, in the same order. Two runs trained on one dataset with one seed-free
probe have the same probe set; :func:`check_probes` compares the stored probe inputs and
labels (their SHA-256). When they differ, run B's network is rebuilt from its kept weights
(:meth:`nn_tracing.analysis.neuron_model.NeuronModel.from_trace`) and run on A's probe inputs;
when it cannot be rebuilt (a custom model not attached, no weights kept at that epoch, inputs
of another width) :class:`CompareUnavailable` says why.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ...trace import NetworkTrace

__all__ = [
    "CompareUnavailable",
    "ProbeCheck",
    "RunPair",
    "check_probes",
    "common_layers",
    "probe_digest",
]


class CompareUnavailable(ValueError):
    """Two runs cannot be compared this way; the message says why, for the user."""


def probe_digest(trace: NetworkTrace) -> str | None:
    """SHA-256 of the trace's probe inputs and labels (shape, dtype-independent float64
    values), or ``None`` for a trace without a probe set."""
    if trace.probe is None:
        return None
    x, y = trace.probe
    digest = hashlib.sha256()
    for array in (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)):
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ProbeCheck:
    """Whether two runs share their probe set; ``reason`` says how they differ."""

    same: bool
    reason: str


def check_probes(a: NetworkTrace, b: NetworkTrace) -> ProbeCheck:
    """Compare the probe sets of ``a`` and ``b`` (inputs and labels, by SHA-256)."""
    if a.probe is None or b.probe is None:
        which = "either run" if a.probe is None and b.probe is None else "one run"
        return ProbeCheck(False, f"{which} has no probe set (statistics streamed over batches)")
    if probe_digest(a) == probe_digest(b):
        return ProbeCheck(True, f"the same {len(a.probe[1])} probe samples")
    xa, xb = a.probe[0], b.probe[0]
    if xa.shape != xb.shape:
        return ProbeCheck(False, f"probe inputs of shapes {xa.shape} and {xb.shape}")
    return ProbeCheck(False, f"{len(xa)} probe samples each, but not the same ones")


def common_layers(a: NetworkTrace, b: NetworkTrace) -> list[str]:
    """The traced layers both runs have (by name, in ``a``'s order), the input left out."""
    names = set(b.layer_names())
    return [info.name for info in a.layers[1:] if info.name in names]


def _columns(trace: NetworkTrace, layer: str) -> slice:
    info = trace.layer(layer)
    return slice(info.first_id, info.last_id + 1)


@dataclass
class RunPair:
    """Runs A and B, their activations on A's probe samples at any recorded epochs.

    B's stored activations are used when both runs have the same probe set; otherwise B is
    rebuilt at each epoch asked for and run on A's probe inputs (cached per epoch).
    """

    a: NetworkTrace
    b: NetworkTrace
    probe: ProbeCheck = field(init=False)
    _rebuilt: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.probe = check_probes(self.a, self.b)
        if self.a.probe is None:
            raise CompareUnavailable(
                "run A has no probe set (its statistics were streamed over training batches): "
                "there are no fixed samples to compare neurons on"
            )

    @property
    def common_epochs(self) -> list[int]:
        """The recorded points both runs have (on one time axis), ascending."""
        if self.a.axis != self.b.axis:
            return []
        return sorted(set(self.a.epochs) & set(self.b.epochs))

    def _activations_a(self, epoch: int) -> np.ndarray:
        acts = self.a.probe_activations(epoch)
        if acts is None:
            raise CompareUnavailable(
                f"run A stored no probe activations at {self.a.time_key(epoch)}"
            )
        return acts

    def _activations_b(self, epoch: int) -> np.ndarray:
        if self.probe.same:
            acts = self.b.probe_activations(epoch)
            if acts is None:
                raise CompareUnavailable(
                    f"run B stored no probe activations at {self.b.time_key(epoch)}"
                )
            return acts
        if epoch not in self._rebuilt:
            self._rebuilt[epoch] = self._rebuild_b(epoch)
        return self._rebuilt[epoch]

    def _rebuild_b(self, epoch: int) -> np.ndarray:
        from ..neuron_model import NeuronModel

        why = f"the runs' probe sets differ ({self.probe.reason})"
        if epoch not in self.b.epochs_with_weights:
            raise CompareUnavailable(
                f"{why}, and run B kept no weights at {self.b.time_key(epoch)} to rerun on A's "
                "probe (train with keep_weights=True to compare at every recorded epoch)"
            )
        try:
            model = NeuronModel.from_trace(self.b, epoch)
            x = np.asarray(self.a.probe[0], dtype=np.float32)  # type: ignore[index]
            return model.activations(x).cpu().numpy()
        except (ValueError, RuntimeError, KeyError) as exc:
            raise CompareUnavailable(
                f"{why}, and run B cannot be rerun on A's probe: {exc}"
            ) from None

    def layer(
        self, layer: str, epoch_a: int, epoch_b: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``layer``'s activations of A at ``epoch_a`` and of B at ``epoch_b`` (default: the
        same) on A's probe samples: arrays (n, p) and (n, q)."""
        epoch_b = epoch_a if epoch_b is None else epoch_b
        if layer not in self.b.layer_names():
            raise CompareUnavailable(f"run B has no layer {layer!r}")
        a = self._activations_a(epoch_a)[:, _columns(self.a, layer)]
        b = self._activations_b(epoch_b)[:, _columns(self.b, layer)]
        return a, b

    def layers_at(
        self, epoch_a: int, epoch_b: int | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every traced layer's activations (input left out) of A and of B on A's probe."""
        epoch_b = epoch_a if epoch_b is None else epoch_b
        full_a, full_b = self._activations_a(epoch_a), self._activations_b(epoch_b)
        left = [full_a[:, _columns(self.a, i.name)] for i in self.a.layers[1:]]
        right = [full_b[:, _columns(self.b, i.name)] for i in self.b.layers[1:]]
        return left, right
