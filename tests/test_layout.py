"""Project-level promises: the web install stays light, compose stays valid, CLI wiring."""

from __future__ import annotations

import subprocess
import sys

import yaml

from app.cli import COMMANDS
from app.settings import REPO_ROOT


def test_web_app_never_imports_heavy_worker_dependencies() -> None:
    code = (
        "import sys\n"
        "from app.web.main import create_app\n"
        "create_app()\n"
        "import app.services.releases, app.services.review, app.services.ingest, app.cli\n"
        "heavy = [m for m in ('torch', 'faster_whisper', 'ctranslate2', 'cv2', 'open_clip',"
        " 'spacy', 'scispacy', 'workers.tasks') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert out.stdout.strip() == ""


def test_console_script_has_every_command() -> None:
    assert set(COMMANDS) >= {
        "db",
        "user",
        "ingest",
        "worker",
        "serve",
        "pipeline",
        "release",
        "demo",
    }


def test_docker_compose_shape() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker-cpu", "worker-gpu"} <= set(services)
    assert services["worker-cpu"]["command"][-2:] == ["-Q", "cpu"]
    assert services["worker-gpu"]["command"][2:4] == ["-Q", "gpu"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    for name in ("postgres", "redis", "web", "worker-cpu", "worker-gpu"):
        assert "healthcheck" in services[name], name
    assert {"pgdata", "media"} <= set(compose["volumes"])


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
