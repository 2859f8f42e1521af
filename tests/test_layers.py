"""Imports run from higher layers to lower ones, never back.

web -> services -> models (app); tasks -> stage bookkeeping -> runner/stores -> stages ->
vision/text/knowledge -> workers.types (workers). The web app never imports the workers:
only the command-line entry points may (``--inline``, ``quilt pipeline run``). Every
import is read from the source, the lazy ones inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.settings import REPO_ROOT

# (modules of a layer, modules that layer must never import)
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("app.models", ("app.services", "app.web", "app.exporters", "workers")),
    ("app.pipeline", ("app.services", "app.web", "app.db", "workers")),
    ("app.settings", ("app.services", "app.web", "app.models", "workers")),
    ("app.services", ("app.web", "app.cli", "workers")),
    ("app.exporters", ("app.web", "app.services", "workers")),
    ("app.web", ("workers", "app.cli")),
    ("app.broker", ("app.services", "app.web", "workers")),
    ("app.knowledge", ("app.services", "app.web", "workers")),
    # The fetch address policy: read by the settings and the workers, it reads nothing.
    ("app.netguard", ("app.settings", "app.services", "app.web", "app.models", "app.db",
                      "workers")),  # fmt: skip
    ("workers.types", ("workers.stages", "workers.vision", "workers.text", "workers.knowledge",
                       "workers.tasks", "workers.persist", "workers.runner", "app.db",
                       "app.models", "app.services")),
    ("workers.vision", ("workers.stages", "workers.tasks", "workers.persist", "workers.runner",
                        "workers.stage_runner", "workers.oneshot", "app.db", "app.services",
                        "app.models")),
    ("workers.text", ("workers.stages", "workers.tasks", "workers.persist", "workers.runner",
                      "workers.stage_runner", "workers.oneshot", "app.db", "app.services",
                      "app.models")),
    ("workers.knowledge", ("workers.stages", "workers.text", "workers.vision", "workers.tasks",
                           "workers.persist", "workers.runner", "app.db", "app.services",
                           "app.models")),
    # Stage cores are pure: no database, no Celery, no runner.
    ("workers.stages", ("workers.tasks", "workers.persist", "workers.runner",
                        "workers.stage_runner", "workers.oneshot", "workers.celery_app",
                        "app.db", "app.models", "app.services", "celery", "sqlalchemy")),
    ("workers.runner", ("workers.tasks", "workers.persist", "workers.stage_runner",
                        "workers.oneshot", "app.db", "app.services", "celery")),
    ("workers.persist", ("workers.tasks", "workers.stage_runner", "workers.oneshot",
                         "workers.stages", "celery")),
    ("workers.oneshot", ("workers.tasks", "workers.persist", "workers.stage_runner", "app.db",
                         "app.services", "celery")),
    ("workers.stage_runner", ("workers.tasks", "workers.oneshot")),
    # An evaluation job: CLIP_benchmark around the app's rows, called by its task only.
    ("workers.evaluation", ("workers.tasks", "workers.stages", "workers.persist",
                            "workers.runner", "workers.stage_runner", "workers.oneshot",
                            "app.web", "app.cli")),
    # The training task's body: open_clip's trainer in a subprocess, no stage machinery.
    ("workers.training", ("workers.tasks", "workers.oneshot", "workers.stages",
                          "workers.persist", "workers.runner")),
]  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # The project imports absolutely; a relative import would hide its target.
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module or "")
            # `from app import broker` imports the module app.broker
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _sources() -> list[Path]:
    return sorted(p for top in ("app", "workers") for p in (REPO_ROOT / top).rglob("*.py"))


def test_the_rules_cover_every_package() -> None:
    # A new package under app/ or workers/ must be given a place in the layers.
    top_level = {
        ".".join(_module_name(p).split(".")[:2])
        for p in _sources()
        if len(p.relative_to(REPO_ROOT).parts) > 1
    }
    entry_points = {"app.cli", "app.demo", "app.release_cli", "app.migrate", "app.db",
                    "app.media", "app.passwords", "app", "workers", "workers.celery_app",
                    "workers.tasks"}  # fmt: skip
    layered = {layer for layer, _ in RULES}
    assert sorted(top_level - layered - entry_points) == []


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_import_runs_back_up(path: Path) -> None:
    module = _module_name(path)
    broken = []
    for layer, forbidden in RULES:
        if not _within(module, layer):
            continue
        for imported in _imports(path):
            broken += [f"{module} imports {imported}" for f in forbidden if _within(imported, f)]
    assert broken == []


def test_the_walker_sees_lazy_and_from_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from workers import tasks\n    import app.web.main\n")
    assert {"workers.tasks", "app.web.main"} <= _imports(source)
