"""Real servers for the end-to-end tests (used by ``conftest.py`` and the tests):
``streamlit run streamlit_app.py`` on a free loopback port with its own runs and upload
folders, stopped by the test (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Streamlit's exception box: the app must never show one.
EXCEPTION = '[data-testid="stException"]'
#: Long: the first run of a page imports torch, slow on two busy cores.
TIMEOUT_MS = 120_000
#: How the server's interpreter starts Streamlit: as ``python -m streamlit``, with SIGUSR1
#: dumping every thread's Python stack to its log (:meth:`Server.dump_threads`) — ignored once
#: the interpreter is finalizing, when faulthandler gives the signal its previous handler back.
LAUNCH = (
    "import faulthandler, runpy, signal; "
    "signal.signal(signal.SIGUSR1, signal.SIG_IGN); "
    "faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "runpy.run_module('streamlit', run_name='__main__', alter_sys=True)"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One ``streamlit run`` process: its URL, folders and log."""

    url: str
    process: subprocess.Popen
    runs: Path
    uploads: Path
    log_path: Path
    _log: object = field(repr=False, default=None)

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server's process group."""
        os.killpg(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        """Wait for the server to exit; returns its exit code. One that has not exited in
        ``timeout`` seconds has its threads written to the error (see :meth:`dump_threads`)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"the server had not exited {timeout} s after the signal:\n{self.dump_threads()}"
            ) from exc

    def dump_threads(self) -> str:
        """What every thread of the (running) server is doing: each one's name, state and
        kernel wait channel from ``/proc``, then the Python stacks that SIGUSR1 has it print
        to its log (see :data:`LAUNCH`); the end of that log is returned."""
        tasks = []
        for task in sorted(Path(f"/proc/{self.process.pid}/task").glob("*")):
            try:
                name = (task / "comm").read_text().strip()
                state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                wchan = (task / "wchan").read_text().strip()
            except OSError:
                continue
            tasks.append(f"  thread {task.name} {name!r}: state {state}, waiting in {wchan}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGUSR1)
            time.sleep(2)
        return "\n".join(["threads (/proc):", *tasks, "log:", self.log()[-20_000:]])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s; idempotent."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None


def _wait_healthy(server: Server, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"streamlit exited early with code {server.process.returncode}:\n{server.log()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{server.url}/_stcore/health did not answer within {timeout} s")


def start_server(
    directory: Path, traces: Mapping[str, Path] = {}, env: Mapping[str, str] = {}
) -> Server:
    """Start the app on 127.0.0.1 with ``directory/runs`` holding ``traces`` (name -> file)."""
    runs = directory / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for name, path in traces.items():
        shutil.copy(path, runs / f"{name}.nntrace")
    uploads = directory / "uploads"
    port = free_port()
    environment = {
        **os.environ,
        "NN_TRACING_RUNS_DIR": str(runs),
        "NN_TRACING_UPLOAD_DIR": str(uploads),
        **env,
    }
    log_path = directory / "streamlit.log"
    log = log_path.open("wb")
    command = [
        sys.executable, "-c", LAUNCH, "run", str(ROOT / "streamlit_app.py"),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", process, runs, uploads, log_path, log)
    try:
        _wait_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server
