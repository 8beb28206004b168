"""The ``nn-tracing`` command: ``train``, ``estimate``, ``info``, ``export``, ``pack``, ``bench``.

Every user error (bad arguments, a bad config, an unreadable trace) prints one line starting
with ``nn-tracing: error:`` and exits non-zero; no traceback reaches the terminal.

Exit codes: 0 done; 2 bad input; 3 training diverged (trace saved); 4 the run directory could
not be written (the epochs written before are kept); 5 over ``--max-trace-bytes`` (the run was
refused before it started, or stopped recording when its trace reached the budget: the trace so
far is saved); 130 stopped (trace saved).

``train --out runs/x/`` (a trailing slash, an existing directory, or a name without the
``.nntrace`` suffix) writes a run directory as it trains (:mod:`nn_tracing.rundir`), and nothing
else; ``--out x.nntrace`` writes one file at the end (with ``--run-dir`` also a run directory).
The first Ctrl-C — or SIGTERM — stops training after the current batch and keeps the trace
(status ``stopped``, with ``meta["stop_requested_at"]`` and ``meta["stopped_epoch"]``); a
second one aborts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:  # the commands import these where they use them
    from .config import TrainConfig
    from .data import DataSplits
    from .stopping import StopRequest
    from .trace import NetworkTrace

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_WRITE_ERROR = 4
EXIT_OVER_BUDGET = 5
EXIT_STOPPED = 130


class CLIError(Exception):
    """A user error: printed as one line, exit code 2 (or ``exit_code``)."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors (unknown option, missing argument, bad choice, bad
    type) are one line ``nn-tracing: error: <message>`` and exit code 2, like every other
    user error of the command — not argparse's usage block. ``--help`` is unchanged.
    Subcommand parsers are made of this class too (``add_subparsers`` uses the parent's).
    """

    def error(self, message: str) -> NoReturn:
        flat = " ".join(message.splitlines())
        self.exit(EXIT_BAD_INPUT, f"nn-tracing: error: {flat} (see '{self.prog} --help')\n")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The TrainConfig options that ``train`` and ``estimate`` share."""
    from .config import ACTIVATIONS, DATASETS, OPTIMIZERS
    from .presets import PRESETS

    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="TrainConfig fields in a TOML file (or a JSON object, in a .json file)",
    )
    parser.add_argument("--preset", choices=PRESETS, help="start from a named config (grokking)")
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--csv", metavar="FILE", help="train on a CSV file (needs --label-column)")
    parser.add_argument("--label-column", metavar="NAME")
    parser.add_argument(
        "--hidden", type=int, nargs="+", metavar="WIDTH", help="hidden layer widths"
    )
    parser.add_argument("--activation", choices=ACTIVATIONS)
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--data-seed", type=int)
    parser.add_argument("--n-samples", type=int, help="size of a synthetic dataset")
    parser.add_argument("--probe-size", type=int)
    parser.add_argument("--modulus", type=int, metavar="P", help="modular datasets: p")
    parser.add_argument("--train-fraction", type=float, help="modular: share of pairs trained on")
    parser.add_argument("--embedding-dim", type=int, help="modular: 0 one-hot, D random embedding")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument(
        "--every", type=int, metavar="N", help="record every N-th epoch and the last"
    )
    schedule.add_argument(
        "--epochs-at", type=int, nargs="+", metavar="E", help="record these epochs"
    )
    schedule.add_argument("--last", action="store_true", help="record the last epoch only")
    schedule.add_argument("--all-epochs", action="store_true", help="record every epoch (default)")
    schedule.add_argument(
        "--step-intervals",
        metavar="SPEC",
        help="record on optimizer steps instead of epochs (S_<step> signatures): N (every "
        "N-th step and the last), log (steps 1, 2, 4, 8, … and the last), log:N (log-spaced "
        "below N, then every N-th, like Pythia's checkpoints), a list 10,100,1000, or last",
    )
    parser.add_argument(
        "--keep-weights",
        action="store_true",
        default=None,
        help="keep the full weights at every recorded epoch",
    )
    parser.add_argument(
        "--keep-batches",
        action="store_true",
        default=None,
        help="also record per-step statistics (drop_batches=False)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"))
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="mlp (default), cnn (image datasets: digits, bars) or your own entry point "
        "package.module:factory, called as factory(input_shape=..., n_classes=..., **kwargs); "
        "this command imports it as you ask (the app needs NN_TRACING_MODELS)",
    )
    parser.add_argument(
        "--model-kwargs",
        metavar="JSON",
        help="keyword arguments of the model, a JSON object, e.g. '{\"channels\": [8, 16]}'",
    )
    parser.add_argument(
        "--require-allowed-model",
        action="store_true",
        help="import an entry point only if NN_TRACING_MODELS allows it, as the app does "
        "(the app's runs use this)",
    )
    _add_storage_options(parser)


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    """What a recorded epoch keeps, and the trace budget (``TrainConfig`` fields)."""
    parser.add_argument(
        "--layers",
        nargs="+",
        metavar="NAME",
        help="trace only these hidden layers (hidden_1 … hidden_k); the input and output "
        "layers always are (default: every layer)",
    )
    parser.add_argument(
        "--activation-samples",
        type=int,
        metavar="N",
        help="keep the activations of N probe samples (a seeded subset) at every recorded "
        "epoch; statistics still use the whole probe (default: all)",
    )
    parser.add_argument(
        "--activation-dtype",
        choices=("float32", "float16"),
        help="stored precision of activations and logits (float16: half the size)",
    )
    parser.add_argument(
        "--max-trace-bytes",
        metavar="SIZE",
        help="a budget for the trace, e.g. 200MiB, 2GiB or 5e8: a run estimated over it is "
        "refused (exit code 5) or adapted (--on-budget adapt); recording stops if it is reached",
    )
    parser.add_argument(
        "--on-budget",
        choices=("refuse", "adapt"),
        help="over --max-trace-bytes: refuse (default), or lower float16, kept samples, then "
        "recorded epochs until the estimate fits",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nn-tracing",
        description="Trace every neuron of a PyTorch model while it trains.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train", help="train a model (the built-in MLP by default) and save its trace"
    )
    _add_run_options(train)
    train.add_argument(
        "--out",
        metavar="FILE|DIR/",
        help="where to write the trace: FILE.nntrace at the end, or DIR/ (a run directory) "
        "epoch by epoch as it trains (crash-safe)",
    )
    train.add_argument(
        "--run-dir",
        metavar="DIR",
        help="with --out FILE.nntrace: also write a run directory as it trains",
    )
    train.add_argument(
        "--threads", type=int, metavar="N", help="torch threads (default: torch's choice)"
    )
    train.add_argument(
        "--on-write-error",
        choices=("stop", "continue"),
        default="stop",
        help="when the run directory cannot be written (full disk, read-only folder): stop "
        "training (default; the epochs written are kept) or warn once and train on",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="print the estimate of peak memory and trace size, and do not train",
    )

    estimate = sub.add_parser(
        "estimate", help="estimate a run's peak memory and trace size without training"
    )
    _add_run_options(estimate)

    info = sub.add_parser("info", help="summarise a trace file")
    info.add_argument("trace", metavar="FILE")

    export = sub.add_parser("export", help="write a trace's neuron frame as CSV or Parquet")
    export.add_argument("trace", metavar="FILE")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--out", metavar="FILE", help="output file (default: next to the trace)")
    export.add_argument("--epoch", type=int, help="only this recorded epoch")

    pack = sub.add_parser("pack", help="make one .nntrace file of a run directory (to share)")
    pack.add_argument("run", metavar="DIR", help="the run directory, e.g. runs/<name>")
    pack.add_argument("--out", metavar="FILE", help="output file (default: DIR.nntrace)")

    bench = sub.add_parser("bench", help="measure the tracing overhead (see benchmarks/)")
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--epochs", type=int, default=10)
    bench.add_argument("--quick", action="store_true", help="a small, fast variant")
    return parser


