"""Evaluation jobs: CLIP_benchmark 1.6.2 on a real tiny open_clip checkpoint (2-layer towers,
random weights, saved as open_clip_train saves it) and real tiny datasets in CLIP_benchmark's
WebDataset layout and as an ImageFolder, through the task function against the real
databases; the CLI, the comparison page, the API, and that only admins get them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
import webdataset as wds
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy.orm import Session

from app import cli
from app.models import Evaluation, Release, TrainingRun
from app.services import evaluation as evaluations
from app.settings import Settings
from workers import evaluation as worker
from workers import tasks

# A CLIP small enough to run on two cores in well under a second.
TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
RETRIEVAL_KEYS = {f"{side}_retrieval_recall@{k}" for side in ("image", "text") for k in (1, 5, 10)}
CAPTIONS = [
    "hepatocytes with macrovesicular steatosis",
    "a granuloma with multinucleated giant cells",
    "invasive ductal carcinoma of the breast",
    "colonic mucosa with crypt abscesses",
    "renal glomerulus with crescents",
    "squamous cell carcinoma with keratin pearls",
]


def _image(seed: int, size: int = 48) -> bytes:
    image = Image.new("RGB", (size, size), (230 - seed * 9 % 80, 180, 200 + seed * 5 % 50))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x, y = (seed * 7 + i * 11) % size, (seed * 5 + i * 13) % size
        draw.ellipse((x, y, x + 6, y + 5), fill=(90 + seed % 40, 50, 130))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _write_split(root: Path, split: str, samples: list[dict]) -> None:
    (root / split).mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(root / split / "0.tar")) as sink:
        for sample in samples:
            sink.write(sample)
    (root / split / "nshards.txt").write_text("1\n")


def write_retrieval(root: Path, splits: tuple[str, ...] = ("test",), n: int = 12) -> Path:
    for split in splits:
        _write_split(
            root,
            split,
            [
                {"__key__": f"k{i:04d}", "jpg": _image(i), "txt": CAPTIONS[i % len(CAPTIONS)]}
                for i in range(n)
            ],
        )
    (root / "dataset_type.txt").write_text("retrieval\n")
    return root


def write_classification(root: Path, splits: tuple[str, ...] = ("test",)) -> Path:
    for split in splits:
        _write_split(
            root,
            split,
            [{"__key__": f"k{i:04d}", "jpg": _image(i), "cls": i % 3} for i in range(9)],
        )
    (root / "classnames.txt").write_text("adipose\nlymphocytes\ndebris\n")
    (root / "zeroshot_classification_templates.txt").write_text(
        "a histopathology image of {c}\nan H&E image of {c}\n"
    )
    return root


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model folder for local-dir:, checkpoint elsewhere, as open_clip_train writes it)."""
    import open_clip

    base = tmp_path_factory.mktemp("clip")
    folder = base / "model"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY, "preprocess_cfg": {}})
    )
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}")
    checkpoint = base / "logs" / "checkpoints" / "epoch_1.pt"
    checkpoint.parent.mkdir(parents=True)
    # open_clip_train's format: the state dict of a DDP-wrapped model, with the epoch.
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "name": "tiny", "state_dict": state}, checkpoint)
    return folder, checkpoint


def _queue(session: Session, tiny_clip: tuple[Path, Path], **fields) -> int:
    folder, checkpoint = tiny_clip
    values = {"checkpoint": str(checkpoint), "model": f"local-dir:{folder}", **fields}
    sent = evaluations.queue_evaluation(session=session, user=None, enqueue=False, **values)
    return sent.evaluation.id


def _row(session: Session, evaluation_id: int) -> Evaluation:
    session.expire_all()
    return session.get(Evaluation, evaluation_id)


def _assert_unit_metrics(metrics: dict, keys: set[str]) -> None:
    values = {k: v for k, v in metrics.items() if k != "run"}
    assert set(values) == keys
    assert all(0.0 <= v <= 1.0 for v in values.values()), values


