"""Media files (frame images, videos) for logged-in users, never outside the media root."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from starlette.responses import FileResponse, Response

from app.media import UnsafePathError, media_path
from app.web.deps import CurrentUser
from app.web.security import SANDBOX_POLICY

router = APIRouter()

# Only what the review pages show is served, with a type we chose: an uploaded file named
# page.html is not a page of this site.
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
}


@router.get("/media/{path:path}")
def media(path: str, user: CurrentUser) -> Response:
    try:
        file = media_path(path)
    except UnsafePathError:
        raise HTTPException(404) from None
    media_type = MEDIA_TYPES.get(file.suffix.lower())
    if media_type is None or not file.is_file():
        raise HTTPException(404)
    return FileResponse(
        file,
        media_type=media_type,
        headers={
            "Cache-Control": "private, max-age=86400",
            "Content-Security-Policy": SANDBOX_POLICY,
        },
    )
