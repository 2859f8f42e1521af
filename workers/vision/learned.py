"""The learned histology classifier slot and the detector ensemble.

Quilt-1M (Ikezogwo et al., NeurIPS 2023) found histology frames with an ensemble of image
classifiers (ConvNeXt models it released) and kept a frame when any of them said so. This
module loads such a model from a **local** file (settings ``histology_weights``; nothing
is ever downloaded) and combines it with the weight-free ``StainRuleDetector``.

Checkpoint formats (``histology_weights_kind``):

- ``torchvision``: ``torch.save({"arch": NAME, "state_dict": ..., "classes": [...],
  "positive": ["histology", ...], "image_size": 224, "mean": [...], "std": [...]})`` where
  NAME is a ``torchvision.models`` builder (``convnext_tiny``, ``resnet18``, ...) or
  ``timm:NAME`` for a timm model; the final layer must have ``len(classes)`` outputs.
  The score is the softmax mass of the ``positive`` classes.
- ``open_clip``: ``torch.save({"model": NAME, "config": {...} | None, "state_dict": ...,
  "positive_prompts": [...], "negative_prompts": [...]})``: CLIP zero-shot, the softmax
  over prompts (logit scale from the model) summed over the positive prompts. ``config``
  registers a custom model config (``open_clip.add_model_config``-style dict) first.

Device: ``auto`` takes cuda when torch sees a GPU (the gpu queue's workers), else cpu.

Ensemble rule (``histology_ensemble_rule``): ``any`` (Quilt's OR: the maximum score),
``majority`` (more than half of the detectors at or above the threshold; the score is the
median), ``all`` (the minimum). ``any`` favours recall, and the impurity flags and
reviewers then take out the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

Rule = Literal["any", "majority", "all"]


def _device(name: str) -> str:
    import torch  # noqa: PLC0415

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class TorchvisionClassifier:
    """An image classifier from a local torchvision/timm checkpoint; ``HistologyDetector``."""

    def __init__(self, checkpoint: dict[str, Any], device: str = "auto") -> None:
        import torch  # noqa: PLC0415

        arch = checkpoint["arch"]
        classes = list(checkpoint["classes"])
        if arch.startswith("timm:"):
            import timm  # noqa: PLC0415

            model = timm.create_model(arch[5:], pretrained=False, num_classes=len(classes))
        else:
            import torchvision  # noqa: PLC0415

            model = torchvision.models.get_model(arch, weights=None, num_classes=len(classes))
        model.load_state_dict(checkpoint["state_dict"])
        self.device = _device(device)
        self.model = model.eval().to(self.device)
        positive = set(checkpoint.get("positive", ["histology"]))
        self.positive = [i for i, c in enumerate(classes) if c in positive]
        if not self.positive:
            raise ValueError(f"no positive class among {classes}")
        self.size = int(checkpoint.get("image_size", 224))
        self.mean = torch.tensor(checkpoint.get("mean", [0.485, 0.456, 0.406])).view(3, 1, 1)
        self.std = torch.tensor(checkpoint.get("std", [0.229, 0.224, 0.225])).view(3, 1, 1)
        self.name = f"torchvision:{arch}"

    def score(self, rgb: np.ndarray) -> float:
        import torch  # noqa: PLC0415

        image = cv2.resize(rgb[..., :3], (self.size, self.size), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        x = ((x - self.mean) / self.std).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            probs = torch.softmax(self.model(x).float(), dim=1)[0]
        return round(float(probs[self.positive].sum()), 4)


class ClipZeroShot:
    """CLIP zero-shot with histology prompts from a local open_clip checkpoint."""

    def __init__(self, checkpoint: dict[str, Any], device: str = "auto") -> None:
        import open_clip  # noqa: PLC0415
        import torch  # noqa: PLC0415
        from open_clip.factory import _MODEL_CONFIGS  # noqa: PLC0415

        name = checkpoint["model"]
        if checkpoint.get("config"):
            _MODEL_CONFIGS[name] = checkpoint["config"]
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
        model.load_state_dict(checkpoint["state_dict"])
        self.device = _device(device)
        self.model = model.eval().to(self.device)
        self.preprocess = preprocess
        positive = list(checkpoint.get("positive_prompts", ["an H&E stained histopathology slide"]))
        negative = list(checkpoint.get("negative_prompts", ["a text slide", "a photo of a person"]))
        tokenizer = open_clip.get_tokenizer(name)
        with torch.inference_mode():
            text = self.model.encode_text(tokenizer(positive + negative).to(self.device))
            self.text = text / text.norm(dim=-1, keepdim=True)
        self.n_positive = len(positive)
        self.name = f"open_clip:{name}"

    def score(self, rgb: np.ndarray) -> float:
        import torch  # noqa: PLC0415
        from PIL import Image  # noqa: PLC0415

        x = self.preprocess(Image.fromarray(np.ascontiguousarray(rgb[..., :3])))
        with torch.inference_mode():
            image = self.model.encode_image(x.unsqueeze(0).to(self.device))
            image = image / image.norm(dim=-1, keepdim=True)
            logits = self.model.logit_scale.exp() * image @ self.text.T
            probs = torch.softmax(logits.float(), dim=1)[0]
        return round(float(probs[: self.n_positive].sum()), 4)


def load(path: str | Path, *, kind: str = "torchvision", device: str = "auto") -> Any:
    """Load a learned detector from a local checkpoint (never from a hub)."""
    import torch  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"histology weights not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if kind == "open_clip":
        return ClipZeroShot(checkpoint, device)
    return TorchvisionClassifier(checkpoint, device)


class EnsembleDetector:
    """Several detectors under one documented rule; ``HistologyDetector``."""

    def __init__(self, detectors: list[Any], rule: Rule = "any", threshold: float = 0.5) -> None:
        if rule not in ("any", "majority", "all"):
            raise ValueError(f"unknown ensemble rule: {rule}")
        self.detectors = detectors
        self.rule = rule
        self.threshold = threshold
        self.name = f"ensemble-{rule}(" + ",".join(d.name for d in detectors) + ")"
        self.last_scores: dict[str, float] = {}

    def score(self, rgb: np.ndarray) -> float:
        scores = [float(d.score(rgb)) for d in self.detectors]
        self.last_scores = {d.name: s for d, s in zip(self.detectors, scores, strict=True)}
        if self.rule == "any":
            return max(scores)
        if self.rule == "all":
            return min(scores)
        votes = sum(s >= self.threshold for s in scores)
        median = float(np.median(scores))
        if votes * 2 > len(scores):
            return max(median, self.threshold)
        return min(median, np.nextafter(self.threshold, 0.0))
