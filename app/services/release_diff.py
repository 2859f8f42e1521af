"""What changed between two releases: pairs added, removed, and edited.

Pairs are matched by pair id (``release_items.data["pair_id"]``, frozen with the item, so
it survives the pair's deletion); keys are not stable across releases (they number a
release's samples in order). A pair is edited when its caption or any of its texts
(noisy, corrected, medical, ROI) differs. A release's changelog (in its data card) is
its diff against its parent (``releases.parent_id``: by default the release made before
it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Release, ReleaseItem

TEXT_FIELDS: tuple[str, ...] = (
    "caption",
    "noisy_text",
    "corrected_text",
    "medical_text",
    "roi_text",
)


class ReleaseDiffError(ValueError):
    pass


@dataclass(frozen=True)
class DiffItem:
    """One pair as a diff sees it: its key and split in a release and its texts."""

    pair_id: int
    key: str
    split: str
    texts: dict[str, str]

    @classmethod
    def of(cls, *, key: str, split: str, data: dict[str, Any]) -> DiffItem:
        return cls(
            pair_id=int(data["pair_id"]),
            key=key,
            split=split,
            texts={f: str(data.get(f) or "") for f in TEXT_FIELDS},
        )


@dataclass(frozen=True)
class DiffEntry:
    pair_id: int
    old_key: str | None
    new_key: str | None
    split: str
    caption: str  # the new caption (the old one for a removed pair)
    changed: list[str] = field(default_factory=list)  # text fields that differ (edited)
    old_caption: str | None = None  # edited pairs whose caption changed


@dataclass(frozen=True)
class ReleaseDiff:
    old_version: str | None
    new_version: str
    added: list[DiffEntry]
    removed: list[DiffEntry]
    edited: list[DiffEntry]
    unchanged: int

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "edited": len(self.edited),
            "unchanged": self.unchanged,
        }


def diff_items(
    old: Iterable[DiffItem], new: Iterable[DiffItem], *, old_version: str | None, new_version: str
) -> ReleaseDiff:
    before = {item.pair_id: item for item in old}
    added, edited = [], []
    unchanged = 0
    seen = set()
    for item in new:
        seen.add(item.pair_id)
        prior = before.get(item.pair_id)
        if prior is None:
            added.append(DiffEntry(item.pair_id, None, item.key, item.split, item.texts["caption"]))
            continue
        changed = [f for f in TEXT_FIELDS if prior.texts[f] != item.texts[f]]
        if not changed:
            unchanged += 1
            continue
        edited.append(
            DiffEntry(
                item.pair_id,
                prior.key,
                item.key,
                item.split,
                item.texts["caption"],
                changed,
                prior.texts["caption"] if "caption" in changed else None,
            )
        )
    removed = [
        DiffEntry(item.pair_id, item.key, None, item.split, item.texts["caption"])
        for pair_id, item in before.items()
        if pair_id not in seen
    ]
    return ReleaseDiff(
        old_version=old_version,
        new_version=new_version,
        added=sorted(added, key=lambda e: e.pair_id),
        removed=sorted(removed, key=lambda e: e.pair_id),
        edited=sorted(edited, key=lambda e: e.pair_id),
        unchanged=unchanged,
    )


def release_items(*, session: Session, release_id: int) -> Iterator[DiffItem]:
    """The diff's view of every item of a release, streamed."""
    stmt = (
        select(ReleaseItem.key, ReleaseItem.split, ReleaseItem.data)
        .where(ReleaseItem.release_id == release_id)
        .order_by(ReleaseItem.id)
        .execution_options(yield_per=2000)
    )
    for key, split, data in session.execute(stmt):
        yield DiffItem.of(key=key, split=split, data=data)


def diff_releases(*, session: Session, old: str | None, new: str) -> ReleaseDiff:
    """The diff from release ``old`` to release ``new`` (by version). ``old`` None: against
    the new release's parent (every pair added when it has none)."""
    new_release = _ready(session, new)
    if old is None:
        parent = session.get(Release, new_release.parent_id) if new_release.parent_id else None
        old_items: Iterable[DiffItem] = (
            release_items(session=session, release_id=parent.id) if parent else []
        )
        old_version = parent.version if parent else None
    else:
        old_release = _ready(session, old)
        old_items = release_items(session=session, release_id=old_release.id)
        old_version = old_release.version
    return diff_items(
        old_items,
        release_items(session=session, release_id=new_release.id),
        old_version=old_version,
        new_version=new_release.version,
    )


def _ready(session: Session, version: str) -> Release:
    release = session.scalar(select(Release).where(Release.version == version))
    if release is None:
        raise ReleaseDiffError(f"no release {version!r}")
    if release.status != "ready":
        raise ReleaseDiffError(f"release {version!r} is {release.status}, not ready")
    return release