def test_the_checkpoint_is_what_open_clip_loads(tiny_clip, tmp_path: Path):
    """For local-dir: open_clip ignores `pretrained`; the worker's model folder makes it
    load exactly the checkpoint."""
    import open_clip

    folder, checkpoint = tiny_clip
    request = worker._Request(checkpoint, f"local-dir:{folder}", "zeroshot_retrieval", "test",
                              None, None, None)  # fmt: skip
    model_name, pretrained = worker._model_arguments(request, tmp_path / "model")
    assert pretrained == str(checkpoint)
    model = open_clip.create_model(model_name)
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[f"module.{key}"]), key


def test_retrieval_on_a_release_split(session: Session, settings: Settings, tiny_clip):
    release = _release_with_layout(session, settings)
    run = TrainingRun(release_id=release.id, model=f"local-dir:{tiny_clip[0]}",
                      checkpoint_path=str(tiny_clip[1]), status="done")  # fmt: skip
    session.add(run)
    session.commit()
    evaluation_id = _queue(
        session, tiny_clip, task="zeroshot_retrieval", release_version=release.version
    )
    assert _row(session, evaluation_id).training_run_id == run.id  # found by its checkpoint
    assert tasks.evaluate(evaluation_id) == "done"
    row = _row(session, evaluation_id)
    assert row.status == "done" and row.error is None
    assert row.started_at is not None and row.finished_at is not None
    samples = row.metrics["run"]["samples"]
    expected = {f"{s}_retrieval_recall@{k}" for s in ("image", "text") for k in (1, 5, 10)
                if k <= samples}  # fmt: skip
    _assert_unit_metrics(row.metrics, expected)
    argv = row.metrics["run"]["argv"]
    assert argv[:2] == ["clip_benchmark", "eval"] and "--task" in argv
    assert argv[argv.index("--task") + 1] == "zeroshot_retrieval"
    assert argv[argv.index("--dataset_root") + 1].endswith("/clip_benchmark")
    assert row.metrics["run"]["device"] in ("cpu", "cuda")


def _release_with_layout(session: Session, settings: Settings) -> Release:
    """A release in the layout the release builder writes (app/exporters/clip_benchmark.py):
    made by create_release when the release code writes it, else written here."""
    release = _real_release(session, settings)
    if release is not None:
        return release
    release = Release(version="v1-layout", status="ready", path="v1-layout", pair_count=12)
    session.add(release)
    session.commit()
    write_retrieval(settings.releases_root / "v1-layout" / "clip_benchmark", ("val", "test"))
    return release


def _real_release(session: Session, settings: Settings) -> Release | None:
    from app.models import PairStatus
    from app.services.releases import create_release, release_dir
    from tests.support.seed import make_pair, make_video

    for v in range(12):
        video = make_video(session, title=f"lecture {v}")
        relative = f"frames/{video.id}/0001.jpg"
        path = settings.media_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_image(v, size=96))
        make_pair(session, video, image_path=relative, caption=CAPTIONS[v % len(CAPTIONS)],
                  status=PairStatus.approved)  # fmt: skip
    try:
        release = create_release(session=session, version="v1", user=None)
    except Exception:  # the release code is not there or takes other arguments
        session.rollback()
        return None
    if not (release_dir(release) / "clip_benchmark" / "test" / "nshards.txt").is_file():
        return None
    return release


def test_classification_on_an_evaluation_folder(
    session: Session, settings: Settings, tiny_clip, tmp_path: Path
):
    folder = write_classification(tmp_path / "cls")
    evaluation_id = _queue(
        session, tiny_clip, task="zeroshot_classification", dataset_path=str(folder)
    )
    assert tasks.evaluate(evaluation_id) == "done"
    row = _row(session, evaluation_id)
    # acc5 needs five classes: below that CLIP_benchmark gives NaN, kept as null in `run`.
    _assert_unit_metrics(row.metrics, {"acc1", "mean_per_class_recall"})
    assert row.metrics["run"]["acc5"] is None
    assert row.metrics["run"]["classes"] == ["adipose", "lymphocytes", "debris"]
    assert row.metrics["run"]["samples"] == 9


