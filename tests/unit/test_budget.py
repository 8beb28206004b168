"""The server's memory budget for training runs: parsing the owner's setting, and refusing a
run (with the figures and the setting to lower) when it would not fit next to the runs that
train already."""

from __future__ import annotations

from pathlib import Path

import pytest

from nn_tracing import TrainConfig, jobs
from nn_tracing.budget import BUDGET_ENV, MemoryBudget, admit, parse_size, server_budget
from nn_tracing.estimate import RunTooLarge, estimate_run

GIB = 2**30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6GiB", 6 * GIB),
        ("6G", 6 * GIB),
        ("512MiB", 512 * 2**20),
        ("1.5gb", int(1.5 * GIB)),
        ("8e9", 8 * 10**9),
        ("25%", 4 * GIB),
        ("off", None),
        ("0", None),
    ],
)
def test_sizes_and_shares_parse(text: str, expected: int | None) -> None:
    assert parse_size(text, total=16 * GIB) == expected


@pytest.mark.parametrize("text", ["lots", "12 parsecs", "-3G", "150%", "%"])
def test_a_bad_setting_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match=BUDGET_ENV):
        parse_size(text, total=16 * GIB)


def test_the_default_is_a_share_of_the_machine_and_the_owner_can_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    default = server_budget()
    assert default.limit is not None and 0 < default.limit < 2**50
    assert BUDGET_ENV in default.source
    monkeypatch.setenv(BUDGET_ENV, "3GiB")
    assert server_budget().limit == 3 * GIB
    monkeypatch.setenv(BUDGET_ENV, "off")
    assert server_budget().limit is None


def test_a_run_over_the_budget_is_refused_with_its_figures_and_knob(tmp_path: Path) -> None:
    huge = TrainConfig(dataset="moons", hidden_sizes=(8192,), probe_size=65536, n_samples=400_000)
    with pytest.raises(RunTooLarge) as caught:
        admit(estimate_run(huge), [], MemoryBudget(8 * GIB, "test"), tmp_path)
    message = str(caught.value)
    assert "probe_size" in message and "8.0 GiB" in message and "GiB of memory" in message
    small = TrainConfig(dataset="moons", hidden_sizes=(16,))
    admit(estimate_run(small), [], MemoryBudget(8 * GIB, "test"), tmp_path)  # fits


def test_the_budget_counts_the_runs_training_already(tmp_path: Path) -> None:
    config = TrainConfig(dataset="moons", hidden_sizes=(32,), epochs=100_000, n_samples=300)
    need = estimate_run(config).peak_bytes
    budget = MemoryBudget(int(need * 1.5), "test")
    first = jobs.start_job(config, tmp_path, name="first", budget=budget)
    try:
        with pytest.raises(RunTooLarge, match="Runs training now hold about"):
            jobs.start_job(config, tmp_path, name="second", budget=budget)
    finally:
        first.stop()
        assert first.join(60)
    assert jobs.start_job(config.replace(epochs=1), tmp_path, name="third", budget=budget).join(60)
