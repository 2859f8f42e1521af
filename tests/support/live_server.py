"""A live server for browser tests: ``uvicorn --factory app.web.main:create_app`` in a
subprocess on 127.0.0.1, on a free port, bound to the test's database and var/ folder.

Test modules import the fixture: ``from tests.support.live_server import live_server``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from app.settings import REPO_ROOT, Settings

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


@pytest.fixture
def live_server(settings: Settings, tmp_path) -> Iterator[str]:
    """Base URL of a real server sharing ``settings`` (database, media, releases)."""
    port = free_port()
    env = {
        **os.environ,
        "QUILT_DATABASE_URL": settings.database_url,
        "QUILT_VAR_DIR": str(settings.var_dir),
        "QUILT_SECRET_KEY": os.environ.get("QUILT_SECRET_KEY", "live-server-test-secret"),
        "QUILT_ENVIRONMENT": "test",
    }
    log = (tmp_path / "live-server.log").open("wb")
    process = subprocess.Popen(
        [
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
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/login", process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
