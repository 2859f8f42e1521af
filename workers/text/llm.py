"""A minimal client for any OpenAI-compatible chat endpoint (``POST {url}/chat/completions``).

Quilt-1M used an LLM to pull the medical text and the ROI text out of noisy ASR chunks.
Here the LLM is optional: configured by ``settings.llm_url`` / ``llm_model`` /
``llm_api_key``, called with temperature 0 and few-shot prompts kept in
``workers/knowledge/prompts/``, and every failure (connection, timeout, HTTP error,
malformed answer) raises :class:`LlmError` with a one-line reason so that callers fall
back to the rule-based extractor and record why. The standard library's ``urllib`` is
enough: no extra dependency for the workers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class LlmError(Exception):
    """The LLM could not give a usable answer; ``reason`` is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LlmConfig:
    url: str  # base URL, e.g. http://127.0.0.1:8080/v1 (".../chat/completions" is added)
    model: str
    api_key: str = ""
    timeout_s: float = 30.0
    max_tokens: int = 512

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"


def chat(config: LlmConfig, messages: list[dict[str, str]]) -> str:
    """The assistant's reply text for these messages, at temperature 0."""
    body = json.dumps(
        {
            "model": config.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": config.max_tokens,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    request = urllib.request.Request(config.endpoint, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
            payload: Any = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise LlmError(f"HTTP {exc.code} from the LLM endpoint") from exc
    except TimeoutError as exc:
        raise LlmError(f"LLM timed out after {config.timeout_s:g}s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise LlmError(f"LLM timed out after {config.timeout_s:g}s") from exc
        raise LlmError(f"cannot reach the LLM endpoint: {exc.reason}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LlmError("the LLM endpoint did not answer JSON") from exc
    except OSError as exc:
        raise LlmError(f"LLM connection error: {exc}") from exc
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LlmError("the LLM answer has no choices[0].message.content") from exc
    if not isinstance(content, str):
        raise LlmError("the LLM answer content is not text")
    return content
