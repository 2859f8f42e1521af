"""Moving stage results between the stage dataclasses and the database / media store,
and ``DatabaseStore``, the store the workers run the pipeline's stages against.

Every save replaces what the same stage wrote before for the same video, so re-running a
stage never duplicates anything. Pairs are the exception that keeps history: a pair a
reviewer has touched is never deleted or rewritten by a re-run (see ``upsert_pairs``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.media import media_root, relative_to_media, video_dir
from app.models import Frame, FrameHashBand, Pair, PairStatus, Review, TranscriptSegment, Video
from workers.types import (
    AlignResult,
    Concept,
    Correction,
    FetchedMedia,
    FramesResult,
    KeptFrame,
    MediaSource,
    ProbeResult,
    Segment,
    Sentence,
    StageError,
    TextResult,
    Transcript,
    Word,
)
from workers.vision import dedup

TEXT_FILE = "text.json"


# --- transcript ----------------------------------------------------------------------


def save_transcript(session: Session, video: Video, transcript: Transcript) -> None:
    session.execute(delete(TranscriptSegment).where(TranscriptSegment.video_id == video.id))
    for seg in transcript.segments:
        session.add(
            TranscriptSegment(
                video_id=video.id,
                idx=seg.idx,
                start_s=seg.start,
                end_s=seg.end,
                text=seg.text,
                avg_logprob=seg.avg_logprob,
                no_speech_prob=seg.no_speech_prob,
                words=[asdict(w) for w in seg.words],
                text_info={},
            )
        )
    video.language = transcript.language


def load_transcript(session: Session, video: Video) -> Transcript:
    rows = session.scalars(
        select(TranscriptSegment)
        .where(TranscriptSegment.video_id == video.id)
        .order_by(TranscriptSegment.idx)
    ).all()
    segments = [
        Segment(
            idx=r.idx,
            start=r.start_s,
            end=r.end_s,
            text=r.text,
            words=[Word(**w) for w in r.words],
            avg_logprob=r.avg_logprob,
            no_speech_prob=r.no_speech_prob,
        )
        for r in rows
    ]
    return Transcript(
        language=video.language or "en",
        language_probability=1.0,
        duration_s=video.duration_s or 0.0,
        segments=segments,
    )


# --- frames --------------------------------------------------------------------------


def frames_dir(video: Video) -> Path:
    return video_dir(video.id) / "frames"


def fresh_frames_dir(video: Video) -> Path:
    folder = frames_dir(video)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def save_frames(session: Session, video: Video, result: FramesResult) -> dict[str, int]:
    """Replace the video's frames, index their pHash bands and link corpus duplicates.

    Returns counts: ``corpus_duplicates`` (this video's frames whose sharper twin is in
    another video: not pairable) and ``corpus_superseded`` (other videos' frames that now
    point at a sharper frame of this video; their pairs are left alone, reviewed or not).
    """
    session.execute(delete(Frame).where(Frame.video_id == video.id))
    rows: list[Frame] = []
    for kept in result.frames:
        row = Frame(
            video_id=video.id,
            image_path=relative_to_media(Path(kept.image_path)),
            t_s=kept.t_s,
            start_s=kept.start_s,
            end_s=kept.end_s,
            width=kept.width,
            height=kept.height,
            histology_score=kept.histology_score,
            is_histology=kept.is_histology,
            magnification=kept.magnification,
            magnification_confidence=kept.magnification_confidence,
            sharpness=kept.sharpness,
            phash=kept.phash,
            flags=kept.flags,
            crop_box=kept.crop_box,
            pairable=kept.pairable,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    counts = {"corpus_duplicates": 0, "corpus_superseded": 0}
    for kept, row in zip(result.frames, rows, strict=True):
        if not row.phash:
            continue
        for band, value in enumerate(dedup.bands(row.phash)):
            session.add(FrameHashBand(frame_id=row.id, band=band, value=value))
        if "duplicate_of" in kept.flags:
            continue  # a duplicate inside this video: its keeper speaks for it
        twins = corpus_twins(session, row.phash, exclude_video_id=video.id)
        if not twins:
            continue
        best = max(twins, key=lambda f: (f.sharpness or 0.0, -f.id))
        if (best.sharpness or 0.0) >= (row.sharpness or 0.0):
            row.duplicate_of_id = best.duplicate_of_id or best.id
            row.pairable = False
            row.flags = {**row.flags, "pairable": False, "corpus_duplicate_of": row.duplicate_of_id}
            kept.pairable, kept.flags = False, row.flags
            counts["corpus_duplicates"] += 1
        else:
            for twin in twins:
                twin.duplicate_of_id = row.id
                counts["corpus_superseded"] += 1
    session.flush()
    return counts


def corpus_twins(
    session: Session, digest: str, *, exclude_video_id: int | None = None
) -> list[Frame]:
    """Frames anywhere in the corpus within ``dedup.CORPUS_HAMMING`` bits of ``digest``:
    one (band, value) index probe per band, then an exact Hamming check."""
    clauses = [
        (FrameHashBand.band == band) & (FrameHashBand.value == value)
        for band, value in enumerate(dedup.bands(digest))
    ]
    query = select(Frame).where(Frame.id.in_(select(FrameHashBand.frame_id).where(or_(*clauses))))
    if exclude_video_id is not None:
        query = query.where(Frame.video_id != exclude_video_id)
    return [
        f
        for f in session.scalars(query)
        if f.phash and dedup.distance(f.phash, digest) <= dedup.CORPUS_HAMMING
    ]


def load_frames(session: Session, video: Video) -> tuple[FramesResult, list[Frame]]:
    """The video's frames in time order, and their rows in the same order (pairs point at
    a frame by its index; ``FramesResult.pairable`` picks the ones to pair)."""
    query = select(Frame).where(Frame.video_id == video.id)
    rows = list(session.scalars(query.order_by(Frame.start_s, Frame.id)))
    root = media_root()
    frames = [
        KeptFrame(
            image_path=str(root / r.image_path),
            t_s=r.t_s,
            start_s=r.start_s,
            end_s=r.end_s,
            width=r.width,
            height=r.height,
            histology_score=r.histology_score,
            is_histology=r.is_histology,
            magnification=r.magnification,
            sharpness=r.sharpness,
            phash=r.phash,
            flags=r.flags or {},
            crop_box=r.crop_box,
            pairable=r.pairable,
            magnification_confidence=r.magnification_confidence,
            duplicate_of_id=r.duplicate_of_id,
        )
        for r in rows
    ]
    return FramesResult(frames=frames), rows


# --- text ----------------------------------------------------------------------------
# The text stage's sentences live next to the video's media as JSON: align is their only
# reader, and the transcript itself (with word timings) is in the database.


def save_text(video: Video, result: TextResult) -> None:
    path = video_dir(video.id) / TEXT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result), ensure_ascii=False))
    tmp.replace(path)


def load_text(video: Video) -> TextResult:
    data = json.loads((video_dir(video.id) / TEXT_FILE).read_text())
    sentences = []
    for s in data["sentences"]:
        s = dict(s)
        s["corrections"] = [Correction(**c) for c in s.get("corrections", [])]
        s["concepts"] = [Concept(**c) for c in s.get("concepts", [])]
        sentences.append(Sentence(**s))
    return TextResult(sentences=sentences, stats=data.get("stats", {}))


# --- pairs ---------------------------------------------------------------------------


def pair_key(video_id: int, start_s: float, end_s: float, medical_text: str) -> str:
    raw = f"{video_id}|{start_s:.2f}|{end_s:.2f}|{medical_text.strip()}"
    return hashlib.sha256(raw.encode()).hexdigest()


def upsert_pairs(
    session: Session, video: Video, result: AlignResult, frame_rows: list[Frame]
) -> dict[str, int]:
    """Make the video's pairs match ``result`` without losing any review work.

    A pair is identified by its key (video, time span, medical text). Untouched pending
    pairs are refreshed or removed; reviewed pairs stay exactly as they are.
    """
    existing = {
        p.pair_key: p for p in session.scalars(select(Pair).where(Pair.video_id == video.id))
    }
    reviewed_ids = set(
        session.scalars(
            select(Review.pair_id).where(Review.pair_id.in_([p.id for p in existing.values()]))
        )
    )
    # pairs_before / pairs_after: the video's yield before and after a re-run.
    counts = {
        "pairs_before": len(existing),
        "inserted": 0,
        "updated": 0,
        "removed": 0,
        "kept_reviewed": 0,
    }
    seen: set[str] = set()
    for aligned in result.pairs:
        key = pair_key(video.id, aligned.start_s, aligned.end_s, aligned.medical_text)
        if key in seen:
            continue
        seen.add(key)
        frame = frame_rows[aligned.frame_index] if aligned.frame_index < len(frame_rows) else None
        fields = {
            "frame_id": frame.id if frame else None,
            "image_path": frame.image_path
            if frame
            else relative_to_media(Path(aligned.image_path)),
            "start_s": aligned.start_s,
            "end_s": aligned.end_s,
            "caption": aligned.text,
            "noisy_text": aligned.noisy_text,
            "corrected_text": aligned.corrected_text,
            "medical_text": aligned.medical_text,
            "roi_text": aligned.roi_text,
            "umls": list(aligned.umls),
            "keywords": list(aligned.keywords),
            "magnification": aligned.magnification,
            "scores": dict(aligned.scores),
            "denoising": dict(aligned.denoising),
            "confidence": aligned.confidence,
        }
        pair = existing.get(key)
        if pair is None:
            session.add(
                Pair(
                    pair_key=key,
                    video_id=video.id,
                    status=PairStatus.pending,
                    priority=aligned.confidence,
                    **fields,
                )
            )
            counts["inserted"] += 1
        elif (
            pair.status == PairStatus.pending and pair.id not in reviewed_ids and pair.version == 1
        ):
            for name, value in fields.items():
                setattr(pair, name, value)
            pair.priority = aligned.confidence
            counts["updated"] += 1
        else:
            counts["kept_reviewed"] += 1
    for key, pair in existing.items():
        if key in seen:
            continue
        if pair.status == PairStatus.pending and pair.id not in reviewed_ids and pair.version == 1:
            session.delete(pair)
            counts["removed"] += 1
        else:
            counts["kept_reviewed"] += 1
    counts["pairs_after"] = counts["pairs_before"] + counts["inserted"] - counts["removed"]
    return counts


# --- the store the workers run stages against ----------------------------------------


class DatabaseStore:
    """A video's artifacts as the workers keep them: rows in the database, files in the
    video's media folder. Stage runners load and save through it (workers.runner)."""

    def __init__(self, session: Session, video: Video) -> None:
        self.session = session
        self.video = video
        # The frame rows behind the frames last loaded: pairs point at them by index.
        self._frame_rows: list[Frame] = []
        # Set when what was saved settles the video without the later stages (the same
        # file processed already): the saved rows are kept, the video ends here.
        self.settled: StageError | None = None

    def files_for(self, stage: str) -> Path | None:
        if stage == "fetch":
            return video_dir(self.video.id)
        if stage == "frames":
            return fresh_frames_dir(self.video)
        return None

    def discard(self, stage: str) -> None:
        """Remove the files a stopped stage wrote (its rows are rolled back)."""
        if stage == "frames":
            shutil.rmtree(frames_dir(self.video), ignore_errors=True)

    def load(self, name: str) -> Any:
        video = self.video
        if name == "source":
            return MediaSource(kind=video.source_kind, location=video.source_url)
        if name == "media":
            return self._media()
        if name == "transcript":
            return load_transcript(self.session, video)
        if name == "frames":
            result, self._frame_rows = load_frames(self.session, video)
            return result
        if name == "text":
            return load_text(video)
        raise KeyError(f"no stored artifact {name!r}")

    def save(self, name: str, value: Any) -> dict[str, Any]:
        video = self.video
        if name == "media":
            self._save_media(value)
            return {}
        if name == "transcript":
            save_transcript(self.session, video, value)
            return {}
        if name == "frames":
            counts: dict[str, Any] = save_frames(self.session, video, value)
            # Corpus duplicates are found only here, against the other videos' frames, so
            # the count of pairable frames is final only now.
            counts["pairable"] = sum(f.pairable for f in value.frames)
            return counts
        if name == "text":
            save_text(video, value)
            return {}
        if name == "pairs":
            return upsert_pairs(self.session, video, value, self._frame_rows)
        raise KeyError(f"no stored artifact {name!r}")

    def _media(self) -> FetchedMedia:
        video = self.video
        if not video.media_path:
            raise StageError("no fetched media for this video")
        path = media_root() / video.media_path
        probe = ProbeResult(
            path=str(path),
            sha256=video.sha256 or "",
            size_bytes=path.stat().st_size if path.is_file() else 0,
            duration_s=video.duration_s or 0.0,
            has_video=True,
            has_audio=video.has_audio,
            fps=video.fps,
            width=video.width,
            height=video.height,
        )
        return FetchedMedia(path=path, probe=probe)

    def _save_media(self, media: FetchedMedia) -> None:
        video, info = self.video, media.probe
        video.media_path = relative_to_media(media.path)
        if media.title and (not video.title or video.title == video.source_url):
            video.title = media.title
        video.sha256 = info.sha256
        video.duration_s = info.duration_s
        video.fps = info.fps
        video.width, video.height = info.width, info.height
        video.has_audio = info.has_audio
        original = self._first_with_same_file()
        video.duplicate_of_id = original.id if original else None
        if original is not None:
            self.settled = StageError(
                f"duplicate of video #{original.id} ({original.title or 'untitled'}): "
                "the same file, processed once",
                status="skipped",
            )

    def _first_with_same_file(self) -> Video | None:
        """Another video with this file, processed or on its way (not failed, cancelled or
        a duplicate itself): of two copies, the one fetched second links to the first."""
        return self.session.scalar(
            select(Video)
            .where(
                Video.sha256 == self.video.sha256,
                Video.id != self.video.id,
                Video.duplicate_of_id.is_(None),
                Video.status.not_in(("failed", "cancelled")),
            )
            .order_by(Video.id)
            .limit(1)
        )
