"""manifest.json: the list of every file of a release with its sha256 and size.

A release is verified by re-hashing its files against the manifest; the manifest itself
is verified against the sha256 the database keeps for it (``releases.manifest_sha256``),
so neither a changed file nor a rewritten manifest goes unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
_CHUNK = 1 << 20


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex digest, size in bytes) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def list_files(root: Path) -> list[str]:
    """Relative POSIX paths of every entry under root that is not a folder, sorted.

    Links are listed too (not followed), so verification reports them as extra files.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            found.append((base / name).relative_to(root).as_posix())
    return sorted(found)


def build_manifest(root: Path, *, header: dict[str, Any]) -> dict[str, Any]:
    """The manifest of every file under root (but the manifest itself), after header."""
    files = {}
    for relpath in list_files(root):
        if relpath == MANIFEST_NAME:
            continue
        path = root / relpath
        sha, size = sha256_file(path)
        files[relpath] = {"sha256": sha, "bytes": size}
    return {**header, "schema_version": SCHEMA_VERSION, "files": files}


def write_manifest(root: Path, manifest: dict[str, Any]) -> str:
    """Write manifest.json (never over an existing one); returns its sha256."""
    data = (json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()
    with (root / MANIFEST_NAME).open("xb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def verify_folder(root: Path, *, expected_manifest_sha256: str | None = None) -> list[str]:
    """Problems found in a release folder; an empty list means every byte is as shipped."""
    if not root.is_dir():
        return [f"{root}: not a folder"]
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file() or manifest_path.is_symlink():
        return [f"{MANIFEST_NAME}: missing"]
    problems = []
    if expected_manifest_sha256 is not None:
        sha, _ = sha256_file(manifest_path)
        if sha != expected_manifest_sha256:
            problems.append(f"{MANIFEST_NAME}: sha256 differs from the one recorded at release")
    try:
        files = json.loads(manifest_path.read_bytes())["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        return [*problems, f"{MANIFEST_NAME}: unreadable ({exc})"]

    root_resolved = root.resolve()
    present = set(list_files(root)) - {MANIFEST_NAME}
    for relpath, expected in sorted(files.items()):
        if not isinstance(expected, dict):
            problems.append(f"{relpath}: malformed manifest entry")
            continue
        path = root / relpath
        # A manifest names files inside the release only; refuse '..' and absolute paths.
        inside = root_resolved in path.resolve().parents
        if not inside or path.is_symlink():
            problems.append(f"{relpath}: not a plain file inside the release")
            continue
        if relpath not in present or not path.is_file():
            problems.append(f"{relpath}: missing")
            continue
        sha, size = sha256_file(path)
        if size != expected.get("bytes"):
            problems.append(f"{relpath}: size {size} != {expected.get('bytes')} in manifest")
        elif sha != expected.get("sha256"):
            problems.append(f"{relpath}: sha256 mismatch")
    for relpath in sorted(present - set(files)):
        problems.append(f"{relpath}: extra file, not in manifest")
    return problems
