"""Training runs against the real Postgres: a release from seeded approved pairs, a tiny
open_clip model (2-layer towers, width 32) as a ``local-dir:`` folder, and open_clip's own
trainer in a subprocess on the CPU (a few seconds an epoch)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session

from app import db as app_db
from app.models import Release, Role, TrainingRun, Video
from app.services import training
from app.services.releases import create_release
from app.settings import Settings, get_settings
from tests.conftest import REDIS_URL
from tests.support.processes import app_env, running
from tests.support.seed import make_pair, make_user, write_frame_jpeg
from workers.training import group_members, run_training

TINY_CONFIG = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 32,
            "layers": 2,
            "width": 32,
            "patch_size": 8,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 2,
        },
    },
    "preprocess_cfg": {},
}
LOG_LINE = (
    "2026-11-29,15:47:19 | INFO | Train Epoch: 0 [ 8/32 (25%)] Data (t): 0.003 Batch (t): "
    "0.106, 37.5865/s, 37.5865/s/gpu LR: 0.001000 Logit Scale: 14.271 "
    "Contrastive_loss: 1.4643 (1.5316) Loss: 1.4643 (1.5316)"
)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Postgres only: the trainer's task and the test read the same rows concurrently."""
    return postgres_url


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two shared cores: the trainer (a child, which inherits this) uses one thread.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _seed_release(session: Session, settings: Settings, *, videos: int = 8, per_video: int = 6):
    """Approved pairs over several videos (splits are drawn per video), small shards."""
    for v in range(videos):
        video = Video(
            source_kind="file", source_url=f"/data/{v}.mp4", title=f"Lecture {v}", status="done"
        )
        session.add(video)
        session.commit()
        for n in range(per_video):
            rel = write_frame_jpeg(settings.media_root, f"frames/{video.id}/{n:04d}.jpg")
            make_pair(
                session,
                video,
                image_path=rel,
                caption=f"lecture {v} view {n}: hepatocytes with steatosis",
                status="approved",
            )
    return create_release(session=session, version="v1", user=None, samples_per_shard=4)


@pytest.fixture
def release(session: Session, settings: Settings) -> Release:
    return _seed_release(session, settings)


@pytest.fixture
def tiny_model(settings: Settings) -> str:
    folder = settings.training_root / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / training.MODEL_CONFIG_NAME).write_text(json.dumps(TINY_CONFIG))
    return f"local-dir:{folder}"


def _config(**overrides) -> training.TrainingConfig:
    values = {"epochs": 1, "batch_size": 4, "lr": 1e-3, "workers": 1, "warmup": 1}
    return training.TrainingConfig(**{**values, **overrides})


def _unsent_run(session, release, model: str, **config) -> TrainingRun:
    """A run of the test config (with ``config`` overrides), written but not sent: the
    test runs it."""
    return training.create_run(
        session=session,
        release=release,
        model=model,
        pretrained=None,
        config=_config(**config),
        user=None,
        enqueue=False,
    )


def _reload(run_id: int) -> TrainingRun:
    with app_db.get_sessionmaker()() as s:
        run = s.get(TrainingRun, run_id)
        s.expunge(run)
        return run


# --- no trainer --------------------------------------------------------------------------


def test_parse_open_clip_log_line() -> None:
    parsed = training.parse_log_line(LOG_LINE)
    assert parsed == training.TrainLine(
        epoch=0, samples=8, samples_per_epoch=32, percent=25, loss=1.4643, samples_per_s=37.5865
    )
    evaluated = training.parse_log_line(
        "x | INFO | Eval Epoch: 1 image_to_text_R@1: 0.2500\tclip_val_loss: 1.3000\tepoch: 1.0000"
    )
    assert evaluated.metrics["image_to_text_R@1"] == 0.25
    assert training.parse_log_line("Eval Epoch: 1 [4 / 8]\tClip Loss: 1.2") is None
    assert training.parse_log_line("Start epoch 0") is None


