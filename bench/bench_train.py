"""Training job overhead: the job against open_clip's trainer started by hand.

A scratch Postgres database gets approved pairs over several videos (a generated JPEG
each) and a release of them (shards + sizes.json). Then, alternating, ``--repeats`` times:

- job: ``workers.training.run_training`` on a queued run, the body of the ``quilt.train``
  task (claim, argv from the release, the trainer in its own process group, log
  following with progress, loss and lease written each second, checkpoint sha256 and the
  local-dir: export), timed from the call to its return;
- by hand: ``python -m open_clip_train.main`` with the same argv (its own --name), timed
  from start to exit.

A first, uncounted round warms the page cache and imports. Samples/s = epochs x train samples / wall time (the same work both ways: model build,
the epochs, validation, checkpoint). Reported: the median of each, and the ratio
job/hand (the goal: >= 0.95, i.e. <= 5% overhead), plus the trainer's own samples/s from
its log lines. The default model is a tiny local-dir: config (2-layer towers, width 64),
so the figure is about the job's overhead, not about the model; pass --model ViT-B-32 on
a GPU machine for a real one (bench/gpu_check.sh).

    python bench/bench_train.py [--pairs 512] [--epochs 2] [--batch-size 32] [--repeats 3]
                                [--model NAME|local-dir:DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PG_ADMIN_URL = os.environ.get(
    "QUILT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TINY = {
    "model_cfg": {
        "embed_dim": 64,
        "vision_cfg": {
            "image_size": 64,
            "layers": 2,
            "width": 64,
            "patch_size": 16,
            "head_width": 32,
        },
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    },
    "preprocess_cfg": {},
}


def seed_release(session, media_root: Path, pairs: int, videos: int = 16):  # noqa: ANN001, ANN201
    import io  # noqa: PLC0415
    import random  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    from PIL import Image, ImageDraw  # noqa: PLC0415

    from app.models import Pair, Video  # noqa: PLC0415
    from app.services.releases import create_release  # noqa: PLC0415

    rng = random.Random(3)
    for v in range(videos):
        video = Video(
            source_kind="file", source_url=f"/data/{v}.mp4", title=f"Lecture {v}", status="done"
        )
        session.add(video)
        session.flush()
        for n in range(pairs // videos):
            image = Image.new("RGB", (96, 96), (236, 196, 214))
            draw = ImageDraw.Draw(image)
            for _ in range(20):
                x, y = rng.randrange(90), rng.randrange(90)
                draw.ellipse((x, y, x + 6, y + 5), fill=(92, rng.randrange(40, 90), 130))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
            rel = f"frames/{video.id}/{n:05d}.jpg"
            (media_root / rel).parent.mkdir(parents=True, exist_ok=True)
            (media_root / rel).write_bytes(buffer.getvalue())
            session.add(
                Pair(
                    pair_key=uuid.uuid4().hex,
                    video_id=video.id,
                    image_path=rel,
                    caption=f"lecture {v} field {n}: granulomas with giant cells",
                    status="approved",
                    start_s=n * 10.0,
                    end_s=n * 10.0 + 5,
                )
            )
    session.commit()
    return create_release(session=session, version="bench", user=None)


def trainer_rate(log: Path) -> float | None:
    from app.services.training import TrainLine, parse_log_line  # noqa: PLC0415

    rates = [
        p.samples_per_s
        for line in log.read_text(errors="replace").splitlines()
        if isinstance(p := parse_log_line(line), TrainLine) and p.samples_per_s
    ]
    return statistics.median(rates[1:] or rates) if rates else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="", help="default: a tiny local-dir: config")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    os.environ.setdefault("QUILT_ENVIRONMENT", "test")
    os.environ.setdefault("QUILT_SECRET_KEY", "bench-secret-key-not-for-production")
    from tests.support.databases import scratch_database  # noqa: PLC0415

    with (
        tempfile.TemporaryDirectory(prefix="bench-train-") as tmp,
        scratch_database(PG_ADMIN_URL, "quilt_bench_train") as url,
    ):
        os.environ["QUILT_DATABASE_URL"] = url
        os.environ["QUILT_VAR_DIR"] = str(Path(tmp) / "var")
        from app import db as app_db  # noqa: PLC0415
        from app.migrate import upgrade  # noqa: PLC0415
        from app.models import Release, TrainingRun  # noqa: PLC0415
        from app.services import training  # noqa: PLC0415
        from app.settings import get_settings  # noqa: PLC0415
        from workers.training import run_training  # noqa: PLC0415

        get_settings.cache_clear()
        app_db.reset_engine()
        upgrade(url)
        settings = get_settings()
        settings.media_root.mkdir(parents=True, exist_ok=True)
        model = args.model
        if not model:
            folder = settings.training_root / "models" / "tiny"
            folder.mkdir(parents=True)
            (folder / training.MODEL_CONFIG_NAME).write_text(json.dumps(TINY))
            model = f"local-dir:{folder}"
        config = training.TrainingConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=1e-4, workers=args.workers
        )
        with app_db.session_scope() as s:
            release = seed_release(s, settings.media_root, args.pairs)
            samples = training.release_data(release).splits["train"].samples
            release_id = release.id

        job_s, hand_s, job_rate, hand_rate, device = [], [], [], [], None
        # Round 0 warms the page cache and Python's imports; it is not counted.
        for i in range(args.repeats + 1):
            with app_db.session_scope() as s:
                run = training.create_run(
                    session=s,
                    release=s.get(Release, release_id),
                    model=model,
                    pretrained=None,
                    config=config,
                    user=None,
                    trusted=True,
                    enqueue=False,
                )
                run_id = run.id
            started = time.monotonic()
            status = run_training(run_id)
            elapsed_job = time.monotonic() - started
            with app_db.session_scope() as s:
                run = s.get(TrainingRun, run_id)
                assert status == "done", run.error
                argv, device = list(run.argv), run.device
                rate_job = trainer_rate(training.log_path(run))
            name_at = argv.index("--name") + 1
            argv[name_at] = f"by-hand-{i}"
            hand_dir = Path(argv[argv.index("--logs") + 1]) / argv[name_at]
            hand_dir.mkdir(parents=True)
            log = hand_dir / "trainer.log"
            started = time.monotonic()
            with log.open("wb") as out:
                subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=hand_dir, check=True)
            if i == 0:
                continue
            hand_s.append(time.monotonic() - started)
            hand_rate.append(trainer_rate(log))
            job_s.append(elapsed_job)
            job_rate.append(rate_job)

    work = args.epochs * samples
    job, hand = work / statistics.median(job_s), work / statistics.median(hand_s)
    report = {
        "model": args.model or "tiny local-dir (2 layers, width 64)",
        "device": device,
        "train_samples": samples,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "job_wall_s": [round(x, 3) for x in job_s],
        "hand_wall_s": [round(x, 3) for x in hand_s],
        "job_samples_per_s": round(job, 2),
        "hand_samples_per_s": round(hand, 2),
        "ratio_job_over_hand": round(job / hand, 4),
        "trainer_logged_samples_per_s": {
            "job": statistics.median([r for r in job_rate if r] or [0]),
            "hand": statistics.median([r for r in hand_rate if r] or [0]),
        },
    }
    print(json.dumps(report, indent=2))
    print(
        f"job {job:.1f} samples/s vs by hand {hand:.1f} samples/s: ratio {job / hand:.3f} "
        f"(goal >= 0.95)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