def _config_from_args(args: argparse.Namespace):
    from .presets import config_with_preset

    values: dict[str, Any] = {}
    if args.config:
        values.update(_read_config_file(Path(args.config)))
    flags = {
        "dataset": args.dataset,
        "hidden_sizes": tuple(args.hidden) if args.hidden else None,
        "activation": args.activation,
        "dropout": args.dropout,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "data_seed": args.data_seed,
        "n_samples": args.n_samples,
        "probe_size": args.probe_size,
        "keep_weights": args.keep_weights,
        "device": args.device,
        "label_column": args.label_column,
        "traced_layers": tuple(args.layers) if args.layers else None,
        "activation_samples": args.activation_samples,
        "activation_dtype": args.activation_dtype,
        "on_budget": args.on_budget,
        "modulus": args.modulus,
        "modular_train_fraction": args.train_fraction,
        "modular_embedding_dim": args.embedding_dim,
    }
    if args.max_trace_bytes is not None:
        values["max_trace_bytes"] = _size_arg(args.max_trace_bytes)
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.keep_batches:
        values["drop_batches"] = False
    if args.model is not None:
        values["model"] = args.model
    if args.model_kwargs is not None:
        values["model_kwargs"] = _json_object(args.model_kwargs, "--model-kwargs")
    if args.csv:
        values["dataset"] = "csv"
        values["csv_path"] = args.csv
    values.update(_schedule_flags(args))
    try:  # a preset's fields first, overridden by the file's and the flags'
        return config_with_preset(values, args.preset)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def _json_object(text: str, flag: str) -> dict[str, Any]:
    """A flag's JSON object."""
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"{flag} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CLIError(f"{flag} must be a JSON object, e.g. '{{\"width\": 64}}'")
    return value