def test_argv_is_built_from_the_release(session, settings, release, tiny_model) -> None:
    data = training.release_data(release)
    train = data.splits["train"]
    assert train.samples >= 8 and len(train.shards) >= 2
    if data.sizes_from == "counted":  # a release from before shards/sizes.json
        assert train.sizes == {p.name: training.count_tar_samples(p) for p in train.shards}
    argv = training.build_argv(
        data=data,
        model=tiny_model,
        pretrained=None,
        config=_config(workers=64),
        device="cpu",
        name="run-1-a1",
        logs=training.logs_dir(),
        python=sys.executable,
    )
    opt = {argv[i]: argv[i + 1] for i in range(3, len(argv) - 1, 2)}
    assert argv[1:3] == ["-m", "open_clip_train.main"]
    assert opt["--train-data"].endswith(f"train-{{000000..{len(train.shards) - 1:06d}}}.tar")
    assert int(opt["--train-num-samples"]) == train.samples
    assert int(opt["--workers"]) == len(train.shards)  # never more workers than shards
    assert (opt["--precision"], opt["--device"], opt["--save-frequency"]) == ("fp32", "cpu", "1")
    assert Path(opt["--logs"]).is_relative_to(settings.training_root)
    if "val" in data.splits:
        assert int(opt["--val-num-samples"]) == data.splits["val"].samples
    cuda = training.build_argv(
        data=data,
        model="ViT-B-32",
        pretrained=None,
        config=_config(),
        device="cuda",
        name="n",
        logs=training.logs_dir(),
        python="python",
    )
    assert cuda[cuda.index("--precision") + 1] == "amp"
    with pytest.raises(training.TrainingError, match="fewer than one batch"):
        training.build_argv(
            data=data,
            model="ViT-B-32",
            pretrained=None,
            config=_config(batch_size=10_000),
            device="cpu",
            name="n",
            logs=training.logs_dir(),
            python="python",
        )


def test_untrusted_model_folders_stay_inside_the_allowed_ones(settings, tmp_path, tiny_model):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / training.MODEL_CONFIG_NAME).write_text(json.dumps(TINY_CONFIG))
    with pytest.raises(training.TrainingError, match="outside"):
        training.check_model(f"local-dir:{outside}", None, trusted=False)
    assert training.check_model(f"local-dir:{outside}", None, trusted=True)[0].endswith("elsewhere")
    assert training.check_model(tiny_model, None, trusted=False)[0] == tiny_model
    with pytest.raises(training.TrainingError, match="outside"):
        training.check_model("ViT-B-32", "/etc/passwd", trusted=False)
    with pytest.raises(training.TrainingError):
        training.check_model("../../etc", None, trusted=False)


def test_a_crashed_workers_run_is_requeued_then_failed(session, settings, release, tiny_model):
    import datetime as dt

    run = _unsent_run(session, release, tiny_model)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    run.status, run.attempts, run.worker, run.lease_expires_at = "running", 1, "gone:1", past
    session.commit()
    report = training.reconcile_runs(session=session)
    session.refresh(run)
    assert (report.requeued, run.status, run.pid) == (1, "queued", None)
    assert "gone:1 stopped answering" in run.error
    assert run.enqueued_at is not None  # sent again through the (filesystem) broker
    run.status, run.attempts, run.lease_expires_at = "running", 2, past  # max_attempts = 2
    session.commit()
    report = training.reconcile_runs(session=session)
    session.refresh(run)
    assert (report.failed, run.status) == (1, "failed")
    assert "gave up after 2 attempts" in run.error
    # A live lease is left alone.
    run.status, run.lease_expires_at = "running", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    session.commit()
    assert training.reconcile_runs(session=session).requeued == 0


# --- the real trainer --------------------------------------------------------------------


