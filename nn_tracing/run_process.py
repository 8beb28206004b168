"""The training process behind a run directory: start one, tell what it said, stop one.

A run trained for the app is a child process, ``python -m nn_tracing train --config
<run>/config.json --out <run>/`` (:func:`spawn_training`), that writes the run directory as it
trains and outlives the server: it runs in a session of its own (a Ctrl-C in the server's
terminal, or a signal to the server's process group, does not reach it), its output goes to
``<run>/train.log`` (readers ignore files the manifest does not name), and it uses one torch
thread unless told otherwise.

:func:`stop_run` asks the process writing a run directory to stop gracefully — the first
Ctrl-C of the ``nn-tracing`` command: it finishes the current batch, records the epoch in
progress and closes the directory with status ``stopped`` — but only a process on this
machine that is provably that writer: the pid and start time of the directory's
``writer.json`` (:mod:`nn_tracing.rundir_live`), and a command line that runs ``nn_tracing
train`` with this very directory as its output. Nothing here imports torch or Streamlit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .config import TrainConfig
from .model_entry import check_allowed
from .rundir_live import FINAL_STATUSES, process_start, read_writer

__all__ = [
    "CONFIG_FILE",
    "LOG_FILE",
    "STOP_SIGNAL",
    "error_line",
    "spawn_training",
    "stop_run",
    "training_command",
    "writer_pid",
]

#: The run's settings, as the child reads them (``--config``).
CONFIG_FILE = "config.json"
#: The child's standard output and error.
LOG_FILE = "train.log"
#: What asks an ``nn-tracing train`` process to stop after the current batch (its first
#: Ctrl-C; SIGTERM does the same). SIGINT also stops it cleanly ("aborted") while it is still
#: starting, before its handler is in place.
STOP_SIGNAL = signal.SIGINT
#: Bytes of the log's end read for its error line.
_LOG_TAIL_BYTES = 64 * 1024
_ERROR_PREFIX = "nn-tracing: error:"


def training_command(run_dir: Path, threads: int | None = 1) -> list[str]:
    """The command line of a child that trains ``run_dir/config.json`` into ``run_dir``."""
    command = [sys.executable, "-m", "nn_tracing", "train", "--quiet", "--require-allowed-model"]
    command += ["--config", str(run_dir / CONFIG_FILE), "--out", f"{run_dir}{os.sep}"]
    if threads is not None:
        command += ["--threads", str(threads)]
    return command


def _child_environment(threads: int | None) -> dict[str, str]:
    """The server's environment, with this very ``nn_tracing`` importable first (the child
    runs the code the server runs) and OpenMP held to ``threads``."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    paths = [package_root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def spawn_training(
    config: TrainConfig, run_dir: Path, *, threads: int | None = 1
) -> subprocess.Popen[bytes]:
    """Start a child that trains ``config`` into the (new, empty) run directory ``run_dir``.

    The exact config is written to ``run_dir/config.json`` first; the child's output goes to
    ``run_dir/train.log``. Returns the child's :class:`subprocess.Popen`. An entry-point model
    must be allowed by ``NN_TRACING_MODELS`` (checked here, before anything is written, and
    again by the child: ``--require-allowed-model``):
    :class:`~nn_tracing.model_entry.EntryPointRefused` otherwise.
    """
    check_allowed(config.model)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=1, allow_nan=False))
    with (run_dir / LOG_FILE).open("ab") as log:
        return subprocess.Popen(
            training_command(run_dir, threads),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_environment(threads),
            start_new_session=True,
            close_fds=True,
        )


def _log_tail(run_dir: Path) -> list[str]:
    """The last lines of ``run_dir/train.log`` (at most its last 64 KiB), or none."""
    try:
        fd = os.open(run_dir / LOG_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(size - _LOG_TAIL_BYTES, 0))
            raw = handle.read(_LOG_TAIL_BYTES)
    except OSError:
        return []
    return [line.strip() for line in raw.decode(errors="replace").splitlines() if line.strip()]


def error_line(run_dir: Path) -> str | None:
    """Why the child training into ``run_dir`` failed, in one line: its ``nn-tracing: error:``
    line, else the last line it printed (an exception's, never the traceback above it)."""
    lines = _log_tail(run_dir)
    for line in reversed(lines):
        if line.startswith(_ERROR_PREFIX):
            return line[len(_ERROR_PREFIX) :].strip()[:500]
    return lines[-1][:500] if lines else None