def test_an_image_folder_gets_quilts_class_names(
    session: Session, settings: Settings, tiny_clip, tmp_path: Path
):
    folder = tmp_path / "crc"
    for c, name in enumerate(("TUM", "ADI", "LYM")):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            (folder / name / f"{i}.jpg").write_bytes(_image(c * 10 + i))
    (folder / "LYM" / "odd.png").write_bytes(_png())
    evaluation_id = _queue(
        session, tiny_clip, task="zeroshot_classification", dataset_path=str(folder)
    )
    assert tasks.evaluate(evaluation_id) == "done"
    row = _row(session, evaluation_id)
    _assert_unit_metrics(row.metrics, {"acc1", "mean_per_class_recall"})
    # Sorted folders, as torchvision's ImageFolder; names from NCT-CRC-HE's set in Quilt.
    assert row.metrics["run"]["classes"] == [
        "adipose", "lymphocytes", "colorectal adenocarcinoma epithelium"
    ]  # fmt: skip
    assert row.metrics["run"]["samples"] == 10


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (120, 60, 150)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_class_names_fall_back_to_the_folder_names():
    sets = worker._zeroshot_sets()
    assert worker._class_names(["lung_aca", "lung_n"], sets) == [
        "lung adenocarcinoma", "benign lung"
    ]  # fmt: skip
    assert worker._class_names(["fatty_liver", "normal"], sets) == ["fatty liver", "normal"]


def test_a_bad_checkpoint_fails_with_a_clear_error(
    session: Session, settings: Settings, tiny_clip, tmp_path: Path
):
    garbage = tmp_path / "epoch_3.pt"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    dataset = write_retrieval(tmp_path / "ret")
    evaluation_id = _queue(session, tiny_clip, checkpoint=str(garbage),
                           task="zeroshot_retrieval", dataset_path=str(dataset))  # fmt: skip
    assert tasks.evaluate(evaluation_id) == "failed"
    row = _row(session, evaluation_id)
    assert row.metrics == {}
    assert row.error.startswith("the checkpoint is not a PyTorch checkpoint file"), row.error
    assert "Traceback" not in row.error and "\n" not in row.error

    # A real checkpoint of another architecture.
    import open_clip

    other = tmp_path / "other.pt"
    wider = {**TINY, "embed_dim": 24}
    (tmp_path / "wide").mkdir()
    (tmp_path / "wide" / "open_clip_config.json").write_text(json.dumps({"model_cfg": wider}))
    torch.save(open_clip.create_model(f"local-dir:{tmp_path / 'wide'}").state_dict(), other)
    evaluation_id = _queue(session, tiny_clip, checkpoint=str(other),
                           task="zeroshot_retrieval", dataset_path=str(dataset))  # fmt: skip
    assert tasks.evaluate(evaluation_id) == "failed"
    error = _row(session, evaluation_id).error
    assert error.startswith("the checkpoint does not fit the model"), error
    assert "Traceback" not in error and len(error) < 400


