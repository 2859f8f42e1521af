"""The LLM path of the text stage against a real OpenAI-compatible server on 127.0.0.1.

The peer (``ChatPeer``) is a small HTTP server in a thread that answers
``POST /v1/chat/completions`` deterministically: it reads the numbered sentences of the
last user message and calls a sentence medical when it names one of a few tissue words,
ROI when it says "here". The model name picks a misbehaviour: ``slow`` (answers after the
client's timeout), ``garbage`` (prose, no JSON), ``bad-index`` (a sentence that does not
exist), ``http-500``. Under test: the client, the prompt files, the parsing and the
fallback to the rule-based extractor with its reason recorded.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.text import KB_PATH, transcript_of
from workers.stages.text import TextOptions, process
from workers.text.extract import PROMPTS, few_shot_messages, parse_answer
from workers.text.llm import LlmConfig, LlmError, chat

TISSUE_WORDS = ("liver", "hepatocytes", "glands", "colon", "nuclei", "stroma")


class ChatPeer(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        model = body["model"]
        if self.path != "/v1/chat/completions" or model == "http-500":
            self.send_response(500)
            self.end_headers()
            return
        if model == "slow":
            time.sleep(1.5)
        lines = body["messages"][-1]["content"].splitlines()
        medical, roi = [], []
        for line in lines:
            number, _, text = line.partition(". ")
            if any(w in text.lower() for w in TISSUE_WORDS):
                medical.append(int(number))
            if re.search(r"\bhere\b", text, re.IGNORECASE):
                roi.append(int(number))
        content = json.dumps({"medical": medical, "roi": roi})
        if model == "garbage":
            content = "Sure! The medical sentences are the ones about tissue."
        if model == "bad-index":
            content = json.dumps({"medical": [99], "roi": []})
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        # The "slow" model's client has given up by now, as it should.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)


@pytest.fixture(scope="module")
def peer_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatPeer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def kb_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("kb"))


SENTENCES = [
    "Welcome back to the course.",
    "Here the hepatocytes are swollen around the central vein.",
    "The colon shows crowded glands.",
    "My cat liked the liver slide.",  # the peer says medical; so do the rules (liver)
]


def _options(url: str, model: str, kb_cache: str, timeout: float = 5.0) -> TextOptions:
    return TextOptions(
        kb_path=str(KB_PATH),
        kb_cache_dir=kb_cache,
        llm_url=url,
        llm_model=model,
        llm_api_key="test-key",
        llm_timeout_s=timeout,
    )


def test_client_sends_temperature_zero_and_the_few_shot_prompt(peer_url: str) -> None:
    ChatPeer.requests.clear()
    messages = few_shot_messages(["Here the nuclei are large."])
    answer = chat(LlmConfig(peer_url, "peer", "k"), messages)
    assert json.loads(answer) == {"medical": [1], "roi": [1]}
    [request] = ChatPeer.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer k"
    assert request["body"]["temperature"] == 0
    assert request["body"]["model"] == "peer"
    sent = request["body"]["messages"]
    assert sent[0]["role"] == "system"
    assert sent[0]["content"] == (PROMPTS / "medical_roi_system.txt").read_text().strip()
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[-1]["content"] == "1. Here the nuclei are large."


def test_llm_extractor_decides_medical_and_roi(peer_url: str, kb_cache: str) -> None:
    result = process(transcript_of(SENTENCES), _options(peer_url, "peer", kb_cache))
    assert result.stats["extractor"] == "llm"
    assert result.stats["llm_fallback_reason"] is None
    assert [s.extractor for s in result.sentences] == ["llm"] * 4
    assert [s.is_medical for s in result.sentences] == [False, True, True, True]
    assert [s.is_roi for s in result.sentences] == [False, True, False, False]


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("slow", "LLM timed out after 0.5s"),
        ("garbage", "the LLM answer holds no JSON object"),
        ("bad-index", "the LLM answer's 'medical' names a sentence that does not exist"),
        ("http-500", "HTTP 500 from the LLM endpoint"),
    ],
)
def test_failures_fall_back_to_the_rules_with_the_reason(
    peer_url: str, kb_cache: str, model: str, reason: str
) -> None:
    options = _options(peer_url, model, kb_cache, timeout=0.5)
    result = process(transcript_of(SENTENCES), options)
    assert result.stats["extractor"] == "rule"
    assert result.stats["llm_fallback_reason"] == reason
    rules = process(transcript_of(SENTENCES), _options("", "", kb_cache))
    assert [s.is_medical for s in result.sentences] == [s.is_medical for s in rules.sentences]
    assert [s.is_roi for s in result.sentences] == [s.is_roi for s in rules.sentences]


def test_unreachable_endpoint_is_an_llm_error() -> None:
    with pytest.raises(LlmError) as err:
        chat(LlmConfig("http://127.0.0.1:9/v1", "m", timeout_s=1.0), [])
    assert "cannot reach" in err.value.reason or "timed out" in err.value.reason


def test_parse_answer_accepts_json_in_prose_and_checks_it() -> None:
    assert parse_answer('Answer: {"medical": [2], "roi": []}', 2) == ([False, True], [False, False])
    with pytest.raises(LlmError):
        parse_answer('{"medical": ["2"], "roi": []}', 2)
    with pytest.raises(LlmError):
        parse_answer('{"medical": [1]}', 2)
