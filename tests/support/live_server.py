"""The real web app under uvicorn (``--factory app.web.main:create_app``) in a subprocess on
127.0.0.1, on a free port: the ``live_server`` fixture (tests/conftest.py) for browser tests
and the review bench."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.processes import running

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - 127.0.0.1
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer {url} within {timeout_s} s")


@contextlib.contextmanager
def serving(
    env: dict[str, str], *, log: Path | None = None, uvicorn_args: Sequence[str] = ()
) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base URL, process) of the app serving on 127.0.0.1 once its login page answers;
    stopped on the way out. ``uvicorn_args`` are added to the command (``--workers 2``)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "app.web.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *uvicorn_args,
    ]
    base = f"http://127.0.0.1:{port}"
    with running(command, env=env, log=log) as process:
        wait_until_up(f"{base}/login", process)
        yield base, process