def test_one_epoch_through_the_task_function(session, settings, release, tiny_model) -> None:
    run = _unsent_run(session, release, tiny_model)
    assert run_training(run.id) == "done"
    run = _reload(run.id)
    assert run.status == "done", run.error
    assert run.argv[1:3] == ["-m", "open_clip_train.main"] and run.device == "cpu"
    checkpoint = settings.training_root / run.checkpoint_path
    assert checkpoint.name == "epoch_1.pt" and checkpoint.is_file()
    assert run.checkpoint_sha256 == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert run.loss_curve and all(len(point) == 2 for point in run.loss_curve)
    assert run.progress["step"] == run.progress["steps"] > 0
    assert run.wall_s > 0 and run.attempts == 1 and run.pid is None
    assert training.log_tail(run) and any("Train Epoch" in line for line in training.log_tail(run))
    # Everything the run wrote is under training_root.
    assert (settings.training_root / run.output_dir).is_dir()
    # The exported folder loads as local-dir: with the fine-tuned weights.
    model_dir = training.model_dir(run)
    assert model_dir is not None
    import open_clip
    import torch

    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    trained = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["logit_scale"], trained["logit_scale"])
    # A second delivery of the same message does nothing.
    assert run_training(run.id) == "settled"


def test_cancel_mid_epoch_kills_the_process_group(session, settings, release, tiny_model):
    run = _unsent_run(session, release, tiny_model, epochs=500)
    outcome: list[str] = []
    task = threading.Thread(target=lambda: outcome.append(run_training(run.id)))
    task.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = _reload(run.id)
        if current.progress.get("step") and current.pid:
            break
        assert task.is_alive(), outcome
        time.sleep(0.2)
    else:
        pytest.fail("no progress")
    pgid = current.pid
    assert group_members(pgid)
    with app_db.get_sessionmaker()() as s:
        training.cancel_run(session=s, run=s.get(TrainingRun, run.id), user=None)
    task.join(timeout=60)
    assert not task.is_alive() and outcome == ["cancelled"]
    run = _reload(run.id)
    assert run.status == "cancelled" and run.checkpoint_path is None and run.wall_s > 0
    assert group_members(pgid) == []
    assert run.progress["step"] < run.progress["steps"]


