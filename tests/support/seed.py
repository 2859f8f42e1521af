"""Rows the web and review tests start from: users, channels, videos, a real JPEG frame,
pairs."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from PIL import Image, ImageDraw
from sqlalchemy.orm import Session

from app.models import Channel, Pair, Role, User, Video, VideoStatus
from app.services.users import create_user

PASSWORD = "correct-horse-42"


def make_user(session: Session, username: str, role: Role = Role.reviewer) -> User:
    user = create_user(session=session, username=username, password=PASSWORD, role=role)
    session.commit()
    return user


def make_channel(session: Session, title: str = "Liver path") -> Channel:
    channel = Channel(url="https://www.youtube.com/@liver", title=title)
    session.add(channel)
    session.commit()
    return channel


def make_video(
    session: Session, title: str | None = "Liver pathology, lecture 3", **fields: object
) -> Video:
    """A processed video; a local file unless ``fields`` say otherwise (``source_kind``,
    ``source_url``, ``channel_id``)."""
    values: dict[str, object] = {
        "source_kind": "file",
        "source_url": "/data/liver.mp4",
        "status": VideoStatus.done,
        "duration_s": 600.0,
        **fields,
    }
    video = Video(title=title, **values)
    session.add(video)
    session.commit()
    return video


def write_frame_jpeg(media_root: Path, relative: str = "frames/1/0001.jpg") -> str:
    """A real JPEG that looks vaguely like H&E tissue (pink stroma, purple nuclei)."""
    image = Image.new("RGB", (640, 400), (236, 196, 214))
    draw = ImageDraw.Draw(image)
    for i in range(60):
        x, y = (i * 97) % 620, (i * 53) % 380
        draw.ellipse((x, y, x + 14, y + 11), fill=(92, 54, 130))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    path = media_root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return relative


def make_pair(
    session: Session,
    video: Video,
    *,
    priority: float = 0.5,
    caption: str = "Hepatocytes with macrovesicular steatosis.",
    image_path: str = "frames/1/0001.jpg",
    **fields: object,
) -> Pair:
    values: dict[str, object] = {
        "noisy_text": "here we see hepato sites with macro vesicular stee a toesis",
        "corrected_text": "here we see hepatocytes with macrovesicular steatosis",
        "medical_text": "hepatocytes with macrovesicular steatosis",
        "roi_text": "fat droplets in hepatocytes",
        "umls": [{"cui": "C0019209", "name": "Hepatocyte", "score": 0.93}],
        "keywords": ["steatosis", "hepatocytes"],
        "magnification": 20,
        "confidence": 0.8,
        "start_s": 62.0,
        "end_s": 70.5,
        **fields,
    }
    pair = Pair(
        pair_key=uuid.uuid4().hex,
        video_id=video.id,
        image_path=image_path,
        caption=caption,
        priority=priority,
        **values,
    )
    session.add(pair)
    session.commit()
    return pair
