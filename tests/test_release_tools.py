"""A release as its consumers read it: open_clip's WebDataset and CSV loaders, CLIP_benchmark's
WebDataset layout, Quilt-1M's lookup columns, the Hugging Face card header; and the
tools around releases: splits for few videos, selection, parent and diff."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import release_cli
from app.exporters.clip_benchmark import TEMPLATES
from app.models import PairStatus, Release, ReleaseItem
from app.services.release_diff import diff_releases
from app.services.releases import (
    ReleaseError,
    Selection,
    assign_splits,
    create_release,
    release_dir,
    verify_release,
)
from app.settings import Settings
from tests.test_releases import HOSTILE, _pair, _user, _video

TAGS = ("breast", "renal", "pulmonary", "other", None)


def _many(session: Session, settings: Settings, *, videos: int, pairs: int) -> list:
    reviewer = _user(session)
    made = []
    for v in range(videos):
        video = _video(session, v)
        for n in range(pairs):
            pair = _pair(session, settings, video=video, n=v * 100 + n, reviewer=reviewer)
            pair.subpathology = TAGS[(v + n) % len(TAGS)]
            pair.not_histology = n == 3
            made.append(pair)
    made[0].caption = HOSTILE
    session.commit()
    return made


def _items(session: Session, release: Release) -> list[ReleaseItem]:
    stmt = select(ReleaseItem).where(ReleaseItem.release_id == release.id)
    return list(session.scalars(stmt.order_by(ReleaseItem.key)))


def _brace(folder: Path, split: str) -> str:
    sizes = json.loads((folder / "shards" / "sizes.json").read_text())
    n = len([name for name in sizes if name.startswith(f"{split}-")])
    return str(folder / "shards" / f"{split}-{{000000..{n - 1:06d}}}.tar")


def test_open_clip_reads_the_shards_and_the_tsv(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    from open_clip_train.data import CsvDataset, get_dataset_size, get_wds_dataset

    release = _twelve_video_release(session, settings, samples_per_shard=7)
    folder = release_dir(release)
    items = _items(session, release)
    by_split: dict[str, list[ReleaseItem]] = {}
    for item in items:
        by_split.setdefault(item.split, []).append(item)
    sizes = json.loads((folder / "shards" / "sizes.json").read_text())
    tars = sorted(p.name for p in (folder / "shards").glob("*.tar"))
    assert sorted(sizes) == tars

    for split, split_items in by_split.items():
        pattern = _brace(folder, split)
        # open_clip's own size lookup: sizes.json beside the shards.
        total, shards = get_dataset_size(pattern)
        assert total == len(split_items)
        assert shards >= 4 and max(sizes[t] for t in tars if t.startswith(split)) <= 7
        # Parsed as open_clip's pipeline does (tar -> samples grouped by key -> filter).
        pipeline = wds.DataPipeline(
            wds.SimpleShardList(pattern),
            wds.tarfile_to_samples(),
            wds.select(lambda s: "txt" in s and "jpg" in s),
            wds.decode("pilrgb"),
            wds.rename(image="jpg;png;jpeg;webp", text="txt"),
            wds.to_tuple("__key__", "image", "text"),
        )
        read = {key: (image.size, text) for key, image, text in pipeline}
        assert read == {i.key: ((32, 24), i.data["caption"]) for i in split_items}

    # open_clip's loader itself, as the trainer calls it: the sample count comes from
    # sizes.json, and 4 workers (its default) pass its "shards >= workers" check.
    args = argparse.Namespace(
        train_data=_brace(folder, "train"),
        val_data=None,
        train_num_samples=None,
        dataset_resampled=False,
        train_data_upsampling_factors=None,
        seed=0,
        batch_size=2,
        world_size=1,
        workers=4,
    )
    info = get_wds_dataset(
        args, lambda image: image.size, is_train=True, tokenizer=lambda t: [t[0]]
    )
    assert info.dataloader.num_samples >= len(by_split["train"])
    args.workers = 0  # iterate in-process
    info = get_wds_dataset(
        args, lambda image: image.size, is_train=True, tokenizer=lambda t: [t[0]]
    )
    images, texts = next(iter(info.dataloader))
    assert len(images) == 2 and all(tuple(size) == (32, 24) for size in images)

    # --dataset-type csv: the TSV's paths open from the release folder.
    monkeypatch.chdir(folder)
    for split, split_items in by_split.items():
        dataset = CsvDataset(
            f"tsv/{split}.tsv",
            lambda image: image.size,
            img_key="filepath",
            caption_key="title",
            tokenizer=lambda texts: texts,
        )
        assert len(dataset) == len(split_items)
        assert dataset.images == [f"images/{i.key}.jpg" for i in split_items]
        assert [dataset[n] for n in range(len(dataset))] == [
            ((32, 24), i.data["caption"]) for i in split_items
        ]
    # The plain files are the shard's bytes.
    item = items[0]
    shard, member = item.data["image_path"].split("#")
    with tarfile.open(folder / shard) as tar:
        assert tar.extractfile(member).read() == (folder / item.data["image_file"]).read_bytes()
    assert verify_release(folder, expected_manifest_sha256=release.manifest_sha256) == []


def _twelve_video_release(session: Session, settings: Settings, *, samples_per_shard: int):
    """Release v1 of 12 videos x 5 pairs, a fifth each to val and test."""
    _many(session, settings, videos=12, pairs=5)
    return create_release(
        session=session,
        version="v1",
        user=None,
        val_fraction=0.2,
        test_fraction=0.2,
        samples_per_shard=samples_per_shard,
    )


def test_clip_benchmark_layout(session: Session, settings: Settings):
    release = _twelve_video_release(session, settings, samples_per_shard=3)
    folder = release_dir(release)
    items = _items(session, release)
    root = folder / "clip_benchmark"
    assert (root / "dataset_type.txt").read_text().strip() == "retrieval"
    classification = folder / "clip_benchmark_classification"
    classnames = (classification / "classnames.txt").read_text().splitlines()
    assert set(classnames) <= {"breast", "renal", "pulmonary"} and len(classnames) >= 2
    templates = (classification / "zeroshot_classification_templates.txt").read_text()
    assert templates.splitlines() == list(TEMPLATES)
    assert "a histopathology image of {c}" in templates
    assert not (classification / "dataset_type.txt").exists()  # classification: the default

    for split in ("val", "test"):
        expected = [i for i in items if i.split == split]
        nshards = int((root / split / "nshards.txt").read_text())
        assert sorted(p.name for p in (root / split).glob("*.tar")) == sorted(
            f"{n}.tar" for n in range(nshards)
        )
        # As CLIP_benchmark's build_wds_dataset reads it (retrieval).
        dataset = wds.WebDataset(
            str(root / split / f"{{0..{nshards - 1}}}.tar"), nodesplitter=lambda src: src
        ).decode(wds.autodecode.ImageHandler("pil", extensions=["webp", "png", "jpg", "jpeg"]))
        read = list(dataset.to_tuple("__key__", "webp;png;jpg;jpeg", "txt"))
        assert [k for k, _, _ in read] == [i.key for i in expected]
        for (_, image, text), item in zip(read, expected, strict=True):
            assert image.size == (32, 24)
            assert text.splitlines() == [" ".join(item.data["caption"].split())]

        labelled = [
            i
            for i in expected
            if i.data["subpathology"] in {"breast", "renal", "pulmonary"}
            and not i.data["not_histology"]
        ]
        if len({i.data["subpathology"] for i in labelled}) < 2:
            assert not (classification / split).exists()
            continue
        nshards = int((classification / split / "nshards.txt").read_text())
        dataset = wds.WebDataset(
            str(classification / split / f"{{0..{nshards - 1}}}.tar"),
            nodesplitter=lambda src: src,
        ).decode(wds.autodecode.ImageHandler("pil", extensions=["webp", "png", "jpg", "jpeg"]))
        read = list(dataset.to_tuple("__key__", "webp;png;jpg;jpeg", "cls"))
        assert [(k, classnames[label]) for k, _, label in read] == [
            (i.key, i.data["subpathology"]) for i in labelled
        ]
    assert not (root / "train").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["clip_benchmark"]["classnames"] == classnames


def test_splits_never_leak_a_video_and_small_releases_have_val_and_test():
    # Many videos: a hash per video.
    pairs = [(v * 10 + n, v, float(n)) for v in range(40) for n in range(5)]
    plan = assign_splits(pairs, val_fraction=0.1, test_fraction=0.1)
    assert plan.method == "video_hash"
    by_video: dict[int, set[str]] = {}
    for pair_id, video_id, _ in pairs:
        by_video.setdefault(video_id, set()).add(plan.by_pair[pair_id])
    assert all(len(s) == 1 for s in by_video.values())
    assert set(plan.by_pair.values()) == {"train", "val", "test"}
    assert assign_splits(pairs, val_fraction=0.1, test_fraction=0.1) == plan

    # A few videos: ranked, still whole videos, val and test never empty.
    for videos in (3, 4, 9):
        pairs = [(v * 10 + n, v, float(n)) for v in range(videos) for n in range(4)]
        plan = assign_splits(pairs, val_fraction=0.05, test_fraction=0.05)
        assert plan.method == "video_rank"
        by_video = {}
        for pair_id, video_id, _ in pairs:
            by_video.setdefault(video_id, set()).add(plan.by_pair[pair_id])
        assert all(len(s) == 1 for s in by_video.values())
        assert set(plan.by_pair.values()) == {"train", "val", "test"}

    # One video: cut by time, earliest train, latest test.
    pairs = [(100 + n, 7, float(40 - n)) for n in range(40)]  # ids run against time
    plan = assign_splits(pairs, val_fraction=0.1, test_fraction=0.1)
    assert plan.method == "time_within_video"
    in_time = [plan.by_pair[p] for p, _, _ in sorted(pairs, key=lambda p: p[2])]
    assert in_time == ["train"] * 32 + ["val"] * 4 + ["test"] * 4
    # Three pairs are enough for all three splits; fractions of 0 stay empty.
    plan = assign_splits(
        [(1, 1, 0.0), (2, 1, 1.0), (3, 1, 2.0)], val_fraction=0.05, test_fraction=0.05
    )
    assert [plan.by_pair[p] for p in (1, 2, 3)] == ["train", "val", "test"]
    plan = assign_splits([(1, 1, 0.0), (2, 1, 1.0)], val_fraction=0, test_fraction=0)
    assert set(plan.by_pair.values()) == {"train"}


def test_one_video_release_has_val_and_test(session: Session, settings: Settings):
    _many(session, settings, videos=1, pairs=6)
    release = create_release(session=session, version="one", user=None)
    folder = release_dir(release)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["split_method"] == "time_within_video"
    assert all(manifest["counts"][s] >= 1 for s in ("train", "val", "test"))
    for split in ("val", "test"):
        assert int((folder / "clip_benchmark" / split / "nshards.txt").read_text()) == 1
    assert "time_within_video" in (folder / "README.md").read_text()


def test_lookup_columns_csv_keys_parquet_lists_and_card_header(
    session: Session, settings: Settings
):
    pairs = _many(session, settings, videos=2, pairs=5)
    release = create_release(session=session, version="v1", user=None)
    folder = release_dir(release)
    items = {i.key: i for i in _items(session, release)}
    by_pair = {p.id: p for p in pairs}

    table = pq.read_table(folder / "metadata.parquet")
    for column in ("pathology", "med_umls_ids", "keywords"):
        assert table.schema.field(column).type == pa.list_(pa.string())
    assert table.schema.field("not_histology").type == pa.bool_()
    for row in table.to_pylist():
        pair = by_pair[row["pair_id"]]
        assert row["subset"] == "quilt_curator"
        assert row["pathology"] == ([pair.subpathology] if pair.subpathology else [])
        assert row["not_histology"] is bool(pair.not_histology)
        assert row["single_wsi"] is None
        assert row["image_file"] == f"images/{row['key']}.jpg"

    # Keys are text with their leading zeros, by csv and by a type-guessing reader told
    # that key is text; text values are quoted in the file.
    raw = (folder / "metadata.csv").read_text(encoding="utf-8")
    assert '\n"000000000","shards/' in raw
    with (folder / "metadata.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["key"] for r in rows] == sorted(items)
    assert rows[0]["caption"] == items[rows[0]["key"]].data["caption"]
    import pandas as pd

    frame = pd.read_csv(folder / "metadata.csv", dtype={"key": str})
    assert list(frame["key"]) == sorted(items)
    assert json.loads(frame["pathology"][0]) == items[frame["key"][0]].data["pathology"]
    assert set(frame["subset"]) == {"quilt_curator"}

    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\n")
    header = yaml.safe_load(readme.split("---\n")[1])
    assert header["license"] == "other"
    assert "zero-shot-image-classification" in header["task_categories"]
    assert "histopathology" in header["tags"] and header["size_categories"] == ["n<1K"]
    files = header["configs"][0]["data_files"]
    counts = json.loads((folder / "manifest.json").read_text())["counts"]
    assert [f["split"] for f in files] == [s for s in ("train", "val", "test") if counts[s]]
    for entry in files:
        matched = list(folder.glob(entry["path"]))
        assert matched and all(p.parent.name == "shards" for p in matched)
    assert "`single_wsi`" in readme and "not guessed" in readme


def test_parent_selection_diff_and_changelog(
    session: Session, settings: Settings, capsys: pytest.CaptureFixture[str]
):
    pairs = _many(session, settings, videos=3, pairs=4)
    v1 = create_release(session=session, version="v1", user=None)
    assert v1.parent_id is None
    assert v1.selection == {
        "statuses": ["approved"],
        "sources": None,
        "min_reviews": None,
        "until": None,
    }
    edited, removed = pairs[1], pairs[2]
    original = edited.caption
    edited.caption = "an edited caption"
    removed.status = PairStatus.rejected
    added = _pair(session, settings, video=pairs[0].video, n=999, reviewer=None)
    same_text = pairs[3]
    same_text.magnification = 40  # not a text: not an edit
    session.commit()

    v2 = create_release(session=session, version="v2", user=None)
    assert v2.parent_id == v1.id
    diff = diff_releases(session=session, old="v1", new="v2")
    assert [e.pair_id for e in diff.added] == [added.id]
    assert [e.pair_id for e in diff.removed] == [removed.id]
    assert [(e.pair_id, e.changed) for e in diff.edited] == [(edited.id, ["caption"])]
    assert diff.edited[0].old_caption == original
    assert diff.edited[0].caption == "an edited caption"
    assert diff.counts["unchanged"] == len(pairs) - 2
    assert diff_releases(session=session, old=None, new="v2").counts == diff.counts

    readme = (release_dir(v2) / "README.md").read_text()
    assert "## Changelog (against v1)" in readme
    assert "1 added, 1 removed, 1 edited" in readme
    assert f"pair {edited.id}, key" in readme
    assert "First release" in (release_dir(v1) / "README.md").read_text()

    session.close()
    assert release_cli.main(["diff", "v1", "v2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("v1 -> v2: 1 added, 1 removed, 1 edited")
    assert {line[0] for line in out[1:]} == {"+", "-", "~"}
    assert release_cli.main(["diff", "v1", "v2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["edited"] == 1
    assert release_cli.main(["diff", "v1", "nope"]) == 1
    assert "no release 'nope'" in capsys.readouterr().err


def test_selection_options(session: Session, settings: Settings, capsys):
    reviewer = _user(session)
    youtube, local = _video(session, 1), _video(session, 2, source_kind="file")
    early = _pair(session, settings, video=youtube, n=1, reviewer=reviewer)
    late = _pair(session, settings, video=youtube, n=2, reviewer=reviewer)
    other = _pair(session, settings, video=local, n=3, reviewer=reviewer)
    late.reviewed_at = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    early.review_count, late.review_count, other.review_count = 2, 2, 1
    session.commit()

    release = create_release(
        session=session,
        version="yt",
        user=None,
        selection=Selection(sources=("youtube",), min_reviews=2),
    )
    assert {i.pair_id for i in _items(session, release)} == {early.id, late.id}
    assert release.selection["sources"] == ["youtube"] and release.selection["min_reviews"] == 2
    with pytest.raises(ReleaseError, match="parent"):
        create_release(session=session, version="x", user=None, parent="nope")

    session.close()
    assert release_cli.main(["create", "june", "--until", "2025-06-30", "--min-shards", "1"]) == 0
    capsys.readouterr()
    with Session(bind=session.get_bind()) as check:
        june = check.scalar(select(Release).where(Release.version == "june"))
        assert june.selection["until"] == "2025-07-01T00:00:00+00:00"
        assert june.parent_id == release.id
        items = check.scalars(select(ReleaseItem).where(ReleaseItem.release_id == june.id))
        assert {i.pair_id for i in items} == {early.id, other.id}
    assert release_cli.main(["create", "bad", "--until", "soon"]) == 1
    assert "not an ISO date" in capsys.readouterr().err


def test_admin_form_diff_page_and_api(admin, client, session: Session, settings: Settings):
    from tests.support.web import hx_post

    pairs = _many(session, settings, videos=2, pairs=3)
    created = hx_post(
        admin,
        "/admin/releases",
        version="v1",
        samples_per_shard="2",
        min_shards="1",
        source="youtube",
        min_reviews="",
        until="",
        parent="",
    )
    assert created.status_code == 200, created.text
    assert "Release v1 created" in created.text
    assert "shards/sizes.json" in created.text and "tsv/train.tsv" in created.text
    assert "images/" not in created.text  # thousands of files are not listed one by one
    v1 = session.scalar(select(Release).where(Release.version == "v1"))
    assert v1.selection["sources"] == ["youtube"]
    bad = hx_post(admin, "/admin/releases", version="v2", min_reviews="many")
    assert bad.status_code == 422 and "whole number" in bad.text and 'value="many"' in bad.text

    pairs[0].caption = "changed <b>caption</b>"
    session.commit()
    assert hx_post(admin, "/admin/releases", version="v2").status_code == 200
    page = admin.get("/admin/releases")
    assert "changes since v1" in page.text
    diff = admin.get("/admin/releases/diff", params={"new": "v2"})
    assert diff.status_code == 200
    assert "against v1" in diff.text and "changed &lt;b&gt;caption&lt;/b&gt;" in diff.text
    assert admin.get("/admin/releases/diff", params={"new": "nope"}).status_code == 404

    headers = {"X-CSRF-Token": admin.token}
    api = admin.get("/api/releases/v2/diff")
    assert api.status_code == 200, api.text
    assert api.json()["counts"]["edited"] == 1 and api.json()["old_version"] == "v1"
    assert api.json()["edited"][0]["changed"] == ["caption"]
    assert admin.get("/api/releases/v2").json()["parent_id"] == v1.id
    made = admin.post(
        "/api/releases",
        json={"version": "v3", "min_shards": 1, "sources": ["youtube"], "until": "2030-01-01"},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    assert made.json()["selection"]["until"] == "2030-01-02T00:00:00+00:00"
    wrong = admin.post(
        "/api/releases",
        json={"version": "v4", "until": "0001-01-01T00:00:00+05:00"},
        headers=headers,
    )
    assert wrong.status_code == 422
