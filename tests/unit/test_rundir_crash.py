"""Crash safety of the run directory, proven: real training subprocesses killed with SIGKILL
(nn_tracing/rundir.py, nn_tracing/rundir_log.py, ``train(out=…)``).

Each kill lands at a random moment inside one of three phases of a chosen epoch:

* ``batches``: while the epoch's mini-batches run;
* ``files``: while the epoch's files are renamed into place (from its first part file to its
  manifest);
* ``manifest``: while the manifest is replaced (its temporary file written, before the rename,
  or right after it).

The child program (written below to the test's folder) runs ``train(config, out=DIR)`` with one
torch thread, so that its numbers are bitwise those of an uninterrupted run. To reach the
phases without hooks in the library, it wraps ``os.replace`` (every file of an epoch, then its
manifest, is renamed into place by the writing thread: nn_tracing/rundir_async.py) to print
markers on stdout and sleep a little inside the chosen phase, and it
blocks at the phase's end (reading stdin, which the parent never answers): the kill, at a
seeded random delay after the phase's first marker, always falls inside the phase. After each
kill: the directory loads, reads as ``interrupted`` with its last complete epoch named, holds
exactly the epochs of the last manifest whose rename the markers show (or, killed inside the
rename, of the one before or the one after: nothing half), and every value equals the
uninterrupted run's. ``nn-tracing pack`` packs it.

The seed is printed; ``NN_TRACING_CRASH_SEED=<seed>`` repeats a run's plan.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nn_tracing import NetworkTrace, load_trace
from nn_tracing.cli import main
from nn_tracing.store import TraceFormatError
from tests.conftest import ROOT, TINY_CONFIG

#: Small but not trivial: two hidden layers of 16, 15 batches an epoch, every epoch recorded
#: with its weights and per-step table (five files an epoch, and the manifest).
CONFIG = TINY_CONFIG.replace(
    hidden_sizes=(16, 16),
    epochs=5,
    n_samples=600,
    batch_size=32,
    seed=7,
    keep_weights=True,
    drop_batches=False,
)
SEED = int(os.environ.get("NN_TRACING_CRASH_SEED") or random.SystemRandom().randrange(2**32))
PHASES = ("batches", "files", "manifest")
N_KILLS = 21
#: Seconds the child sleeps in the chosen phase: after each batch, after each file, and on
#: both sides of the manifest's rename.
SLOW = {"batches": 0.012, "files": 0.05, "manifest": 0.1}

CHILD = r'''
"""A training run that tests/unit/test_rundir_crash.py kills: markers on stdout."""
import json
import os
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

import nn_tracing.rundir_async as rundir_async
from nn_tracing import TrainConfig, save_trace, train

plan = json.loads(sys.argv[1])
out = Path(plan["out"])
phase, target, slow = plan.get("phase"), plan.get("target"), plan.get("slow", 0.0)


def mark(*words):
    os.write(1, (" ".join(str(w) for w in words) + "\n").encode())


def hold():
    """The end of the chosen phase: wait for the kill (the parent never answers)."""
    mark("H")
    sys.stdin.readline()
    os._exit(3)


# each recorded epoch handed over alone, so that every epoch's phases can be reached
rundir_async.WRITE_INTERVAL = 0.0
in_files = False
first = "tensors/final_weights.safetensors" if target == "end" else (
    f"neurons/epoch={target}/part.parquet"
)
real_replace = os.replace


def replace(src, dst):
    global in_files
    if Path(dst).parent == out.parent:  # the reference's .nntrace
        return real_replace(src, dst)
    if Path(dst).name != "manifest.json":
        name = Path(dst).relative_to(out).as_posix()
        if phase == "files" and not in_files and name == first:
            in_files = True
            mark("T", name)
        real_replace(src, dst)
        if in_files:
            time.sleep(slow)
        return
    if in_files:
        hold()
    manifest = json.loads(Path(src).read_bytes())
    epochs, status = manifest["epochs"], manifest["meta"]["status"]
    key = json.dumps(epochs, separators=(",", ":")) + " " + status
    chosen = phase == "manifest" and (
        status != "running" if target == "end" else status == "running" and epochs[-1] == target
    )
    mark("R0", key)
    if chosen:
        mark("T", key)
        time.sleep(slow)
    real_replace(src, dst)
    mark("R1", key)
    if chosen:
        time.sleep(slow)
        hold()


def progress(p):
    if phase == "batches" and p.epoch == target and not p.epoch_done and p.step >= 1:
        if p.step == 1:
            mark("T", "batch")
        time.sleep(slow)
        if p.step == p.steps_per_epoch:
            hold()


os.replace = replace
run = train(TrainConfig.from_dict(plan["config"]), progress=progress, progress_every=0.0, out=out)
if plan.get("save"):
    save_trace(run.trace, plan["save"])
mark("DONE")
'''


@dataclass(frozen=True)
class Plan:
    """One kill: the phase, its epoch (``"end"``: the run's last write) and the delay after
    the phase's first marker."""

    index: int
    phase: str
    target: int | str
    delay: float

    @property
    def name(self) -> str:
        target = f"E{self.target}" if isinstance(self.target, int) else self.target
        return f"{self.index:02d}-{self.phase}-{target}-{self.delay * 1000:.0f}ms"


def _plans(seed: int) -> list[Plan]:
    """``N_KILLS`` kills spread evenly over the phases; targets and delays from ``seed``.
    Half the manifest kills fall before the rename and half after it."""
    rng = random.Random(seed)
    plans = []
    for index in range(N_KILLS):
        phase = PHASES[index % len(PHASES)]
        epochs: list[int | str] = list(range(1, CONFIG.epochs + 1))
        target = rng.choice(epochs if phase == "batches" else [*epochs, "end"])
        slow = SLOW[phase]
        if phase == "batches":
            delay = rng.uniform(0, 15 * slow)
        elif phase == "files":
            delay = rng.uniform(0, (1 if target == "end" else 4) * slow)
        elif (index // len(PHASES)) % 2:
            delay = rng.uniform(1.3 * slow, 2 * slow)  # after the rename
        else:
            delay = rng.uniform(0, 0.7 * slow)  # before it
        plans.append(Plan(index, phase, target, delay))
    return plans


PLANS = _plans(SEED)


@dataclass
class Crash:
    """What one killed child left: its run directory and its markers."""

    plan: Plan
    run_dir: Path
    markers: list[list[str]]
    returncode: int
    log: Path

    def why(self) -> str:
        lines = "\n".join(" ".join(m) for m in self.markers[-8:])
        errors = "\n".join(self.log.read_text(errors="replace").splitlines()[-5:])
        return f"seed {SEED}, kill {self.plan.name}; last markers:\n{lines}\nstderr:\n{errors}"


@dataclass
class Runs:
    """The uninterrupted run (a ``.nntrace`` and its run directory) and every kill."""

    reference_file: Path
    reference_dir: Path
    crashes: dict[int, Crash]


def _spawn(child: Path, plan: dict, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(child), json.dumps(plan)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        env=env,
        cwd=ROOT,
    )


def _kill_one(child: Path, folder: Path, plan: Plan) -> Crash:
    run_dir = folder / f"run-{plan.index:02d}"
    spec = {
        "config": CONFIG.to_dict(),
        "out": str(run_dir),
        "phase": plan.phase,
        "target": plan.target,
        "slow": SLOW[plan.phase],
    }
    log = folder / f"child-{plan.index:02d}.log"
    proc = _spawn(child, spec, log)
    assert proc.stdout is not None
    markers: list[list[str]] = []
    try:
        for raw in proc.stdout:
            markers.append(raw.decode().split())
            if markers[-1][0] == "T":
                time.sleep(plan.delay)
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
        markers += [raw.decode().split() for raw in proc.stdout.read().splitlines()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if proc.stdin is not None:
            proc.stdin.close()
    return Crash(plan, run_dir, markers, proc.returncode, log)


def _reference(child: Path, folder: Path) -> tuple[Path, Path]:
    """The uninterrupted run of the same config: its ``.nntrace`` and its run directory."""
    saved, run_dir = folder / "reference.nntrace", folder / "reference"
    spec = {"config": CONFIG.to_dict(), "out": str(run_dir), "save": str(saved)}
    proc = _spawn(child, spec, folder / "reference.log")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, (folder / "reference.log").read_text()
    assert out.decode().split()[-1] == "DONE"
    return saved, run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    """Every kill of :data:`PLANS`, two children at a time, and the reference run."""
    print(f"\ncrash test seed {SEED} (NN_TRACING_CRASH_SEED={SEED} repeats it)")
    folder = tmp_path_factory.mktemp("crash")
    child = folder / "child.py"
    child.write_text(CHILD)
    with ThreadPoolExecutor(max_workers=2) as pool:
        reference = pool.submit(_reference, child, folder)
        killed = [pool.submit(_kill_one, child, folder, plan) for plan in PLANS]
        crashes = {crash.plan.index: crash for crash in (future.result() for future in killed)}
    return Runs(*reference.result(), crashes)


@pytest.fixture(scope="module")
def reference(runs) -> NetworkTrace:
    return load_trace(runs.reference_file)


def _manifest_choices(markers: list[list[str]]) -> list[tuple[list[int], str]]:
    """What the manifest may hold after the kill: the last one whose rename returned (``R1``),
    or the one being renamed when the kill came (``R0`` without ``R1``)."""
    committed: tuple[list[int], str] | None = None
    pending: tuple[list[int], str] | None = None
    for marker in markers:
        if marker[0] in ("R0", "R1"):
            state = (json.loads(marker[1]), marker[2])
            if marker[0] == "R0":
                pending = state
            else:
                committed, pending = state, None
    return [s for s in (committed, pending) if s is not None]


def _assert_values_equal(trace: NetworkTrace, reference: NetworkTrace, why: str) -> None:
    """Every value the killed run kept equals the uninterrupted run's."""
    last = trace.epochs[-1]
    for epoch in trace.epochs:
        np.testing.assert_array_equal(trace.metrics_at(epoch), reference.metrics_at(epoch), why)
        want, got = reference.epoch_tensors(epoch), trace.epoch_tensors(epoch)
        assert sorted(got) == sorted(want), why
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, f"{why}\n{key} at E_{epoch}")
    want_history = reference.history[reference.history["epoch"] <= last]
    pd.testing.assert_frame_equal(
        trace.history.drop(columns="seconds").reset_index(drop=True),
        want_history.drop(columns="seconds").reset_index(drop=True),
        obj=why,
    )
    assert reference.steps is not None
    want_steps = reference.steps[reference.steps["epoch"] <= last].reset_index(drop=True)
    if not len(want_steps):  # only E_0: no step trained yet
        assert trace.steps is None or not len(trace.steps), why
    else:
        assert trace.steps is not None, why
        pd.testing.assert_frame_equal(
            trace.steps.reset_index(drop=True), want_steps, check_dtype=False, obj=why
        )
    for got, want in zip(trace.probe, reference.probe):
        np.testing.assert_array_equal(got, want, why)


@pytest.mark.parametrize("plan", PLANS, ids=[plan.name for plan in PLANS])
def test_a_run_killed_at_a_random_moment_loads_its_committed_epochs(
    runs, reference, plan, tmp_path
):
    crash = runs.crashes[plan.index]
    why = crash.why()
    assert crash.returncode == -signal.SIGKILL, why
    assert any(m[0] == "T" for m in crash.markers), f"the kill missed its phase: {why}"
    choices = _manifest_choices(crash.markers)
    if not choices:  # the writer (a thread) had not renamed E_0's manifest in yet: nothing kept
        with pytest.raises(TraceFormatError, match="has not recorded an epoch yet"):
            load_trace(crash.run_dir)
        return
    trace = load_trace(crash.run_dir)
    finished = trace.status == "complete"
    assert (trace.epochs, "complete" if finished else "running") in choices, why
    if not finished:
        assert trace.status == "interrupted", why
        assert trace.meta["status_message"].endswith(
            f"the last complete epoch is E_{trace.epochs[-1]}"
        )
    _assert_values_equal(trace, reference, why)
    if finished:
        for key, value in reference.final_weights.items():
            np.testing.assert_array_equal(trace.final_weights[key], value, why)
    packed = tmp_path / "packed.nntrace"
    assert main(["pack", str(crash.run_dir), "--out", str(packed)]) == 0, why
    from_zip = load_trace(packed)
    assert from_zip.epochs == trace.epochs and from_zip.status == trace.status, why
    pd.testing.assert_frame_equal(from_zip.frame, trace.frame)


def test_the_kills_covered_every_phase_and_both_sides_of_the_rename(runs):
    killed = [runs.crashes[plan.index] for plan in PLANS]
    assert len(killed) >= 20
    by_phase = {phase: [c for c in killed if c.plan.phase == phase] for phase in PHASES}
    assert all(len(found) == N_KILLS // len(PHASES) for found in by_phase.values())
    renamed = []
    for crash in by_phase["manifest"]:
        chosen = next(m for m in crash.markers if m[0] == "T")[1:]
        renamed.append(["R1", *chosen] in crash.markers)
    assert True in renamed and False in renamed, f"seed {SEED}: {renamed}"


def test_the_uninterrupted_run_directory_equals_its_trace(runs, reference):
    directory = load_trace(runs.reference_dir)
    assert directory.status == "complete" and directory.epochs == list(range(CONFIG.epochs + 1))
    _assert_values_equal(directory, reference, "the reference run")
