"""Your own model: entry points named in TrainConfig, the allow-list NN_TRACING_MODELS, and the
proof that a trace naming code (``os:system``, ``builtins:eval``, a module never imported)
imports and runs nothing when it is loaded, uploaded as a file or read as a run directory.
An allowed entry point (tests/unit/custom_models.py) is trained by the CLI in a subprocess,
loaded, and rebuilt: its outputs on the probe equal the logits the trace stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nn_tracing import TrainConfig, load_trace, model_from_trace, save_trace, train
from nn_tracing.analysis.baselines import fresh_initialisation, reinitialisation_problem
from nn_tracing.analysis.neuron_model import NeuronModel
from nn_tracing.model_entry import (
    ENV_VAR,
    EntryPointRefused,
    check_allowed,
    check_model_kwargs,
    is_entry_point_allowed,
    load_factory,
    trusted_models,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ENTRY = "custom_models:make_net"
#: Entry points a hostile trace may name; none may ever be imported or called.
HOSTILE = ("os:system", "builtins:eval", "model_canary:make_net")


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    environment = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nn_tracing", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def cli_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``nn-tracing train --model custom_models:make_net --model-kwargs '{"width": 7}'`` on
    iris, in a subprocess that has tests/unit on its PYTHONPATH and no NN_TRACING_MODELS."""
    out = tmp_path_factory.mktemp("cli") / "own.nntrace"
    result = _cli(
        "train", "--dataset", "iris", "--epochs", "3", "--probe-size", "24", "--keep-weights",
        "--model", ENTRY, "--model-kwargs", '{"width": 7}', "--out", str(out), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def hostile_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run directory whose manifest was edited to name ``model_canary:make_net``."""
    directory = tmp_path_factory.mktemp("hostile") / "run"
    with trusted_models():
        train(
            TrainConfig(dataset="iris", model=ENTRY, epochs=2, probe_size=16),
            out=f"{directory}{os.sep}",
        )
    return directory


def _renamed(trace, entry: str):
    """``trace`` claiming it was trained from ``entry`` (config and meta alike)."""
    trace.meta["config"]["model"] = entry
    trace.meta["model"].update(name=entry, entry_point=entry, architecture=entry)
    return trace


# -- names and keyword arguments ----------------------------------------------------------------
def test_patterns_match_whole_entry_points_and_the_default_allows_nothing(monkeypatch) -> None:
    assert is_entry_point_allowed("mypkg.models:make", ("mypkg.models:*",))
    assert not is_entry_point_allowed("mypkg.other:make", ("mypkg.models:*",))
    assert not is_entry_point_allowed("mypkg.models:make_net2", ("mypkg.models:make_net",))
    assert not is_entry_point_allowed("xmypkg.models:make", ("mypkg.models:*",))
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(EntryPointRefused, match=f"{ENV_VAR}.*it is empty"):
        check_allowed("mypkg.models:make")
    monkeypatch.setenv(ENV_VAR, " other:* , mypkg.models:* ")
    check_allowed("mypkg.models:make")
    check_allowed("cnn")  # built-ins need no permission


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"a": [[1]]}, "nested lists"),
        ({"n_classes": 3}, "passed by nn_tracing"),
        ({"_private": 1}, "not a keyword name"),
        ({"x": float("nan")}, "finite"),
        ({"x": "y" * 300}, "at most 200"),
        ({f"k{i}": i for i in range(40)}, "at most 32"),
        ([1, 2], "JSON object"),
    ],
)
def test_model_kwargs_are_bounded_json(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_model_kwargs(kwargs)
    assert check_model_kwargs({"width": 4, "names": ["a", None], "on": True}) == {
        "width": 4,
        "names": ["a", None],
        "on": True,
    }
    assert check_model_kwargs({}) is None


def test_config_checks_the_model_and_round_trips() -> None:
    config = TrainConfig(dataset="iris", model=ENTRY, model_kwargs={"width": 5})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.architecture == ENTRY
    for bad, field in [
        ({"model": "os system"}, "model="),
        ({"model": "builtins:__import__"}, "model="),
        ({"model_kwargs": {"width": 4}}, "model_kwargs="),  # the MLP takes none
        ({"model": ENTRY, "model_kwargs": {"w": {"x": 1}}}, "model_kwargs="),
    ]:
        with pytest.raises(ValueError, match=field):
            TrainConfig(dataset="iris", **bad)


def test_a_refused_entry_point_is_not_imported(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("NN_TRACING_CANARY_IMPORTED", raising=False)
    assert "model_canary" not in sys.modules
    with pytest.raises(EntryPointRefused, match="model_canary:make_net"):
        load_factory("model_canary:make_net")
    assert "model_canary" not in sys.modules
    assert "NN_TRACING_CANARY_IMPORTED" not in os.environ


def test_an_allowed_module_is_found_in_the_working_directory(tmp_path: Path) -> None:
    """The common case: the app started from the user's project (streamlit puts the
    script's folder on sys.path, not the working directory); the child sees neither
    tests/unit nor the project on its path."""
    (tmp_path / "my_project_model.py").write_text(
        "from torch import nn\n"
        "def make(*, input_shape, n_classes):\n"
        "    return nn.Linear(input_shape[0], n_classes)\n"
    )
    script = tmp_path / "elsewhere" / "check.py"
    script.parent.mkdir()
    script.write_text(
        "import sys\n"
        f"sys.path[:] = [p for p in sys.path if p not in ('', {str(tmp_path)!r})]\n"
        "from nn_tracing.model_entry import load_factory\n"
        "print(load_factory('my_project_model:make')(input_shape=(3,), n_classes=2))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env.update(PYTHONPATH=str(ROOT), **{ENV_VAR: "my_project_model:*"})
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Linear(in_features=3, out_features=2" in result.stdout
    del env[ENV_VAR]
    refused = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert refused.returncode != 0 and "EntryPointRefused" in refused.stderr


# -- traces that name code ----------------------------------------------------------------------
@pytest.mark.parametrize("entry", HOSTILE)
def test_loading_a_trace_that_names_code_imports_and_runs_nothing(
    entry: str, cli_trace: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("NN_TRACING_CANARY_IMPORTED", raising=False)
    path = save_trace(_renamed(load_trace(cli_trace), entry), tmp_path / "hostile.nntrace")
    before = set(sys.modules)
    trace = load_trace(path.read_bytes())  # an upload: bytes
    assert trace.meta["model"]["entry_point"] == entry
    for rebuild in (
        lambda: model_from_trace(trace),
        lambda: NeuronModel.from_trace(trace),
        lambda: fresh_initialisation(trace, 0),
    ):
        with pytest.raises(EntryPointRefused, match=ENV_VAR):
            rebuild()
    assert ENV_VAR in (reinitialisation_problem(trace) or "")
    assert set(sys.modules) - before == set()
    assert "model_canary" not in sys.modules
    assert "NN_TRACING_CANARY_IMPORTED" not in os.environ


def test_a_run_directory_naming_an_unimported_module_imports_nothing(
    hostile_run_dir: Path, monkeypatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    manifest = hostile_run_dir / "manifest.json"
    meta = json.loads(manifest.read_text())
    meta["meta"]["config"]["model"] = "model_canary:make_net"
    meta["meta"]["model"].update(name="model_canary:make_net", entry_point="model_canary:make_net")
    manifest.write_text(json.dumps(meta))
    trace = load_trace(hostile_run_dir)
    with pytest.raises(EntryPointRefused):
        model_from_trace(trace)
    assert "model_canary" not in sys.modules
    # allowing the *name* only would import it: the allow-list is the server owner's word
    monkeypatch.setenv(ENV_VAR, "custom_models:*")
    with pytest.raises(EntryPointRefused):
        model_from_trace(trace)
    assert "model_canary" not in sys.modules


def test_a_trace_whose_meta_and_config_disagree_is_refused(cli_trace: Path, monkeypatch) -> None:
    from nn_tracing import TraceFormatError

    monkeypatch.setenv(ENV_VAR, "custom_models:*")
    trace = load_trace(cli_trace)
    trace.meta["config"]["model"] = "os:system"
    with pytest.raises(TraceFormatError, match="names 'custom_models:make_net' but its config"):
        model_from_trace(trace)


# -- an allowed entry point, end to end -----------------------------------------------------------
def test_the_cli_trains_an_entry_point_and_the_trace_rebuilds_it(
    cli_trace: Path, monkeypatch
) -> None:
    trace = load_trace(cli_trace)
    assert trace.meta["model"]["entry_point"] == ENTRY
    assert trace.meta["model"]["kwargs"] == {"width": 7}
    assert trace.meta["model"]["input_shape"] == [4]
    assert trace.layer_names() == ["input", "body", "head"]
    assert trace.layers[1].n_neurons == 7
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(EntryPointRefused):
        model_from_trace(trace)
    monkeypatch.setenv(ENV_VAR, "custom_models:*")
    x = torch.as_tensor(trace.probe[0])
    for epoch in trace.epochs:
        model = model_from_trace(trace, epoch)
        with torch.no_grad():
            logits = model(x).numpy()
        np.testing.assert_allclose(logits, trace.logits(epoch), rtol=1e-5, atol=1e-5)
    assert type(model).__name__ == "TwoLayerNet"
    # the hook points see what the trace recorded
    neuron_model = NeuronModel.from_trace(trace)
    np.testing.assert_allclose(
        neuron_model.activations(x).numpy(),
        trace.probe_activations(trace.epochs[-1]),
        rtol=1e-5,
        atol=1e-5,
    )
    assert reinitialisation_problem(trace) is None
    fresh = fresh_initialisation(trace, seed=3)
    assert not torch.equal(fresh.body.weight, model.body.weight)


def test_the_cli_refuses_an_entry_point_the_app_may_not_import(tmp_path: Path) -> None:
    args = ["train", "--dataset", "iris", "--epochs", "1", "--model", ENTRY, "--quiet"]
    result = _cli(*args, "--require-allowed-model", "--out", str(tmp_path / "x.nntrace"))
    assert result.returncode == 2
    assert f"nn-tracing: error: model '{ENTRY}' is an entry point" in result.stderr
    assert ENV_VAR in result.stderr and "Traceback" not in result.stderr
    allowed = _cli(
        *args, "--require-allowed-model", "--out", str(tmp_path / "y.nntrace"),
        env={ENV_VAR: "custom_models:make_*"},
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    bad = _cli(*args, "--model-kwargs", "[1]", "--out", str(tmp_path / "z.nntrace"))
    assert bad.returncode == 2 and "--model-kwargs must be a JSON object" in bad.stderr


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("custom_models:not_a_module", "returned a str, not a torch.nn.Module"),
        ("custom_models:missing", "has no attribute missing"),
        ("no_such_module_xyz:make", "no module 'no_such_module_xyz'"),
    ],
)
def test_a_bad_entry_point_says_what_is_wrong(entry: str, message: str) -> None:
    with trusted_models(), pytest.raises(ValueError, match=message):
        train(TrainConfig(dataset="iris", model=entry, epochs=1))


def test_the_estimate_counts_an_entry_point_on_images() -> None:
    from nn_tracing.estimate import estimate_run

    config = TrainConfig(
        dataset="digits", model="custom_models:make_conv", model_kwargs={"channels": 6},
        epochs=1, probe_size=20,
    )  # fmt: skip
    with pytest.raises(EntryPointRefused):
        estimate_run(config)
    with trusted_models():
        estimate = estimate_run(config)
        run = train(config)
    assert run.trace is not None and run.trace.probe[0].shape == (20, 1, 8, 8)
    assert estimate.n_neurons == run.trace.n_neurons == 1 + 6 + 10
    assert estimate.n_parameters == run.trace.meta["model"]["n_parameters"]


def test_an_older_config_without_model_fields_is_a_replicate_of_the_mlp() -> None:
    from nn_tracing.seeds import replicate_key

    new = TrainConfig(dataset="iris").to_dict()
    old = {k: v for k, v in new.items() if k not in ("model", "model_kwargs")}
    assert replicate_key(old) == replicate_key(new)
    assert replicate_key(old) != replicate_key({**new, "model": ENTRY})


def test_the_activation_field_rebuilds_an_allowed_entry_point(monkeypatch) -> None:
    from nn_tracing.analysis.profiles import ProfileUnavailable, activation_field

    with trusted_models():
        run = train(TrainConfig(dataset="moons", model=ENTRY, epochs=2, n_samples=200))
    trace = run.trace
    assert trace is not None
    neuron = trace.layers[1].first_id + 1  # a neuron of "body"
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ProfileUnavailable, match=ENV_VAR):
        activation_field(trace, neuron, 2)
    monkeypatch.setenv(ENV_VAR, ENTRY)
    field = activation_field(trace, neuron, 2, resolution=8)
    # at the probe points, the rebuilt model gives what the trace recorded
    assert field.max_probe_error < 1e-5


def test_an_allowed_entry_point_with_lying_kwargs_is_refused_before_allocation(
    cli_trace: Path, monkeypatch
) -> None:
    """A width of 10⁹ would be 16 GB of weights: the meta-device build costs nothing, and the
    shapes disagree with the stored weights before anything is allocated."""
    from nn_tracing import TraceFormatError

    monkeypatch.setenv(ENV_VAR, "custom_models:*")
    trace = load_trace(cli_trace)
    trace.meta["config"]["model_kwargs"] = {"width": 10**9}
    with pytest.raises(TraceFormatError, match=r"body.weight: \(1000000000, 4\) in the config"):
        model_from_trace(trace)
