"""The README's "Your own runs" examples run as written (real training, a real run directory):
the commands through ``nn_tracing.cli.main``, the Python block with ``exec``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import nn_tracing as nt
from nn_tracing.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the README's "Your own runs" section."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Your own runs")
    section = text[start : text.index("\n## ", start + 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_the_commands_train_and_read_a_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (block,) = _blocks("bash")
    monkeypatch.chdir(tmp_path)
    for line in block.strip().splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == "nn-tracing", line
        assert main(words[1:]) == 0, line
    trace = nt.load_trace(tmp_path / "runs" / "moons")
    assert trace.meta["status"] == "complete"
    assert trace.epochs == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]
    assert "moons" in capsys.readouterr().out  # what `nn-tracing info` printed


def test_the_python_block_trains_and_looks_up_a_neuron(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = _blocks("python")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # the README's own example
    trace = namespace["trace"]
    assert isinstance(trace, nt.NetworkTrace)
    neuron = trace.neuron("E_30/L_hidden_2/n_20")
    assert (neuron.epoch, neuron.layer, neuron.neuron_id) == (30, "hidden_2", 20)
    # the same neuron read back from the run directory the block wrote
    again = nt.load_trace(tmp_path / "runs" / "moons")
    assert again.frame.loc[(30, "hidden_2", 20)].equals(trace.frame.loc[(30, "hidden_2", 20)])