# -- stopping a run directory's writer ----------------------------------------------------------
def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="surrogateescape") for arg in raw.split(b"\0") if arg]


def _cli_arguments(argv: list[str]) -> list[str] | None:
    """The arguments given to the ``nn-tracing`` command in ``argv`` (``python -m
    nn_tracing …``, ``python -m nn_tracing.cli …`` or the ``nn-tracing`` script), or ``None``
    when ``argv`` does not run it."""
    for i, arg in enumerate(argv):
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] in ("nn_tracing", "nn_tracing.cli"):
            return argv[i + 2 :]
        if i <= 1 and Path(arg).name == "nn-tracing":
            return argv[i + 1 :]
    return None


def _output_dirs(arguments: list[str]) -> list[str]:
    """The values of ``--out`` and ``--run-dir`` in the command's ``arguments``."""
    found = []
    for i, arg in enumerate(arguments):
        for flag in ("--out", "--run-dir"):
            if arg == flag and i + 1 < len(arguments):
                found.append(arguments[i + 1])
            elif arg.startswith(f"{flag}="):
                found.append(arg.split("=", 1)[1])
    return found


def _trains_into(pid: int, directory: Path) -> bool:
    """Whether process ``pid`` runs ``nn-tracing train`` writing ``directory``."""
    argv = _cmdline(pid)
    arguments = _cli_arguments(argv) if argv else None
    if not arguments or arguments[0] != "train":
        return False
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        target = directory.resolve()
    except OSError:
        return False
    for value in _output_dirs(arguments):
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            if (cwd / value).resolve() == target:
                return True
    return False


def _manifest_status(directory: Path) -> str | None:
    """The status the manifest of ``directory`` states (unchecked beyond its type)."""
    try:
        with (directory / "manifest.json").open("rb") as handle:
            meta = json.loads(handle.read(8 * 2**20)).get("meta", {})
    except (OSError, ValueError, AttributeError):
        return None
    status = meta.get("status") if isinstance(meta, dict) else None
    return status if isinstance(status, str) else None


def writer_pid(directory: str | os.PathLike) -> int | None:
    """The pid of the process on this machine that is writing run directory ``directory``,
    verified (see the module docstring), or ``None``: no writer, one on another machine, one
    that is gone or has ended its run, a pid now held by another process, or a process that
    is not ``nn-tracing train`` writing this directory."""
    root = Path(directory)
    writer = read_writer(root)
    if writer is None or not writer.on_this_machine or not writer.proc_start:
        return None
    if _manifest_status(root) in FINAL_STATUSES:
        return None
    if process_start(writer.pid) != writer.proc_start:
        return None
    return writer.pid if _trains_into(writer.pid, root) else None


def _send(pid: int, proc_start: int, signum: int) -> bool:
    """Send ``signum`` to ``pid`` if it is still the process that started at ``proc_start``
    (through a pidfd where there is one, so the pid cannot change hands in between)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    send = getattr(signal, "pidfd_send_signal", None)
    if pidfd_open is None or send is None:  # pragma: no cover - Linux < 5.3, other systems
        if process_start(pid) != proc_start:
            return False
        os.kill(pid, signum)
        return True
    fd = pidfd_open(pid)
    try:
        if process_start(pid) != proc_start:
            return False
        send(fd, signum)
        return True
    finally:
        os.close(fd)


def stop_run(directory: str | os.PathLike) -> bool:
    """Ask the process writing run directory ``directory`` to stop after its current batch
    (it records the epoch in progress and closes the run with status ``stopped``).

    Only a verified writer on this machine is signalled (:func:`writer_pid`). Returns whether
    the request was sent; ``False`` when there is no such process (the run ended, was
    interrupted, is written elsewhere or by another program) or it may not be signalled.
    """
    root = Path(directory)
    pid = writer_pid(root)
    writer = read_writer(root)
    if pid is None or writer is None or writer.pid != pid:
        return False
    try:
        return _send(pid, writer.proc_start, STOP_SIGNAL)
    except (ProcessLookupError, PermissionError):
        return False