def test_a_killed_worker_takes_its_trainer_along_and_the_run_is_requeued(
    session, settings, release, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("QUILT_TRAINING_LEASE_S", "2")
    get_settings.cache_clear()
    run = _unsent_run(session, release, tiny_model, epochs=500)
    env = app_env(settings.database_url, settings.var_dir, QUILT_TRAINING_LEASE_S="2")
    code = f"from workers.training import run_training; run_training({run.id})"
    with running([sys.executable, "-c", code], env=env, log=tmp_path / "task.log") as task:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            current = _reload(run.id)
            if current.progress.get("step") and current.pid:
                break
            assert task.poll() is None, (tmp_path / "task.log").read_text()[-2000:]
            time.sleep(0.2)
        else:
            pytest.fail("no progress")
        os.kill(task.pid, signal.SIGKILL)  # the worker dies; its trainer gets SIGKILL too
        task.wait()
    deadline = time.monotonic() + 30
    while group_members(current.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_members(current.pid) == []
    time.sleep(2.5)  # the lease runs out
    report = training.reconcile_runs(session=session)
    run = _reload(run.id)
    assert report.requeued == 1 and run.status == "queued", (
        report,
        run.status,
        run.error,
        run.worker,
        run.lease_expires_at,
        run.enqueued_at,
    )


# --- through a real Celery worker --------------------------------------------------------


@pytest.mark.slow
def test_a_run_through_a_real_worker_on_redis(
    session, settings, release, tiny_model, tmp_path, monkeypatch
):
    redis.Redis.from_url(REDIS_URL).flushdb()
    monkeypatch.setenv("QUILT_BROKER_URL", REDIS_URL)
    get_settings.cache_clear()
    from app import broker

    broker.client.cache_clear()
    env = app_env(settings.database_url, settings.var_dir, QUILT_BROKER_URL=REDIS_URL)
    command = [sys.executable, "-m", "app.cli", "worker", "-Q", "gpu", "-c", "1"]
    with running(command, env=env, log=tmp_path / "worker.log", stop_timeout_s=20) as worker:
        admin = make_user(session, "ada", Role.admin)
        run = training.create_run(
            session=session,
            release=release,
            model=tiny_model,
            pretrained=None,
            config=_config(),
            user=admin,
        )
        assert run.enqueued_at is not None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            current = _reload(run.id)
            if current.status in training.FINISHED:
                break
            time.sleep(1)
    assert current.status == "done", current.error
    assert current.worker and current.checkpoint_sha256 and current.loss_curve
    broker.client.cache_clear()


def test_quilt_train_inline(session, settings, release, tiny_model, capsys) -> None:
    from app.cli import main

    code = main(
        ["train", "v1", "--model", tiny_model, "--epochs", "1", "--batch-size", "4"]
        + ["--lr", "1e-3", "--workers", "1", "--inline"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "done" in out and "sha256" in out
    assert main(["train", "nope", "--model", tiny_model]) == 1


# --- the admin page and the API ----------------------------------------------------------


def test_admin_pages_chart_cancel_retry_and_download(session, settings, release, tiny_model, admin):
    run = _unsent_run(session, release, tiny_model)
    assert run_training(run.id) == "done"
    page = admin.get(f"/admin/training/{run.id}")
    assert page.status_code == 200
    assert "<polyline" in page.text and "Train Epoch" in page.text
    assert f"/admin/training/{run.id}/checkpoint" in page.text
    download = admin.get(f"/admin/training/{run.id}/checkpoint")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == _reload(run.id).checkpoint_sha256
    assert admin.get("/admin/training/999/checkpoint").status_code == 404
    listing = admin.get("/admin/training")
    assert listing.status_code == 200 and f"#{run.id}" in listing.text

    # The form queues a run (sent through the broker) and the page can cancel it.
    form = {"csrf_token": admin.token, "release": "v1", "model": tiny_model, "epochs": "1"}
    created = admin.post("/admin/training", data={**form, "batch_size": "4", "lr": "0.001"})
    assert created.status_code == 303
    new_id = int(created.headers["location"].rsplit("/", 1)[1])
    assert _reload(new_id).status == "queued" and _reload(new_id).enqueued_at is not None
    bad = admin.post("/admin/training", data={**form, "model": "local-dir:/etc"})
    assert bad.status_code == 422 and "outside" in bad.text
    cancelled = admin.post(f"/admin/training/{new_id}/cancel", data={"csrf_token": admin.token})
    assert cancelled.status_code == 303 and _reload(new_id).status == "cancelled"
    retried = admin.post(f"/admin/training/{new_id}/retry", data={"csrf_token": admin.token})
    assert retried.status_code == 303
    retry_id = int(retried.headers["location"].rsplit("/", 1)[1])
    assert _reload(retry_id).config["retry_of"] == new_id

    # The API: the same rows, and why a request cannot be trained.
    headers = {"X-CSRF-Token": admin.token}
    body = admin.get(f"/api/training/{run.id}").json()
    assert body["status"] == "done" and body["loss_curve"] and body["checkpoint_sha256"]
    refused = admin.post(
        "/api/training",
        json={"release": "v1", "model": "ViT-B-32", "batch_size": 100000},
        headers=headers,
    )
    assert refused.status_code == 422  # out of the schema's range
    refused = admin.post(
        "/api/training",
        json={"release": "v1", "model": "ViT-B-32", "batch_size": 10_000},
        headers=headers,
    )
    assert refused.status_code == 422 and "fewer than one batch" in refused.json()["detail"]
    assert admin.post(f"/api/training/{run.id}/cancel", headers=headers).status_code == 409