@contextlib.contextmanager
def _model_trust(args: argparse.Namespace) -> Iterator[None]:
    """``train`` and ``estimate`` import the entry point their user names (``--model``, or
    the config file's ``model``) — unless ``--require-allowed-model`` asks for the app's
    rule: only what ``NN_TRACING_MODELS`` allows."""
    from .model_entry import trusted_models

    with contextlib.nullcontext() if args.require_allowed_model else trusted_models():
        yield


def _size_arg(text: str) -> int | None:
    """``--max-trace-bytes``: a size such as ``200MiB``, ``2GiB``, ``5e8`` (``off``: none)."""
    from .budget import parse_size

    if "%" not in text:
        try:
            return parse_size(text, 0)
        except ValueError:
            pass
    raise CLIError(f"--max-trace-bytes {text!r} is not a size: use e.g. 200MiB, 2GiB or 5e8")


def _read_config_file(path: Path) -> dict[str, Any]:
    """The fields of a TOML config file, or of a JSON one (``.json``: a JSON object)."""
    import json
    import tomllib

    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        text = path.read_text()
        values = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except FileNotFoundError:
        raise CLIError(f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise CLIError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError, JSONDecodeError
        raise CLIError(f"config file {str(path)!r} is not valid {kind}: {exc}") from None
    if not isinstance(values, dict):
        raise CLIError(f"config file {str(path)!r} must hold an object of config fields")
    return values


def _estimate(config):
    from .estimate import estimate_run

    try:
        return estimate_run(config)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _plan(config, *, run_directory: bool = False):
    """The budget plan of ``config`` (:func:`~nn_tracing.trace_budget.plan_budget`); a refusal
    is one error line and exit code 5."""
    from .trace_budget import TraceBudgetExceeded, plan_budget

    try:
        return plan_budget(config, run_directory=run_directory)
    except TraceBudgetExceeded as exc:
        raise CLIError(str(exc), EXIT_OVER_BUDGET) from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _schedule_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The schedule flags as ``TrainConfig`` fields (a step schedule clears an epoch one from
    a config file, and an epoch flag a step schedule)."""
    from .step_schedule import parse_step_spec

    schedule: dict[str, Any] = {}
    if args.step_intervals is not None:
        try:
            schedule["step_intervals"] = parse_step_spec(args.step_intervals)
        except ValueError as exc:
            raise CLIError(f"--step-intervals: {exc}") from None
        schedule["epoch_intervals"] = None
    elif any((args.every is not None, args.epochs_at, args.last, args.all_epochs)):
        schedule["step_intervals"] = None
    if args.every is not None:
        schedule["epoch_intervals"] = args.every
    elif args.epochs_at:
        schedule["epoch_intervals"] = tuple(args.epochs_at)
    elif args.last:
        schedule["epoch_intervals"] = -1
    elif args.all_epochs:
        schedule["epoch_intervals"] = None
    return schedule


def _print_estimate(config, *, run_directory: bool = False) -> None:
    from .cli_estimate import estimate_text

    plan = _plan(config, run_directory=run_directory) if config.max_trace_bytes else None
    if plan is not None and plan.adapted:
        print(plan.describe())
        config = plan.config
    print(estimate_text(config, _estimate(config)))


def _cmd_estimate(args: argparse.Namespace) -> int:
    with _model_trust(args):
        _print_estimate(_config_from_args(args))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    with _model_trust(args):
        return _train_command(args)


def _train_command(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    if args.dry_run:
        _print_estimate(config, run_directory=_writes_run_directory(args))
        return 0
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be at least 1, not {args.threads}")
    out, run_dir = _train_outputs(args, config)
    if config.max_trace_bytes is not None:  # refused here, before the data is made
        plan = _plan(config, run_directory=run_dir is not None)
        if plan.adapted:
            print(f"nn-tracing: {plan.describe()}", file=sys.stderr)
    from .stopping import StopRequest

    stop = StopRequest()
    # before torch is imported and the data made: a stop asked for in the meantime ends the
    # run after its first batch, with E_0 kept
    previous = _install_stop_handlers(stop)
    try:
        from .data import prepare_data

        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        try:
            data = prepare_data(config)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        trace = _train_until_done_or_stopped(
            config,
            data,
            quiet=args.quiet,
            run_dir=run_dir,
            stop=stop,
            on_write_error=args.on_write_error,
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if out is not None:
        _save_trained(trace, out)
    return _report_trained(trace, out if out is not None else run_dir)


def _writes_run_directory(args: argparse.Namespace) -> bool:
    """Whether ``train`` with these arguments writes a run directory."""
    return bool(args.run_dir) or (args.out is not None and _is_run_directory_target(args.out))


def _is_run_directory_target(text: str) -> bool:
    """Whether ``--out text`` names a run directory: a trailing separator, an existing
    directory, or a name without the ``.nntrace`` suffix."""
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return True
    return Path(text).suffix.lower() != ".nntrace"


def _train_outputs(
    args: argparse.Namespace, config: TrainConfig
) -> tuple[Path | None, Path | None]:
    """``(trace file, run directory)`` that ``train`` writes (either may be ``None``)."""
    if args.out and _is_run_directory_target(args.out):
        if args.run_dir:
            raise CLIError(
                f"--out {args.out!r} is a run directory already; --run-dir goes with "
                "--out FILE.nntrace"
            )
        out, run_dir = None, Path(args.out)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(args.out) if args.out else Path("runs") / f"{config.dataset}-{stamp}.nntrace"
        run_dir = Path(args.run_dir) if args.run_dir else None
    if run_dir is not None:
        _check_run_directory(run_dir, "--out" if out is None else "--run-dir")
    return out, run_dir


def _check_run_directory(run_dir: Path, flag: str) -> None:
    """Refuse a run directory that is a file, holds a run, or is a runs folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise CLIError(f"{flag} {str(run_dir)!r} is a file; give a directory")
    if (run_dir / "manifest.json").exists():
        raise CLIError(f"{flag} {str(run_dir)!r} holds a run already")
    if run_dir.is_dir() and any(
        p.suffix == ".nntrace" or (p / "manifest.json").exists() for p in run_dir.iterdir()
    ):
        raise CLIError(
            f"{flag} {str(run_dir)!r} is a runs folder (it holds traces); give a new directory "
            f"in it, such as {run_dir / 'my-run'!s}/"
        )


def _install_stop_handlers(stop: StopRequest) -> dict[int, Any]:
    """SIGINT (Ctrl-C) and SIGTERM: the first stops after the current batch, a second
    aborts. Returns the handlers they replace."""

    def on_signal(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"\n{name}: stopping after the current batch (Ctrl-C again to abort)…",
            file=sys.stderr,
        )

    return {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}


@contextlib.contextmanager
def _write_warnings_as_lines() -> Iterator[None]:
    """While training, a :class:`~nn_tracing.rundir_log.RunWriteWarning` is one line
    ``nn-tracing: warning: …`` (other warnings show as usual)."""
    from tqdm import tqdm

    from .rundir_log import RunWriteWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", RunWriteWarning)  # one a run, and one a run only
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, RunWriteWarning):  # on a line of its own, above the bar
                tqdm.write(f"nn-tracing: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _train_until_done_or_stopped(
    config: TrainConfig,
    data: DataSplits,
    *,
    quiet: bool,
    run_dir: Path | None = None,
    stop: StopRequest | None = None,
    on_write_error: str = "stop",
) -> NetworkTrace:
    """Train with a progress bar (none when ``quiet``) until the end or ``stop``. Returns the
    trace; ``run_dir`` (when given) is written as it trains, and a write that fails stops
    training (``on_write_error="stop"``: one error line, exit code 4) or is warned about once
    (``"continue"``)."""
    from tqdm import tqdm

    from .rundir import RunWriteError
    from .trace_budget import TraceBudgetExceeded
    from .training import TrainingProgress, train

    bar = (
        None
        if quiet
        else tqdm(
            total=config.epochs,
            unit="epoch",
            desc=f"{config.dataset} {config.architecture}",
            file=sys.stderr,
            dynamic_ncols=True,
        )
    )

    def on_progress(p: TrainingProgress) -> None:
        if bar is None:
            return
        done = p.epoch - 1 + p.step / max(p.steps_per_epoch, 1) if p.epoch else 0.0
        bar.n = round(min(done, config.epochs), 2)
        bar.set_postfix(loss=f"{p.loss:.4f}", recorded=len(p.recorded_epochs), refresh=False)
        bar.refresh()

    try:
        with _write_warnings_as_lines():
            run = train(
                config,
                progress=on_progress,
                stop=stop,
                data=data,
                out=run_dir,
                on_write_error=on_write_error,
            )
    except TraceBudgetExceeded as exc:
        raise CLIError(str(exc), EXIT_OVER_BUDGET) from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except RunWriteError as exc:
        raise CLIError(str(exc), EXIT_WRITE_ERROR) from None
    except OSError as exc:
        raise CLIError(f"cannot write the run directory {str(run_dir)!r}: {exc}") from None
    finally:
        if bar is not None:
            bar.close()
    assert run.trace is not None
    return run.trace


