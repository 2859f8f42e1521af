"""``quilt demo`` (what ``make run`` starts): the whole product on the embedded default.

Migrates the SQLite database under var/, makes sure an admin exists, starts a Celery
worker (filesystem broker, both queues) and the web server as child processes, queues the
bundled demo lecture once, prints the URL and the credentials, and waits. Ctrl-C stops
both children.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request

from sqlalchemy import select

from app.settings import REPO_ROOT, get_settings

DEMO_VIDEO = REPO_ROOT / "demo" / "lecture.mp4"


def _admin_credentials() -> tuple[str, str, bool]:
    """(username, password, created). A generated password is kept in var/ (mode 600)."""
    from app.db import session_scope
    from app.services.users import ensure_admin

    settings = get_settings()
    secret_file = settings.var_dir / "admin-password.txt"
    password = settings.admin_password
    if not password and secret_file.exists():
        password = secret_file.read_text().strip()
    with session_scope() as session:
        _user, generated = ensure_admin(
            session=session, username=settings.admin_username, password=password
        )
    if generated:
        secret_file.write_text(generated + "\n")
        secret_file.chmod(0o600)
        password = generated
    return settings.admin_username, password, generated is not None


def _queue_demo() -> str:
    from app.db import session_scope
    from app.models import Video, VideoStatus
    from app.services.ingest import queue_file

    with session_scope() as session:
        existing = session.scalar(
            select(Video).where(Video.source_url == str(DEMO_VIDEO.resolve())).order_by(Video.id)
        )
        if existing is not None and existing.status != VideoStatus.failed:
            return f"demo lecture already queued (video {existing.id}, {existing.status})"
        video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
        return f"queued the demo lecture as video {video.id}"


def _wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except Exception:
            time.sleep(0.3)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quilt demo")
    parser.add_argument("--host", default=os.environ.get("QUILT_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("QUILT_PORT", "8000")))
    parser.add_argument("--no-demo", action="store_true", help="do not queue the demo lecture")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.var_dir / "log"
    log_dir.mkdir(exist_ok=True)

    from app.migrate import upgrade

    upgrade()
    username, password, created = _admin_credentials()

    quilt = [sys.executable, "-m", "app.cli"]
    env = dict(os.environ)
    children: list[subprocess.Popen] = []
    try:
        with (log_dir / "worker.log").open("ab") as worker_log:
            children.append(
                subprocess.Popen(
                    [*quilt, "worker", "--beat", "-c", str(args.concurrency)],
                    stdout=worker_log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO_ROOT,
                )
            )
        with (log_dir / "web.log").open("ab") as web_log:
            children.append(
                subprocess.Popen(
                    [*quilt, "serve", "--host", args.host, "--port", str(args.port)],
                    stdout=web_log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO_ROOT,
                )
            )
        url = f"http://{args.host}:{args.port}/"
        if not _wait_http(url + "login", 60):
            print(
                f"error: the web server did not start; see {log_dir / 'web.log'}", file=sys.stderr
            )
            return 1
        if not args.no_demo:
            print(_queue_demo())
        print()
        print(f"  Quilt Curator is running at {url}")
        print(f"  admin login: {username} / {password}" + ("  (new account)" if created else ""))
        print(f"  logs: {log_dir}/worker.log, {log_dir}/web.log")
        print("  The demo lecture's pairs reach the review queue in about a minute.")
        print("  Ctrl-C stops the server and the worker.")
        sys.stdout.flush()
        while all(child.poll() is None for child in children):
            time.sleep(1)
        failed = [c for c in children if c.poll() is not None]
        for child in failed:
            print(
                f"error: a child process exited with {child.returncode}; see {log_dir}",
                file=sys.stderr,
            )
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
