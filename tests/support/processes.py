"""Child processes of the app for tests and benches: a web server or a worker, started with
the environment that binds them to a database and a var/ folder, and always stopped."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from app.settings import REPO_ROOT


def app_env(database_url: str, var_dir: Path | str, **extra: str) -> dict[str, str]:
    """This process's environment, with the settings that bind a child to ``database_url``
    and ``var_dir``, plus ``extra`` (``QUILT_...`` names)."""
    return {
        **os.environ,
        "QUILT_DATABASE_URL": database_url,
        "QUILT_VAR_DIR": str(var_dir),
        **extra,
    }


@contextlib.contextmanager
def running(
    args: Sequence[str],
    *,
    env: dict[str, str],
    log: Path | None = None,
    stop_timeout_s: float = 10.0,
) -> Iterator[subprocess.Popen]:
    """``args`` running in the repository root, its output into ``log`` (or this process's
    own output); terminated on the way out, killed if it does not stop in time."""
    out = log.open("wb") if log is not None else None
    process = subprocess.Popen(
        list(args),
        cwd=REPO_ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out is not None else None,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if out is not None:
            out.close()