def test_requests_that_cannot_run_are_refused_or_fail_clearly(
    session: Session, settings: Settings, tiny_clip, tmp_path: Path
):
    folder, checkpoint = tiny_clip
    with pytest.raises(evaluations.EvaluationError, match="checkpoint not found"):
        _queue(session, tiny_clip, checkpoint=str(tmp_path / "missing.pt"),
               task="zeroshot_retrieval", dataset_path=str(tmp_path))  # fmt: skip
    with pytest.raises(evaluations.EvaluationError, match="a release or on an evaluation"):
        _queue(session, tiny_clip, task="zeroshot_retrieval")
    with pytest.raises(evaluations.EvaluationError, match="no release"):
        _queue(session, tiny_clip, task="zeroshot_retrieval", release_version="v9")
    with pytest.raises(evaluations.EvaluationError, match="must be under"):
        _queue(session, tiny_clip, task="zeroshot_retrieval", dataset_path=str(tmp_path),
               web=True)  # fmt: skip
    # An ImageFolder has no captions.
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "a" / "1.jpg").write_bytes(_image(1))
    evaluation_id = _queue(session, tiny_clip, task="zeroshot_retrieval",
                           dataset_path=str(tmp_path / "imgs"))  # fmt: skip
    assert tasks.evaluate(evaluation_id) == "failed"
    assert "an ImageFolder has classes, not captions" in _row(session, evaluation_id).error


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU refusal only")
def test_the_linear_probe_needs_cuda(
    session: Session, settings: Settings, tiny_clip, tmp_path: Path
):
    folder = write_classification(tmp_path / "cls", ("train", "test"))
    evaluation_id = _queue(session, tiny_clip, task="linear_probe", dataset_path=str(folder))
    assert tasks.evaluate(evaluation_id) == "failed"
    assert "the linear probe needs a CUDA device" in _row(session, evaluation_id).error


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_linear_probe_on_cuda(session: Session, settings: Settings, tiny_clip, tmp_path: Path):
    folder = write_classification(tmp_path / "cls", ("train", "val", "test"))
    evaluation_id = _queue(session, tiny_clip, task="linear_probe", dataset_path=str(folder))
    assert tasks.evaluate(evaluation_id) == "done", _row(session, evaluation_id).error
    row = _row(session, evaluation_id)
    _assert_unit_metrics(row.metrics, {"lp_acc1", "lp_mean_per_class_recall"})
    assert row.metrics["run"]["argv"][row.metrics["run"]["argv"].index("--train_split") + 1] == (
        "train"
    )


