"""Per-step statistics (``drop_batches=False``) of a traced output that the rest of the forward
changes in place: the statistics are of the output as its module returned it, as the hook saw
it — the recorder checks every output's version counter after the forward and reduces in the
hooks from then on (a step it had deferred records NaN for the changed layer)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nn_tracing import TraceableNN


class _ChangesItsActivation(nn.Module):
    """Linear → GELU, then the GELU's output negated in place (GELU keeps its input for
    backward, so autograd allows it) when ``change`` is set."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 6)
        self.act = nn.GELU()
        self.out = nn.Linear(6, 2)
        self.change = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.lin(x))
        if self.change:
            h.mul_(-1.0)
        return self.out(h)


def _run(module: _ChangesItsActivation, change_from: int) -> tuple[object, list[np.ndarray]]:
    """Six steps; ``module.change`` from step ``change_from`` (1-based) on. Returns the steps
    table and, per training step, the GELU's output as it left the module (a hook's clone)."""
    x = torch.randn(48, 3, generator=torch.Generator().manual_seed(1))
    y = (x[:, 0] > 0).long()
    seen: list[np.ndarray] = []
    module.act.register_forward_hook(
        lambda mod, inputs, output: seen.append(output.detach().double().numpy().copy())
    )
    model = TraceableNN(module, probe=(x[:8], y[:8]), epoch_intervals=-1, drop_batches=False)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    step = 0
    for epoch in (1, 2):
        model.start_epoch(epoch)
        model.train()
        for start in range(0, 48, 16):
            step += 1
            module.change = step >= change_from
            loss = F.cross_entropy(model(x[start : start + 16]), y[start : start + 16])
            model.log_step(loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
        module.change = False
        model.end_epoch(epoch)
    steps = model.finish().steps
    training = [v for v in seen if v.shape[0] == 16]  # not the probe's passes
    assert len(training) == 6
    return steps, training


def _act_rows(steps) -> list[list[float]]:
    rows = steps[steps["layer"] == "lin"]  # read from act.sort_values("step")
    return rows[["act_mean", "act_std", "act_active"]].to_numpy(np.float64).tolist()


def _reference(values: np.ndarray) -> list[float]:
    return [values.mean(), values.std(), (values > 0).mean()]


def test_statistics_are_of_the_output_before_the_in_place_change() -> None:
    steps, outputs = _run(_ChangesItsActivation(), change_from=1)
    np.testing.assert_allclose(
        _act_rows(steps), [_reference(v) for v in outputs], rtol=1e-5, atol=1e-6
    )


def test_a_change_first_seen_on_a_deferred_step_makes_that_step_nan_and_later_ones_exact() -> None:
    steps, outputs = _run(_ChangesItsActivation(), change_from=3)
    for step, (row, values) in enumerate(zip(_act_rows(steps), outputs, strict=True), start=1):
        if step == 3:  # deferred (steps 1–2 changed nothing), changed after the hook
            assert np.isnan(row).all()
        else:
            np.testing.assert_allclose(row, _reference(values), rtol=1e-5, atol=1e-6)


def test_without_a_change_the_deferred_steps_match_the_reference() -> None:
    steps, outputs = _run(_ChangesItsActivation(), change_from=99)
    np.testing.assert_allclose(
        _act_rows(steps), [_reference(v) for v in outputs], rtol=1e-5, atol=1e-6
    )
