"""Medical text and ROI text of each sentence: rule-based by default, an LLM when configured.

Quilt-1M asked an LLM which parts of a chunk were medical text (what the image shows) and
which were ROI text (where the narrator points). Without an LLM the rules are:

- medical: the sentence has at least one validated KB concept, and its concept density
  (concepts per content word) is at least ``min_concept_density``; a long anecdote that
  happens to name one organ is not a caption;
- ROI: a pointing cue ("here", "in this area", "the arrow", "at higher power", ...).

With an LLM (``LlmConfig``) the sentences go in numbered batches with the few-shot prompt
of ``workers/knowledge/prompts/medical_roi_*``; the answer must be one JSON object
``{"medical": [...], "roi": [...]}``. A sentence the LLM calls medical still needs a
validated concept (pairs are validated against the KB either way). Any failure falls back
to the rules for that batch, and the reason is returned for the stage's stats.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from workers.text.llm import LlmConfig, LlmError, chat

_logger = logging.getLogger(__name__)

PROMPTS = Path(__file__).resolve().parent.parent / "knowledge" / "prompts"
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass
class SentenceView:
    """What an extractor sees of a sentence."""

    text: str
    concepts: int
    content_words: int


@dataclass
class Extraction:
    medical: list[bool]
    roi: list[bool]
    extractor: str  # "rule" or "llm"
    fallback_reason: str | None = None


def rule_extract(
    views: list[SentenceView], roi_patterns: list[re.Pattern[str]], min_concept_density: float
) -> Extraction:
    medical = [
        v.concepts > 0 and v.concepts / max(1, v.content_words) >= min_concept_density
        for v in views
    ]
    roi = [any(p.search(v.text) for p in roi_patterns) for v in views]
    return Extraction(medical, roi, "rule")


def few_shot_messages(sentences: list[str]) -> list[dict[str, str]]:
    system = (PROMPTS / "medical_roi_system.txt").read_text(encoding="utf-8").strip()
    messages = [{"role": "system", "content": system}]
    for line in (PROMPTS / "medical_roi_examples.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            messages.append(json.loads(line))
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, 1))
    messages.append({"role": "user", "content": numbered})
    return messages


def parse_answer(answer: str, n: int) -> tuple[list[bool], list[bool]]:
    """The two flags per sentence from the LLM's JSON; LlmError when it is not usable."""
    match = _JSON_OBJECT.search(answer)
    if match is None:
        raise LlmError("the LLM answer holds no JSON object")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise LlmError("the LLM answer is not valid JSON") from exc
    if not isinstance(data, dict) or not {"medical", "roi"} <= set(data):
        raise LlmError("the LLM answer lacks 'medical' or 'roi'")
    flags = []
    for key in ("medical", "roi"):
        values = data[key]
        if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            raise LlmError(f"the LLM answer's {key!r} is not a list of numbers")
        if any(not 1 <= v <= n for v in values):
            raise LlmError(f"the LLM answer's {key!r} names a sentence that does not exist")
        chosen = set(values)
        flags.append([i in chosen for i in range(1, n + 1)])
    return flags[0], flags[1]


def llm_extract(
    views: list[SentenceView],
    config: LlmConfig,
    roi_patterns: list[re.Pattern[str]],
    min_concept_density: float,
    batch_size: int = 20,
) -> Extraction:
    """The LLM's flags, batch by batch; a failed batch takes the rules' flags."""
    rules = rule_extract(views, roi_patterns, min_concept_density)
    medical: list[bool] = []
    roi: list[bool] = []
    reasons: list[str] = []
    for start in range(0, len(views), batch_size):
        batch = views[start : start + batch_size]
        try:
            answer = chat(config, few_shot_messages([v.text for v in batch]))
            m, r = parse_answer(answer, len(batch))
            # The KB still has the last word on "medical": no concept, no medical text.
            medical.extend(flag and v.concepts > 0 for flag, v in zip(m, batch, strict=True))
            roi.extend(r)
        except LlmError as exc:
            _logger.warning("LLM extraction failed, using the rules: %s", exc.reason)
            reasons.append(exc.reason)
            medical.extend(rules.medical[start : start + batch_size])
            roi.extend(rules.roi[start : start + batch_size])
    if reasons and len(reasons) * batch_size >= len(views):
        return Extraction(medical, roi, "rule", fallback_reason=reasons[0])
    return Extraction(medical, roi, "llm", fallback_reason=reasons[0] if reasons else None)