def _save_trained(trace: NetworkTrace, out: Path) -> None:
    """Save the trace as one file."""
    from .store import save_trace

    try:
        save_trace(trace, out)
    except OSError as exc:
        raise CLIError(f"cannot write {str(out)!r}: {exc}") from None


def _report_trained(trace: NetworkTrace, where: Path | None) -> int:
    """Print a summary; the exit status says how training ended."""
    acc = trace.meta.get("final_val_acc")
    shown = f"{where}/" if where is not None and where.is_dir() else str(where)
    summary = f"saved {shown} ({trace.status}; {trace.axis}s {trace.epochs}"
    summary += f"; val accuracy {acc:.3f})" if acc is not None else ")"
    print(summary)
    if trace.status == "diverged":
        print(f"nn-tracing: warning: {trace.meta.get('status_message')}", file=sys.stderr)
        return EXIT_DIVERGED
    if trace.status == "stopped" and trace.meta.get("stopped_by") == "max_trace_bytes":
        print(f"nn-tracing: warning: {trace.meta.get('status_message')}", file=sys.stderr)
        return EXIT_OVER_BUDGET
    if trace.status == "stopped":
        return EXIT_STOPPED
    return 0


def _load(path: str):
    from .store import TraceFormatError, load_trace

    try:
        return load_trace(path)
    except TraceFormatError as exc:
        raise CLIError(f"{path}: {exc}") from None