def test_cli_evaluates_inline(settings: Settings, tiny_clip, tmp_path: Path, capsys):
    folder, checkpoint = tiny_clip
    dataset = write_retrieval(tmp_path / "ret", n=4)
    code = cli.main(["evaluate", str(checkpoint), "--model", f"local-dir:{folder}",
                     "--dataset", str(dataset), "--inline"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    printed = json.loads(out.out)
    # Four images: recall@5 and @10 would be meaningless (and CLIP_benchmark fails on them).
    assert set(printed) == {"image_retrieval_recall@1", "text_retrieval_recall@1"}
    assert cli.main(["evaluate", "--list"]) == 0
    assert "done" in capsys.readouterr().out
    assert cli.main(["evaluate", str(tmp_path / "nope.pt"), "--model", "ViT-B-32",
                     "--dataset", str(dataset)]) == 1  # fmt: skip
    assert "checkpoint not found" in capsys.readouterr().err


# --- the pages and the API ------------------------------------------------------------------


def _done(session: Session, *, release: Release | None, trained_on: Release | None,
          acc: float, checkpoint: str) -> Evaluation:  # fmt: skip
    run = None
    if trained_on is not None:
        run = TrainingRun(release_id=trained_on.id, model="ViT-B-32", checkpoint_path=checkpoint,
                          status="done")  # fmt: skip
        session.add(run)
        session.flush()
    row = Evaluation(
        training_run_id=run.id if run else None,
        checkpoint_path=checkpoint,
        model="ViT-B-32",
        release_id=release.id if release else None,
        split="test",
        task="zeroshot_retrieval",
        status="done",
        metrics={
            "image_retrieval_recall@1": acc,
            "text_retrieval_recall@1": acc / 2,
            "run": {"samples": 10},
        },  # fmt: skip
    )
    session.add(row)
    session.commit()
    return row


def test_comparison_page_puts_checkpoints_and_releases_side_by_side(
    admin: TestClient, session: Session
):
    v1 = Release(version="v1", status="ready", path="v1")
    v2 = Release(version="v2", status="ready", path="v2")
    session.add_all([v1, v2])
    session.commit()
    _done(session, release=v2, trained_on=v1, acc=0.25, checkpoint="/ck/v1.pt")
    _done(session, release=v2, trained_on=v2, acc=0.5, checkpoint="/ck/v2.pt")
    _done(session, release=v2, trained_on=v2, acc=0.75, checkpoint="/ck/v2b.pt")
    failed = Evaluation(checkpoint_path="/ck/bad.pt", model="ViT-B-32", release_id=v2.id,
                        split="test", task="zeroshot_retrieval", status="failed",
                        error="the checkpoint does not fit the model: <b>x</b>")  # fmt: skip
    session.add(failed)
    session.commit()

    page = admin.get("/admin/evaluations")
    assert page.status_code == 200
    assert "the checkpoint does not fit the model: &lt;b&gt;x&lt;/b&gt;" in page.text
    compare = admin.get("/admin/evaluations/compare")
    assert compare.status_code == 200
    text = compare.text
    assert "image_retrieval_recall@1" in text and "/ck/v2b.pt" in text
    # Releases side by side: v2's checkpoints (best 0.750, mean 0.625) against v1's.
    assert "0.750" in text and "0.625" in text and "0.250" in text

    benchmarks = evaluations.compare(session=session)
    assert len(benchmarks) == 1
    groups = {g.trained_on: g for g in benchmarks[0].by_release}
    assert groups["v2"].best["image_retrieval_recall@1"] == 0.75
    assert groups["v2"].mean["image_retrieval_recall@1"] == pytest.approx(0.625)
    assert groups["v1"].evaluations == 1

    api = admin.get("/api/evaluations/compare")
    assert api.status_code == 200
    assert api.json()[0]["by_release"][0]["trained_on"] == "v1"
    listed = admin.get("/api/evaluations").json()
    assert {e["status"] for e in listed} == {"done", "failed"}


def test_admin_queues_from_the_page_and_the_api(
    admin: TestClient, session: Session, settings: Settings, tiny_clip, monkeypatch
):
    # The web app may name checkpoints and folders only under the allowed roots.
    folder, checkpoint = tiny_clip
    monkeypatch.setattr(settings, "evaluation_dirs", [checkpoint.parents[2]])
    dataset = write_retrieval(checkpoint.parents[2] / "web-ret", n=4)
    sent: list[tuple] = []
    monkeypatch.setattr(evaluations.broker, "enqueue", lambda *a: sent.append(a))
    form = {"csrf_token": admin.token, "checkpoint": str(checkpoint),
            "model": f"local-dir:{folder}", "task": "zeroshot_retrieval", "split": "test",
            "dataset_path": str(dataset), "release": "", "training_run_id": ""}  # fmt: skip
    response = admin.post("/admin/evaluations", data=form)
    assert response.status_code == 303, response.text
    row = session.query(Evaluation).one()
    assert sent == [("quilt.evaluate", row.id)] and row.enqueued_at is not None
    refused = admin.post("/admin/evaluations", data={**form, "dataset_path": "/etc"})
    assert refused.status_code == 422 and "must be under" in refused.text

    body = {"checkpoint": str(checkpoint), "model": f"local-dir:{folder}",
            "task": "zeroshot_retrieval", "dataset_path": str(dataset)}  # fmt: skip
    created = admin.post("/api/evaluations", json=body, headers={"X-CSRF-Token": admin.token})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "queued" and len(sent) == 2
    bad = admin.post("/api/evaluations", json={**body, "dataset_path": "/etc"},
                     headers={"X-CSRF-Token": admin.token})  # fmt: skip
    assert bad.status_code == 422


def test_reviewers_get_403(reviewer: TestClient):
    for path in ("/admin/evaluations", "/admin/evaluations/compare", "/api/evaluations",
                 "/api/evaluations/compare"):  # fmt: skip
        assert reviewer.get(path).status_code == 403, path
    response = reviewer.post("/api/evaluations", json={}, headers={"X-CSRF-Token": reviewer.token})
    assert response.status_code == 403
