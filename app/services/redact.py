"""What reviewers (non-admins) see of a video's source and failure: no server paths, no
raw exception text. Admins get the stored values as they are.

- ``source_name``: a local file or an upload by its file name only (the folder it sits in
  on the server is nobody's business but the admins'); a URL as it is.
- ``error_line``: one line, ``stage: what went wrong`` in words: exception class names,
  ``[Errno n]`` and paths are taken out; an internal error reads as such, without its text.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

LOCAL_KINDS = ("file", "upload")
MAX_ERROR_LINE = 200

_EXCEPTION = re.compile(r"\b(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Warning)\b:?\s*")
_ERRNO = re.compile(r"\[(?:Errno|WinError) -?\d+\]\s*")
# A path: /abs/..., ~/..., C:\..., file://..., or ./rel/...; quoted or bare.
_PATH = re.compile(r"""['"]?(?:file://|[A-Za-z]:[\\/]|~?/|\.{1,2}/)[^\s'",;)]*['"]?""")


def source_name(kind: str | None, url: str | None) -> str:
    """The source as a reviewer sees it: a local file's or upload's name, else the URL."""
    url = url or ""
    if kind in LOCAL_KINDS or url.startswith(("/", "file://")):
        path = url.removeprefix("file://")
        name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
        return name or "local file"
    return url


def _file_name(match: re.Match[str]) -> str:
    path = match.group(0).strip("'\"").removeprefix("file://")
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    return name or "a file"


def error_line(error: str | None) -> str | None:
    """A stored failure (``stage: reason``) as one plain line for reviewers."""
    if not error:
        return error
    line = error.strip().splitlines()[0] if error.strip() else ""
    stage, sep, reason = line.partition(": ")
    if not sep or " " in stage:
        stage, reason = "", line
    if "internal error" in reason or "Traceback" in reason:
        reason = "an internal error (an admin can see the details)"
    else:
        reason = _ERRNO.sub("", _EXCEPTION.sub("", reason))
        reason = _PATH.sub(_file_name, reason)
        reason = re.sub(r"\s*\([^()]*:\s*\)", "", reason)  # "(PyAV: )" once emptied
        reason = re.sub(r"\s+", " ", reason).strip(" :") or "it failed"
    text = f"{stage}: {reason}" if stage else reason
    return text[:MAX_ERROR_LINE]
