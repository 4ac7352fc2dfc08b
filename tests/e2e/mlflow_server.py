"""A real MLflow tracking server for end-to-end tests: `with mlflow_server(tmp_path) as uri:` starts
`mlflow server` (this interpreter's MLflow) on 127.0.0.1 at a free port, with a SQLite backend and proxied
artifacts under tmp_path, waits until /health answers, yields its URI (http://127.0.0.1:PORT) and stops the
server's whole process group on exit (the server forks uvicorn workers).

Flags as `mlflow server --help` lists them in MLflow 3.17: `--workers 1` keeps it to one worker process. Its
security middleware allows localhost and private addresses by default (`--allowed-hosts`), so 127.0.0.1 needs no
extra flag."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(uri: str, timeout: float = 1.0) -> bool:
    """Whether the server at `uri` answers its /health page with 200."""
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after STOP_TIMEOUT_S."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def mlflow_server(tmp_path: Path, timeout: float = START_TIMEOUT_S) -> Iterator[str]:
    """Runs an MLflow server storing into tmp_path (mlflow.db, artifacts/, server.log) for the duration of the
    block; yields its tracking URI. Fails with the server's log when /health does not answer within `timeout`
    seconds or the server exits."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
               "--serve-artifacts", "--artifacts-destination", str(tmp_path / "artifacts")]
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not healthy(uri):
            if process.poll() is not None or time.monotonic() > deadline:
                ended = process.poll() is not None
                why = f"exited with {process.returncode}" if ended else f"no answer in {timeout:.0f} s"
                raise RuntimeError(f"mlflow server at {uri} did not start ({why}); its log ({log_path}):\n"
                                   f"{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.25)
        yield uri
    finally:
        _stop(process)
