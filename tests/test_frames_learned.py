"""The learned histology slot: loads a local checkpoint (a tiny torchvision model and a tiny
open_clip model, both with random weights saved to tmp) and scores through the ensemble.
Random weights prove the loading and inference path, not accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from app.settings import Settings  # noqa: E402
from workers.stages import frames  # noqa: E402
from workers.vision import learned  # noqa: E402
from workers.vision.histology import StainRuleDetector  # noqa: E402


@pytest.fixture(scope="module")
def resnet_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = torchvision.models.get_model("resnet18", weights=None, num_classes=2)
    path = tmp_path_factory.mktemp("w") / "histo_resnet18.pt"
    torch.save({"arch": "resnet18", "state_dict": model.state_dict(),
                "classes": ["other", "histology"], "positive": ["histology"],
                "image_size": 64}, path)  # fmt: skip
    return path


def test_torchvision_checkpoint_scores_and_ensembles(resnet_ckpt: Path) -> None:
    model = learned.load(resnet_ckpt, kind="torchvision", device="auto")
    assert model.device == ("cuda" if torch.cuda.is_available() else "cpu")
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    score = model.score(rgb)
    assert 0.0 <= score <= 1.0 and score == model.score(rgb)
    rule = StainRuleDetector()
    anyof = learned.EnsembleDetector([rule, model], rule="any")
    allof = learned.EnsembleDetector([rule, model], rule="all")
    assert anyof.score(rgb) == max(rule.score(rgb), score)
    assert allof.score(rgb) == min(rule.score(rgb), score)
    assert set(anyof.last_scores) == {rule.name, model.name}


def test_settings_switch_the_ensemble_on(resnet_ckpt: Path) -> None:
    assert isinstance(frames.detector_from_settings(Settings()), StainRuleDetector)
    s = Settings(histology_weights=str(resnet_ckpt), histology_ensemble_rule="majority")
    detector = frames.detector_from_settings(s)
    assert isinstance(detector, learned.EnsembleDetector) and detector.rule == "majority"
    with pytest.raises(FileNotFoundError):
        learned.load(resnet_ckpt.with_name("missing.pt"))


def test_open_clip_zero_shot_checkpoint(tmp_path: Path) -> None:
    open_clip = pytest.importorskip("open_clip")
    config = {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 16,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },  # fmt: skip
    }
    from open_clip.factory import _MODEL_CONFIGS

    _MODEL_CONFIGS["tiny-test-clip"] = config
    model = open_clip.create_model("tiny-test-clip", pretrained=None)
    path = tmp_path / "clip.pt"
    torch.save({"model": "tiny-test-clip", "config": config, "state_dict": model.state_dict(),
                "positive_prompts": ["an H&E histology slide"],
                "negative_prompts": ["a text slide", "a face"]}, path)  # fmt: skip
    clip = learned.load(path, kind="open_clip", device="cpu")
    rgb = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert 0.0 <= clip.score(rgb) <= 1.0
