"""Release export throughput against `tar` over the same image files.

For each size N (default 10k; 100k with --large): a scratch Postgres database gets N
approved pairs by COPY (200 videos, sub-pathology tags, reviewed_at), each with a small
generated JPEG in the media folder (128x128, a few KB; 512 distinct images cycled so
generating them is quick). Then, both with a warm page cache:

- baseline: ``tar cf`` of the frames folder (the N JPEGs) into the scratch folder;
- release: ``create_release`` (snapshot query, readability pass, shards + sizes.json,
  images/, tsv/, clip_benchmark/, parquet, csv, data card, manifest hashes, release_items
  rows, fsync and chmod of every file).

Reported: pairs/s of each, the ratio release/tar (the goal: >= 0.5), and the release's
size on disk against the tar's.

    python bench/bench_release.py [--sizes 10000,100000] [--json F] [--sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PG_ADMIN_URL = os.environ.get(
    "QUILT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
VIDEOS = 200
DISTINCT_IMAGES = 512
TAGS = ["breast", "renal", "pulmonary", "gastrointestinal", "dermatopathology", ""]


def jpegs(n: int) -> list[bytes]:
    from PIL import Image, ImageDraw  # noqa: PLC0415

    rng = random.Random(7)
    out = []
    for _ in range(n):
        image = Image.new("RGB", (128, 128), (236, 196, 214))
        draw = ImageDraw.Draw(image)
        for _ in range(30):
            x, y = rng.randrange(120), rng.randrange(120)
            draw.ellipse((x, y, x + 8, y + 6), fill=(92, rng.randrange(40, 90), 130))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def seed(url: str, media_root: Path, n: int) -> float:
    """N approved pairs (by COPY on Postgres, executemany on SQLite) and their JPEGs."""
    from sqlalchemy import create_engine, text  # noqa: PLC0415

    t0 = time.perf_counter()
    images = jpegs(DISTINCT_IMAGES)
    for v in range(1, VIDEOS + 1):
        (media_root / "frames" / str(v)).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (media_root / "frames" / str(i % VIDEOS + 1) / f"{i}.jpg").write_bytes(
            images[i % DISTINCT_IMAGES]
        )
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, is_active, created_at) "
                "VALUES ('dr_bench', 'x', 'reviewer', true, '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO videos (source_kind, source_url, title, status, created_at, "
                "updated_at) VALUES ('youtube', :u, :t, 'done', '2026-01-01', '2026-01-01')"
            ),
            [{"u": f"https://youtu.be/v{i}", "t": f"Lecture {i}"} for i in range(VIDEOS)],
        )
    columns = [
        "pair_key", "video_id", "image_path", "start_s", "end_s", "caption", "noisy_text",
        "corrected_text", "medical_text", "roi_text", "umls", "keywords", "magnification",
        "subpathology", "scores", "confidence", "priority", "status", "version",
        "review_count", "not_histology", "reviewed_by_id", "reviewed_at", "created_at",
        "updated_at",
    ]  # fmt: skip

    def row(i: int) -> list[str]:
        v = i % VIDEOS + 1
        return [
            f"{i:064x}", str(v), f"frames/{v}/{i}.jpg", str(i % 600), str(i % 600 + 8),
            f"Hepatocytes with macrovesicular steatosis, case {i}.", "hepatocytes steatosis",
            "hepatocytes with steatosis", "hepatocytes with steatosis", "fat droplets",
            '["C0015695"]', '["steatosis", "hepatocytes"]', str(i % 3), TAGS[i % len(TAGS)],
            "{}", "0.5", "0.5", "approved", "1", "1", "f", "1", "2026-01-02", "2026-01-01",
            "2026-01-01",
        ]  # fmt: skip

    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy(f"COPY pairs ({', '.join(columns)}) FROM STDIN") as copy:
                for start in range(0, n, 50_000):
                    buf = io.StringIO()
                    for i in range(start, min(start + 50_000, n)):
                        values = [r if r != "" else "\\N" for r in row(i)]
                        buf.write("\t".join(values) + "\n")
                    copy.write(buf.getvalue())
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    else:
        with engine.begin() as conn:
            insert = text(
                f"INSERT INTO pairs ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)})"
            )
            for start in range(0, n, 10_000):
                batch = []
                for i in range(start, min(start + 10_000, n)):
                    values = dict(zip(columns, row(i), strict=True))
                    values["not_histology"] = False
                    values["subpathology"] = values["subpathology"] or None
                    batch.append(values)
                conn.execute(insert, batch)
    engine.dispose()
    return time.perf_counter() - t0


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextlib.contextmanager
def database(use_sqlite: bool, folder: Path) -> Iterator[str]:
    if use_sqlite:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    from tests.support.databases import scratch_database  # noqa: PLC0415

    with scratch_database(PG_ADMIN_URL, "quilt_bench_release") as url:
        yield url


def run(n: int, use_sqlite: bool) -> dict:
    from app import db as app_db  # noqa: PLC0415
    from app.migrate import upgrade  # noqa: PLC0415
    from app.settings import get_settings  # noqa: PLC0415

    with (
        tempfile.TemporaryDirectory(prefix="bench_release_") as tmp,
        database(use_sqlite, Path(tmp)) as url,
    ):
        folder = Path(tmp)
        os.environ["QUILT_DATABASE_URL"] = url
        os.environ["QUILT_VAR_DIR"] = str(folder / "var")
        get_settings.cache_clear()
        app_db.reset_engine()
        settings = get_settings()
        settings.media_root.mkdir(parents=True, exist_ok=True)
        upgrade(url)
        seed_s = seed(url, settings.media_root, n)
        print(f"{n:,} pairs seeded in {seed_s:.1f} s", flush=True)
        os.sync()  # the seed's dirty pages are not the release's to flush

        # Warm the page cache for both contenders alike, then the baseline.
        subprocess.run(["tar", "cf", os.devnull, "-C", str(settings.media_root), "frames"])
        t0 = time.perf_counter()
        subprocess.run(
            ["tar", "cf", str(folder / "frames.tar"), "-C", str(settings.media_root), "frames"],
            check=True,
        )
        tar_s = time.perf_counter() - t0
        tar_bytes = (folder / "frames.tar").stat().st_size

        from app.services.releases import create_release, release_dir  # noqa: PLC0415

        t0 = time.perf_counter()
        with app_db.get_sessionmaker()() as session:
            release = create_release(session=session, version="bench", user=None)
            out = release_dir(release)
            count = release.pair_count
        release_s = time.perf_counter() - t0
        release_bytes = du(out)
        for dirpath, _dirs, _files in os.walk(out):  # let the temp folder go
            Path(dirpath).chmod(0o755)
        app_db.reset_engine()
        assert count == n, (count, n)
        return {
            "pairs": n,
            "database": "sqlite" if use_sqlite else "postgres",
            "tar_s": round(tar_s, 2),
            "tar_pairs_per_s": round(n / tar_s),
            "release_s": round(release_s, 2),
            "release_pairs_per_s": round(n / release_s),
            "ratio_release_to_tar": round(tar_s / release_s, 3),
            "tar_mb": round(tar_bytes / 2**20, 1),
            "release_mb": round(release_bytes / 2**20, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000", help="comma-separated pair counts")
    parser.add_argument("--large", action="store_true", help="also 100000 pairs")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of Postgres")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    os.environ.setdefault("QUILT_ENVIRONMENT", "test")
    os.environ.setdefault("QUILT_SECRET_KEY", "bench-secret-not-for-production")
    from bench.report import emit  # noqa: PLC0415

    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.large and 100_000 not in sizes:
        sizes.append(100_000)
    results = [run(n, args.sqlite) for n in sizes]
    lines = []
    for r in results:
        lines.append(
            f"{r['pairs']:>7,} pairs ({r['database']}): tar {r['tar_pairs_per_s']:>7,}/s "
            f"({r['tar_s']} s, {r['tar_mb']} MB)  release {r['release_pairs_per_s']:>6,}/s "
            f"({r['release_s']} s, {r['release_mb']} MB)  ratio {r['ratio_release_to_tar']}"
        )
    emit({"runs": results}, args.json, text="\n".join(lines))
    return 0 if all(r["ratio_release_to_tar"] >= 0.5 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
