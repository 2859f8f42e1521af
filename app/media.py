"""The local media store: every stored file lives under settings.media_root.

Database rows keep paths relative to the root. Nothing a user typed is joined to a path
without passing through ``resolve_inside``, which refuses anything that escapes the root.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from pathlib import Path

from app.settings import get_settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UnsafePathError(ValueError):
    pass


def media_root() -> Path:
    root = get_settings().media_root
    root.mkdir(parents=True, exist_ok=True)
    return root


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, '..' escapes and links out of root."""
    if not relative or "\x00" in relative:
        raise UnsafePathError("empty or invalid path")
    root = root.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise UnsafePathError("path escapes the media root")
    return candidate


def media_path(relative: str) -> Path:
    return resolve_inside(media_root(), relative)


def relative_to_media(path: Path) -> str:
    return str(path.resolve().relative_to(media_root().resolve()))


def safe_filename(name: str, *, default: str = "file", max_len: int = 80) -> str:
    """A display-safe, filesystem-safe version of a user-supplied file name."""
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = name.replace("/", "_").replace("\\", "_")
    name = _UNSAFE.sub("_", name).strip("._-")
    return (name or default)[:max_len]


def video_dir(video_id: int) -> Path:
    folder = media_root() / "videos" / str(int(video_id))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_upload_path(original_name: str) -> Path:
    """A fresh path for an upload; the user's name only contributes a sanitized suffix."""
    suffix = Path(safe_filename(original_name)).suffix.lower()[:8] or ".bin"
    folder = media_root() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}{suffix}"
