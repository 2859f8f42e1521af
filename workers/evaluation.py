"""Run one evaluation: CLIP_benchmark 1.6.2 (the library, ``clip_benchmark.cli``) on a
checkpoint, its result saved on the ``Evaluation`` row.

``run_evaluation(evaluation_id)`` is what the ``quilt.evaluate`` task (queue ``gpu``) calls:
it resolves the dataset and the model into a CLIP_benchmark argv, runs
``clip_benchmark.cli.main()`` with that argv in this process and stores its metrics, or a
one-line error (never a traceback) when something is wrong with the request.

- **Datasets.** A release is evaluated through the CLIP_benchmark folders it ships
  (app/exporters/clip_benchmark.py): ``clip_benchmark/`` (retrieval) and
  ``clip_benchmark_classification/``; an evaluation folder in that layout
  (``SPLIT/nshards.txt``) is passed as it is, as ``--dataset wds/NAME --dataset_root DIR``.
  An ImageFolder (a folder per class, optionally under ``train/``, ``val/``, ``test/``) is
  written into that layout in a scratch folder first (CLIP_benchmark has no generic
  ImageFolder dataset), with Quilt's class names when its class folders name one of
  Quilt's downstream sets (workers/knowledge/zeroshot_sets.json), else the folder names,
  and Quilt-style templates. A classification folder without templates or class names
  gets them through ``--custom_template_file`` / ``--custom_classname_file``.
- **Checkpoints.** A built-in open_clip name takes the checkpoint as ``--pretrained FILE``.
  For ``local-dir:DIR`` open_clip ignores ``pretrained`` and loads whatever weights DIR
  holds (or none, silently, into a random model); so the model folder is linked into the
  scratch folder with the checkpoint as its ``open_clip_pytorch_model.bin``, and open_clip
  loads exactly that file (strictly: a checkpoint of another architecture fails).
- **Device.** CUDA when torch sees one (mixed precision), else the CPU (``--no_amp``).
  CLIP_benchmark's linear probe runs on CUDA only (``assert device == 'cuda'``): on a CPU
  worker it fails with that reason. It trains on the ``train`` split, or on ``val`` when
  there is none (a release ships val and test only).
- DataLoader workers: ``evaluation_num_workers`` (0: Celery's prefork children may not
  start processes). Recall@k is reported for k in 1, 5, 10 up to the number of images.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from celery.exceptions import SoftTimeLimitExceeded

from app.db import session_scope
from app.models import Evaluation, Release
from app.services import evaluation as evaluations
from app.services.releases import ReleaseError, release_dir
from app.settings import get_settings

_logger = logging.getLogger(__name__)

ZEROSHOT_SETS = Path(__file__).parent / "knowledge" / "zeroshot_sets.json"
RETRIEVAL_DIR = "clip_benchmark"
CLASSIFICATION_DIR = "clip_benchmark_classification"
DATASET_NAME = "wds/quilt_curator"
RECALL_K = (1, 5, 10)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
# The formats CLIP_benchmark's WebDataset loader decodes; others are re-encoded as PNG.
WDS_IMAGE_SUFFIXES = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp"}


class EvaluationFailed(Exception):
    """Why an evaluation cannot run or did not finish, in one line for the row."""


@dataclass
class Dataset:
    root: Path  # CLIP_benchmark's --dataset_root
    kind: str  # retrieval | classification
    samples: int
    classes: list[str] = field(default_factory=list)
    extra_argv: list[str] = field(default_factory=list)


# --- the task's body -----------------------------------------------------------------------


def run_evaluation(evaluation_id: int) -> str:
    """Run the evaluation and record its outcome; returns the row's final status."""
    with session_scope() as s:
        evaluation = s.get(Evaluation, evaluation_id)
        if evaluation is None or evaluation.status == "done":
            return evaluation.status if evaluation else "missing"
        evaluations.mark_running(session=s, evaluation=evaluation)
        request = _Request.of(s, evaluation)
    scratch = get_settings().var_dir / "evaluations" / str(evaluation_id)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        metrics = evaluate(request, scratch)
    except (EvaluationFailed, SoftTimeLimitExceeded) as exc:
        error = str(exc) or "the evaluation ran past its time limit"
        _logger.warning("evaluation %s failed: %s", evaluation_id, error)
        return _finish(evaluation_id, error=error)
    except Exception as exc:  # a fault of the library or the data: one line on the row
        _logger.exception("evaluation %s failed", evaluation_id)
        return _finish(evaluation_id, error=_one_line(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _finish(evaluation_id, metrics=metrics)


def _finish(evaluation_id: int, *, metrics: dict | None = None, error: str | None = None) -> str:
    with session_scope() as s:
        evaluation = s.get(Evaluation, evaluation_id)
        if evaluation is None:
            return "missing"
        if error is not None:
            evaluations.mark_failed(session=s, evaluation=evaluation, error=error)
        else:
            evaluations.mark_done(session=s, evaluation=evaluation, metrics=metrics or {})
        return evaluation.status


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:1000]


@dataclass
class _Request:
    checkpoint: Path
    model: str
    task: str
    split: str
    release_version: str | None
    release_folder: Path | None
    dataset_path: Path | None

    @classmethod
    def of(cls, session: Any, evaluation: Evaluation) -> _Request:
        release_folder, version = None, None
        if evaluation.release_id is not None:
            release = session.get(Release, evaluation.release_id)
            version = release.version if release else str(evaluation.release_id)
            try:
                release_folder = release_dir(release) if release else None
            except ReleaseError:
                release_folder = None
        return cls(
            checkpoint=Path(evaluation.checkpoint_path),
            model=evaluation.model,
            task=evaluation.task,
            split=evaluation.split,
            release_version=version,
            release_folder=release_folder,
            dataset_path=Path(evaluation.dataset_path) if evaluation.dataset_path else None,
        )


def evaluate(request: _Request, scratch: Path) -> dict[str, Any]:
    """CLIP_benchmark's metrics for the request (flat), with ``run``: how it ran."""
    if not request.checkpoint.is_file():
        raise EvaluationFailed(f"checkpoint not found: {request.checkpoint}")
    _check_checkpoint(request.checkpoint)
    dataset = resolve_dataset(request, scratch / "dataset")
    device = _device()
    if request.task == "linear_probe" and device != "cuda":
        raise EvaluationFailed(
            "the linear probe needs a CUDA device: CLIP_benchmark 1.6.2 trains it on CUDA "
            "only; run it on a GPU worker"
        )
    model, pretrained = _model_arguments(request, scratch / "model")
    output = scratch / "result.json"
    argv = [
        "eval",
        "--model_type", "open_clip",
        "--model", model,
        "--pretrained", pretrained,
        "--dataset", DATASET_NAME,
        "--dataset_root", str(dataset.root),
        "--split", request.split,
        "--task", request.task,
        "--batch_size", str(get_settings().evaluation_batch_size),
        "--num_workers", str(get_settings().evaluation_num_workers),
        "--feature_root", str(scratch / "features"),
        "--output", str(output),
        "--seed", "0",
        "--quiet",
        *dataset.extra_argv,
    ]  # fmt: skip
    if request.task == "zeroshot_retrieval":
        ks = [k for k in RECALL_K if k <= dataset.samples] or [1]
        argv += ["--recall_k", *map(str, ks)]
    if request.task == "linear_probe":
        argv += ["--train_split", _probe_train_split(dataset.root, request.split)]
    if device != "cuda":
        argv.append("--no_amp")
    started = time.monotonic()
    result = run_clip_benchmark(argv, output)
    measured, rest = evaluations.split_metrics(result.get("metrics") or {})
    if not measured:
        raise EvaluationFailed("CLIP_benchmark returned no metrics (too few samples per class?)")
    measured_run: dict[str, Any] = {
        "argv": ["clip_benchmark", *argv],
        "device": device,
        "samples": dataset.samples,
        "wall_s": round(time.monotonic() - started, 3),
        **({"classes": dataset.classes} if dataset.classes else {}),
        **rest,
    }
    return {**measured, evaluations.RUN_KEY: measured_run}


def run_clip_benchmark(argv: list[str], output: Path) -> dict[str, Any]:
    """``clip_benchmark eval ...`` in this process: its own argument parser and run."""
    from clip_benchmark import cli  # noqa: PLC0415 - torch only where evaluations run

    with mock.patch.object(sys, "argv", ["clip_benchmark", *argv]):
        try:
            cli.main()
        except SystemExit as exc:  # argparse refused the argv
            raise EvaluationFailed(
                f"CLIP_benchmark refused its arguments (exit {exc.code})"
            ) from exc
        except AssertionError as exc:
            raise EvaluationFailed(f"CLIP_benchmark: {_one_line(exc)}") from exc
        except FileNotFoundError as exc:
            raise EvaluationFailed(f"not found: {exc.filename or exc}") from exc
        except RuntimeError as exc:
            raise EvaluationFailed(_checkpoint_error(exc)) from exc
        except (EOFError, tarfile.ReadError, ValueError) as exc:
            raise EvaluationFailed(_one_line(exc)) from exc
    try:
        return json.loads(output.read_text())
    except (OSError, ValueError) as exc:
        raise EvaluationFailed(f"CLIP_benchmark wrote no result: {_one_line(exc)}") from exc


def _check_checkpoint(path: Path) -> None:
    """Refuse a file that is no checkpoint before CLIP_benchmark meets it (torch's
    unpickler fails on garbage with whatever error the bytes lead to). torch.save writes a
    zip archive; an older pickle-only file is loaded once to tell."""
    not_one = f"the checkpoint is not a PyTorch checkpoint file: {path}"
    if path.suffix == ".safetensors":
        from safetensors import safe_open  # noqa: PLC0415

        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except Exception as exc:
            raise EvaluationFailed(f"{not_one} ({_one_line(exc)})") from exc
        return
    if zipfile.is_zipfile(path):
        return
    import torch  # noqa: PLC0415

    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EvaluationFailed(f"{not_one} ({_one_line(exc)})") from exc


def _checkpoint_error(exc: RuntimeError) -> str:
    """open_clip's strict load says every missing and unexpected key: keep the gist."""
    text = " ".join(str(exc).split())
    if "Error(s) in loading state_dict" in text or "size mismatch" in text:
        return "the checkpoint does not fit the model: " + text[:300]
    if "Invalid magic number" in text or "failed finding central directory" in text:
        return "the checkpoint is not a PyTorch checkpoint file: " + text[:200]
    return _one_line(exc)


def _device() -> str:
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- the model -----------------------------------------------------------------------------


def _model_arguments(request: _Request, folder: Path) -> tuple[str, str]:
    """(--model, --pretrained) so that open_clip loads exactly the checkpoint."""
    if not request.model.startswith(evaluations.LOCAL_DIR):
        return request.model, str(request.checkpoint)
    source = Path(request.model[len(evaluations.LOCAL_DIR) :])
    if not (source / "open_clip_config.json").is_file():
        raise EvaluationFailed(f"the model folder {source} has no open_clip_config.json")
    folder.mkdir(parents=True)
    weights = {".safetensors", ".bin", ".pth", ".pt"}
    for item in source.iterdir():
        # The config, tokenizer files and the like; no other weights, which open_clip
        # would prefer or be torn between.
        if item.suffix not in weights:
            os.symlink(item.resolve(), folder / item.name)
    name = (
        "open_clip_model.safetensors"
        if request.checkpoint.suffix == ".safetensors"
        else "open_clip_pytorch_model.bin"
    )
    os.symlink(request.checkpoint.resolve(), folder / name)
    return evaluations.LOCAL_DIR + str(folder), str(request.checkpoint)


# --- the dataset ---------------------------------------------------------------------------


def resolve_dataset(request: _Request, scratch: Path) -> Dataset:
    kind = "retrieval" if request.task == "zeroshot_retrieval" else "classification"
    if request.release_version is not None:
        return _release_dataset(request, kind)
    folder = request.dataset_path
    if folder is None or not folder.is_dir():
        raise EvaluationFailed(f"evaluation folder not found: {folder}")
    if _has_layout(folder):
        return _layout_dataset(folder, request, kind, scratch)
    if kind == "retrieval":
        raise EvaluationFailed(
            f"{folder} is not in CLIP_benchmark's layout ({request.split}/nshards.txt): an "
            "ImageFolder has classes, not captions; use zeroshot_classification or linear_probe"
        )
    return _image_folder_dataset(folder, request, scratch)


def _has_layout(folder: Path) -> bool:
    return any((folder / split / "nshards.txt").is_file() for split in evaluations.SPLITS)


def _release_dataset(request: _Request, kind: str) -> Dataset:
    if request.release_folder is None or not request.release_folder.is_dir():
        raise EvaluationFailed(f"release {request.release_version} has no folder")
    sub = RETRIEVAL_DIR if kind == "retrieval" else CLASSIFICATION_DIR
    root = request.release_folder / sub
    if not (root / request.split / "nshards.txt").is_file():
        if kind == "classification" and (request.release_folder / RETRIEVAL_DIR).is_dir():
            raise EvaluationFailed(
                f"release {request.release_version} has no classification set for split "
                f"{request.split}: it needs pairs of at least two sub-pathology classes"
            )
        raise EvaluationFailed(
            f"release {request.release_version} has no CLIP_benchmark {kind} split "
            f"{request.split!r} ({sub}/{request.split}/nshards.txt)"
        )
    return _checked(root, request, kind)


def _layout_dataset(folder: Path, request: _Request, kind: str, scratch: Path) -> Dataset:
    """An evaluation folder in CLIP_benchmark's layout, with Quilt's templates (and, when
    it has none, class names from the split's labels) where it lacks them."""
    declared = (
        (folder / "dataset_type.txt").read_text().strip()
        if (folder / "dataset_type.txt").is_file()
        else "classification"
    )
    if (declared == "retrieval") != (kind == "retrieval"):
        raise EvaluationFailed(
            f"{folder} is a {declared} dataset (dataset_type.txt); task {request.task} needs "
            f"a {kind} one"
        )
    if not (folder / request.split / "nshards.txt").is_file():
        raise EvaluationFailed(f"{folder} has no split {request.split!r}")
    dataset = _checked(folder, request, kind)
    if kind == "classification":
        sets = _zeroshot_sets()
        custom: dict[str, Path] = {}
        if not (folder / "zeroshot_classification_templates.txt").is_file():
            custom["--custom_template_file"] = _write_json(
                scratch / "templates.json", {DATASET_NAME: sets["templates"]}
            )
        if not (folder / "classnames.txt").is_file():
            dataset.classes = _class_names([str(i) for i in range(_label_count(folder))], sets)
            custom["--custom_classname_file"] = _write_json(
                scratch / "classnames.json", {DATASET_NAME: dataset.classes}
            )
        for flag, path in custom.items():
            dataset.extra_argv += [flag, str(path)]
    return dataset


def _checked(root: Path, request: _Request, kind: str) -> Dataset:
    samples = _count_samples(root / request.split, "txt" if kind == "retrieval" else "cls")
    if samples == 0:
        raise EvaluationFailed(f"split {request.split!r} of {root} has no samples")
    classes: list[str] = []
    if kind == "classification" and (root / "classnames.txt").is_file():
        classes = [c.strip() for c in (root / "classnames.txt").read_text().splitlines()]
        classes = [c for c in classes if c]
    return Dataset(root=root, kind=kind, samples=samples, classes=classes)


def _count_samples(split_dir: Path, label: str) -> int:
    try:
        shards = int((split_dir / "nshards.txt").read_text().strip())
    except (OSError, ValueError) as exc:
        raise EvaluationFailed(f"unreadable {split_dir / 'nshards.txt'}: {_one_line(exc)}") from exc
    count = 0
    for n in range(shards):
        shard = split_dir / f"{n}.tar"
        try:
            with tarfile.open(shard) as tar:
                count += sum(1 for m in tar if m.name.endswith("." + label))
        except (OSError, tarfile.TarError) as exc:
            raise EvaluationFailed(f"unreadable shard {shard}: {_one_line(exc)}") from exc
    return count


def _label_count(folder: Path) -> int:
    labels: set[int] = set()
    for split in evaluations.SPLITS:
        split_dir = folder / split
        if not (split_dir / "nshards.txt").is_file():
            continue
        for shard in sorted(split_dir.glob("*.tar")):
            with tarfile.open(shard) as tar:
                for member in tar:
                    if member.name.endswith(".cls"):
                        data = tar.extractfile(member)
                        labels.add(int(data.read().decode().strip()) if data else 0)
    return max(labels) + 1 if labels else 0


def _probe_train_split(root: Path, test_split: str) -> str:
    for split in ("train", "val"):
        if split != test_split and (root / split / "nshards.txt").is_file():
            return split
    raise EvaluationFailed(
        f"a linear probe needs a split to train on besides {test_split!r} ({root}/train or "
        f"{root}/val with nshards.txt)"
    )


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _zeroshot_sets() -> dict[str, Any]:
    return json.loads(ZEROSHOT_SETS.read_text())


def _normal(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _class_names(folders: list[str], sets: dict[str, Any]) -> list[str]:
    """Quilt's class names when every folder names a class of one of its downstream sets
    (the smallest such set), else the folder names with ``_`` read as spaces."""
    wanted = {_normal(f) for f in folders}
    best: dict[str, str] | None = None
    for entry in sets["sets"].values():
        classes = {_normal(k): v for k, v in entry["classes"].items()}
        if (
            len(wanted) >= 2
            and wanted <= classes.keys()
            and (best is None or len(classes) < len(best))
        ):
            best = classes
    if best is not None:
        return [best[_normal(f)] for f in folders]
    return [f.replace("_", " ").strip() for f in folders]


def _image_folder_dataset(folder: Path, request: _Request, scratch: Path) -> Dataset:
    """Write an ImageFolder (``CLASS/IMAGE`` or ``SPLIT/CLASS/IMAGE``) into CLIP_benchmark's
    layout; class indices follow the sorted folder names, as torchvision's ImageFolder."""
    import webdataset as wds  # noqa: PLC0415

    split_dirs = {s: folder / s for s in evaluations.SPLITS if (folder / s).is_dir()}
    if not split_dirs:
        if request.task == "linear_probe":
            raise EvaluationFailed(
                f"a linear probe needs a split to train on: put the class folders of "
                f"{folder} under train/ and {request.split}/"
            )
        split_dirs = {request.split: folder}
    if request.split not in split_dirs:
        raise EvaluationFailed(f"{folder} has no {request.split}/ folder")
    names = sorted({c.name for d in split_dirs.values() for c in d.iterdir() if _is_class_dir(c)})
    if len(names) < 2:
        raise EvaluationFailed(
            f"{folder} is neither CLIP_benchmark's layout nor an ImageFolder with at least "
            "two class folders of images"
        )
    index = {name: i for i, name in enumerate(names)}
    samples = 0
    for split, split_dir in split_dirs.items():
        out = scratch / split
        out.mkdir(parents=True, exist_ok=True)
        with wds.ShardWriter(str(out / "%d.tar"), maxcount=10_000, verbose=0) as sink:
            n = 0
            for name in names:
                for image in _images(split_dir / name):
                    suffix, data = _image_bytes(image)
                    sink.write({"__key__": f"s{n:08d}", suffix: data, "cls": index[name]})
                    n += 1
            shards = sink.shard
        (out / "nshards.txt").write_text(f"{shards}\n")
        if split == request.split:
            samples = n
    if samples == 0:
        raise EvaluationFailed(f"{split_dirs[request.split]} holds no images")
    sets = _zeroshot_sets()
    classes = _class_names(names, sets)
    (scratch / "classnames.txt").write_text("\n".join(classes) + "\n")
    (scratch / "zeroshot_classification_templates.txt").write_text(
        "\n".join(sets["templates"]) + "\n"
    )
    return Dataset(root=scratch, kind="classification", samples=samples, classes=classes)


def _is_class_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and any(_images(path))


def _images(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return iter(())
    return iter(
        sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
    )


def _image_bytes(path: Path) -> tuple[str, bytes]:
    suffix = WDS_IMAGE_SUFFIXES.get(path.suffix.lower())
    if suffix:
        return suffix, path.read_bytes()
    from PIL import Image  # noqa: PLC0415

    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(buffer, format="PNG")
    return "png", buffer.getvalue()