def _cmd_info(args: argparse.Namespace) -> int:
    trace = _load(args.trace)
    meta = trace.meta
    config = meta.get("config") or {}
    dataset = meta.get("dataset") or {}
    lines = [f"trace      {args.trace}"]
    lines.append(
        f"status     {trace.status}"
        + (f" — {meta.get('status_message')}" if meta.get("status_message") else "")
    )
    model = meta.get("model") or {}
    lines.append(
        f"model      {model.get('architecture') or model.get('class', '?')}, "
        f"{model.get('n_parameters', '?')} parameters"
    )
    if dataset:
        lines.append(
            f"dataset    {dataset.get('name')}: {dataset.get('n_features')} features, "
            f"{dataset.get('n_classes')} classes, probe {dataset.get('n_probe')}"
        )
    if config:
        lines.append(
            f"training   {config.get('epochs')} epochs, {config.get('optimizer')} lr "
            f"{config.get('lr')}, batch {config.get('batch_size')}, seed {config.get('seed')}"
        )
    lines.append(f"neurons    {trace.n_neurons} in {len(trace.layers)} layers")
    for info in trace.layers:
        act = f", activation {info.activation}" if info.activation else ""
        lines.append(
            f"  {info.name:<16} {info.kind:<7} {info.n_neurons:>6} neurons  "
            f"n_{info.first_id} … n_{info.last_id}{act}"
        )
    epochs = trace.epochs
    shown = (
        ", ".join(map(str, epochs))
        if len(epochs) <= 20
        else (f"{', '.join(map(str, epochs[:8]))}, …, {', '.join(map(str, epochs[-4:]))}")
    )
    axis = trace.axis
    lines.append(f"{axis + 's':<10} {len(epochs)} recorded: {shown}")
    lines.append(f"metrics    {' '.join(trace.frame.columns)}")
    history = trace.history
    if len(history):
        last = history.iloc[-1]
        parts = [f"{axis} {int(last['epoch'])}"]
        for column in ("train_acc", "val_acc", "probe_acc", "val_loss"):
            value = last.get(column)
            if value is not None and value == value:
                parts.append(f"{column} {value:.4f}")
        lines.append("final      " + ", ".join(parts))
    extras = []
    if trace.steps is not None:
        extras.append(f"per-step table ({trace.steps['step'].nunique()} steps)")
    if meta.get("keep_weights"):
        extras.append("weights kept at every recorded epoch")
    if extras:
        lines.append("also       " + "; ".join(extras))
    print("\n".join(lines))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    trace = _load(args.trace)
    frame = trace.frame
    if args.epoch is not None:
        if args.epoch not in trace.epochs:
            raise CLIError(
                f"epoch {args.epoch} was not recorded; recorded epochs: "
                f"{', '.join(map(str, trace.epochs))}"
            )
        frame = frame.xs(args.epoch, level="epoch", drop_level=False)
    out = Path(args.out) if args.out else Path(args.trace).with_suffix(f".neurons.{args.format}")
    flat = frame.reset_index()
    try:
        if args.format == "csv":
            flat.to_csv(out, index=False)
        else:
            flat.to_parquet(out, index=False)
    except OSError as exc:
        raise CLIError(f"cannot write {str(out)!r}: {exc}") from None
    print(f"wrote {len(flat)} rows to {out}")
    return 0


def _cmd_pack(args: argparse.Namespace) -> int:
    from .store import save_trace

    run = Path(args.run)
    if not run.is_dir():
        raise CLIError(f"{args.run!r} is not a run directory")
    out = Path(args.out) if args.out else run.parent / f"{run.name}.nntrace"
    if out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a directory; give a file name")
    trace = _load(args.run)
    try:
        save_trace(trace, out)
    except OSError as exc:
        raise CLIError(f"cannot write {str(out)!r}: {exc}") from None
    print(f"packed {args.run} into {out} ({trace.status}; epochs {trace.epochs})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    argv = ["--repeats", str(args.repeats), "--epochs", str(args.epochs)]
    if args.quick:
        argv.append("--quick")
    return bench_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handlers = {
        "train": _cmd_train,
        "estimate": _cmd_estimate,
        "info": _cmd_info,
        "export": _cmd_export,
        "pack": _cmd_pack,
        "bench": _cmd_bench,
    }
    try:
        return handlers[args.command](args)
    except CLIError as exc:
        print(f"nn-tracing: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nn-tracing: aborted", file=sys.stderr)
        return EXIT_STOPPED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
