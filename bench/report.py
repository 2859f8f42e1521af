"""How every bench hands back its report: printed, and written as JSON when asked."""

from __future__ import annotations

import json
from pathlib import Path


def emit(report: dict, json_path: Path | None, *, text: str | None = None, width: int = 28) -> None:
    """Print ``text`` (by default one ``key value`` line per entry, keys ``width`` wide) and
    write the report as JSON to ``json_path`` when it is given."""
    if text is None:
        text = "\n".join(f"{key:{width}s} {value}" for key, value in report.items())
    print(text)  # noqa: T201 - a bench prints its report
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
