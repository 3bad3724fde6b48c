"""bench.judge (PCS): strict answer parsing, the OpenAI-compatible HTTP judge against a real loopback
server, the verdict cache, and the transformers judge on a tiny randomly initialized Qwen3-VL."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.judge import http_backend, image, prompt
from bench.judge.cache import JudgeCache
from bench.judge.core import JudgeError, JudgeModelMissing, JudgeSettings, score_many
from bench.judge.http_backend import OpenAIJudge
from bench.judge.parsing import UnparseableAnswer, parse_score
from bench.judge.prompt import PROMPT_SHA256, SYSTEM_PROMPT
from bench.judge.transformers_backend import QWEN3_VL_REPO, TransformersJudge
from bench.judge.verdict import Verdict
from bench.metrics.pcs import pcs_mean

SEEDS = Path(os.environ.get("AMODAL_BENCH_SEEDS", Path(__file__).resolve().parents[2] / "shared" / "seeds"))
MODEL = "Qwen/Qwen3-VL-32B-Instruct"


# ----------------------------------------------------------------------------- prompt


def test_prompt_file_is_the_papers_prompt_verbatim():
    raw = (Path(prompt.__file__).parent / "pcs_prompt.txt").read_text(encoding="utf-8")
    assert raw == SYSTEM_PROMPT + "\n"  # one trailing newline, not part of the prompt
    assert SYSTEM_PROMPT.startswith("You are an expert 3D visual quality evaluator.")
    assert SYSTEM_PROMPT.endswith("Do not include any text outside the output format.")
    assert '{ "score": <int> }' in SYSTEM_PROMPT
    assert PROMPT_SHA256 == hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()
    seed = SEEDS / "gena3d.txt"
    if not seed.is_file():
        pytest.skip(f"GENA3D text not found at {seed} (set AMODAL_BENCH_SEEDS)")
    assert SYSTEM_PROMPT in seed.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, expected", [
    ('{"score": 85}', 85),
    ('{ "score": 0 }', 0),
    ('  \n{"score":100}\n ', 100),
    ('{"score": 42}\n', 42),
])
def test_parse_score_valid(text, expected):
    value = parse_score(text)
    assert value == expected and type(value) is int


@pytest.mark.parametrize("text, reason", [
    ('Score: {"score": 50}', "text before"),
    ('<think>ok</think>{"score": 50}', "text before"),
    ('{"score": 50} Hope this helps.', "text after"),
    ('{"score": 50}{"score": 60}', "text after"),
    ('```json\n{"score": 50}\n```', "code fence"),
    ('```{"score": 50}```', "code fence"),
    ('{"score": 50', "malformed"),
    ("{'score': 50}", "malformed"),
    ('{"score": NaN}', "malformed"),
    ('{"score": 50, "score": 60}', "malformed"),
    ("", "empty"),
    ("   ", "empty"),
    ('{"score": -1}', "out of range"),
    ('{"score": 101}', "out of range"),
    ('{"score": 50.0}', "float"),
    ('{"score": 5e1}', "float"),
    ('{"score": true}', "bool"),
    ('{"score": "50"}', "str"),
    ('{"score": null}', "NoneType"),
    ('{"score": 50, "reason": "fine"}', "extra keys"),
    ('{"rating": 50}', "missing key"),
    ("[50]", "not an object"),
    ("50", "not an object"),
])
def test_parse_score_refuses(text, reason):
    with pytest.raises(UnparseableAnswer) as info:
        parse_score(text)
    assert isinstance(info.value, ValueError)
    assert info.value.raw == text
    assert reason in info.value.reason, info.value.reason


def test_settings_and_images_are_validated():
    with pytest.raises(ValueError, match="max_attempts"):
        JudgeSettings(max_attempts=0)
    with pytest.raises(ValueError, match="top_p"):
        JudgeSettings(top_p=0)
    rgba = Image.new("RGBA", (8, 8))
    with pytest.raises(ValueError, match="composite"):
        image.as_rgb_image(rgba)
    with pytest.raises(ValueError, match="uint8"):
        image.as_rgb_image(np.zeros((8, 8, 3), np.float32))
    assert image.as_rgb_image(np.zeros((8, 6, 3), np.uint8)).size == (6, 8)


def pcs_summary(verdicts):
    """The report's PCS (bench.metrics.pcs.pcs_mean) over judge verdicts."""
    if isinstance(verdicts, dict):
        verdicts = verdicts.values()
    return pcs_mean(v.score for v in verdicts)


def test_pcs_summary():
    vs = [Verdict(80), Verdict(None, error="x"), Verdict(70)]
    assert pcs_summary(vs) == {"pcs": 75.0, "n_scored": 2, "n_missing": 1}
    assert pcs_summary({"a": vs[0]})["pcs"] == 80.0
    empty = pcs_summary([Verdict(None), Verdict(None)])
    assert math.isnan(empty["pcs"]) and empty["n_scored"] == 0 and empty["n_missing"] == 2


# ----------------------------------------------------------------------------- a real chat server


def answer(text: str, delay: float = 0.0):
    return 200, {"id": "x", "object": "chat.completion",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": "stop"}]}, delay


class ChatServer:
    """A chat-completions server on 127.0.0.1 (port 0) in a thread. `script(n, body)` gives
    (status, payload dict or text, seconds to sleep before answering) for the n-th request."""

    def __init__(self, script):
        self.script = script
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    n = len(server.requests)
                    server.requests.append({"path": self.path, "body": body})
                    server.headers.append(dict(self.headers))
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    status, payload, delay = server.script(n, body)
                    time.sleep(delay)
                    data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left
                finally:
                    with server.lock:
                        server.inflight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def n(self) -> int:
        with self.lock:
            return len(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # loopback requests must not go through a proxy
    monkeypatch.delenv(http_backend.API_KEY_ENV, raising=False)
    servers = []

    def start(script):
        servers.append(ChatServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def views(seed: int = 0, n: int = 8) -> list[Image.Image]:
    """n distinct small RGB images of distinct sizes (so rig order can be checked)."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (24 + k, 32 + k, 3), dtype=np.uint8)) for k in range(n)]


def judge_for(server: ChatServer, **kw) -> OpenAIJudge:
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("backoff_s", 0.01)
    return OpenAIJudge(server.base_url, MODEL, **kw)


def test_http_valid_answer_and_request(serve, monkeypatch):
    monkeypatch.setenv(http_backend.API_KEY_ENV, "sekrit")
    server = serve(lambda n, body: answer('{ "score": 73 }'))
    settings = JudgeSettings(temperature=0.0, top_p=1.0, max_new_tokens=32, seed=7)
    images = views()
    v = judge_for(server, settings=settings).score(images)
    assert v == Verdict(73, ['{ "score": 73 }'], 1, "", MODEL, PROMPT_SHA256,
                        {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 32, "seed": 7,
                         "max_attempts": 3}, False)
    assert server.n == 1
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert server.headers[0]["Authorization"] == "Bearer sekrit"
    body = req["body"]
    assert body["model"] == MODEL
    assert body["temperature"] == 0.0 and body["top_p"] == 1.0
    assert body["max_tokens"] == 32 and body["seed"] == 7
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["role"] == "user"
    assert len(user["content"]) == 8
    assert all(p["type"] == "image_url" for p in user["content"])  # images only, no extra text
    for part, im in zip(user["content"], images):
        url = part["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        png = base64.b64decode(url.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        got = Image.open(io.BytesIO(png))
        assert got.size == im.size  # rig order preserved
        assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(im))
    assert "sekrit" not in repr(judge_for(server)) + json.dumps(v.to_dict())


def test_http_malformed_then_valid_is_retried(serve):
    server = serve(lambda n, body: answer('Sure! {"score": 10}' if n == 0 else '{"score": 64}'))
    v = judge_for(server).score(views())
    assert v.score == 64 and v.attempts == 2 and v.error == ""
    assert v.raw == ['Sure! {"score": 10}', '{"score": 64}']
    assert [r["body"]["seed"] for r in server.requests] == [0, 1]  # attempt k: seed + k


def test_http_always_out_of_range_gives_no_score(serve):
    server = serve(lambda n, body: answer('{"score": 101}'))
    v = judge_for(server, settings=JudgeSettings(max_attempts=4)).score(views())
    assert v.score is None  # never 0
    assert v.attempts == 4 and server.n == 4
    assert v.raw == ['{"score": 101}'] * 4
    assert "unparseable" in v.error and "out of range" in v.error
    assert pcs_summary([v, Verdict(80)]) == {"pcs": 80.0, "n_scored": 1, "n_missing": 1}


def test_http_timeout_is_retried_then_names_url_and_model(serve):
    server = serve(lambda n, body: answer('{"score": 50}', delay=1.5))
    judge = judge_for(server, timeout_s=0.3, max_retries=1)
    t0 = time.monotonic()
    v = judge.score(views())
    assert time.monotonic() - t0 < 1.4  # did not wait for the slow server
    assert v.score is None and v.raw == [] and v.attempts == 1
    assert judge.url in v.error and MODEL in v.error and "timed out" in v.error
    assert "2 request(s)" in v.error
    deadline = time.monotonic() + 2
    while server.n < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.n == 2


def test_http_server_errors_then_success(serve):
    def script(n, body):
        if n == 0:
            return 500, {"error": "boom"}, 0.0
        if n == 1:
            return 429, {"error": "slow down"}, 0.0
        if n == 2:
            return 503, "not ready", 0.0
        return answer('{"score": 91}')

    server = serve(script)
    v = judge_for(server, max_retries=3).score(views())
    assert v.score == 91 and v.raw == ['{"score": 91}'] and v.attempts == 1
    assert server.n == 4


def test_http_500_forever_is_an_error_and_not_cached(serve, tmp_path):
    healthy = threading.Event()
    server = serve(lambda n, body: answer('{"score": 33}') if healthy.is_set() else (500, {"e": 1}, 0.0))
    cache = JudgeCache(tmp_path / "cache")
    judge = judge_for(server, max_retries=2, cache=cache)
    v = judge.score(views())
    assert v.score is None and v.raw == []
    assert "HTTP 500" in v.error and judge.url in v.error and MODEL in v.error
    assert server.n == 3  # 1 + max_retries
    assert list(cache.directory.glob("*.json")) == []  # transport errors are never cached
    healthy.set()
    v2 = judge.score(views())
    assert v2.score == 33 and not v2.cached and server.n == 4


def test_http_client_error_is_not_retried(serve):
    server = serve(lambda n, body: (400, {"error": {"message": "too many images"}}, 0.0))
    judge = judge_for(server, max_retries=3)
    with pytest.raises(JudgeError, match="HTTP 400") as info:
        judge.ask(views())
    assert "not retried" in str(info.value) and "too many images" in str(info.value)
    assert server.n == 1
    v = judge.score(views())
    assert v.score is None and "HTTP 400" in v.error and v.attempts == 1 and server.n == 2


def test_http_connection_refused(monkeypatch):
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = OpenAIJudge(f"http://127.0.0.1:{port}/v1/", MODEL, timeout_s=2, max_retries=2, backoff_s=0.01)
    assert judge.url == f"http://127.0.0.1:{port}/v1/chat/completions"
    with pytest.raises(JudgeError) as info:
        judge.ask(views(n=1))
    assert judge.url in str(info.value) and "connection failed" in str(info.value)
    assert "3 request(s)" in str(info.value)
    v = judge.score(views(n=1))
    assert v.score is None and judge.url in v.error and MODEL in v.error


def test_score_many_bounds_concurrency(serve):
    server = serve(lambda n, body: answer(f'{{"score": {len(body["messages"][1]["content"])}}}', delay=0.15))
    items = {f"obj{k}": views(seed=k, n=k + 1) for k in range(6)}
    out = score_many(judge_for(server), items, concurrency=2, progress=False)
    assert list(out) == list(items)  # keyed and ordered like the input
    assert [out[k].score for k in items] == [1, 2, 3, 4, 5, 6]
    assert server.n == 6
    assert server.max_inflight == 2


# ----------------------------------------------------------------------------- cache


def test_cache_hits_and_misses(serve, tmp_path):
    server = serve(lambda n, body: answer('{"score": 55}'))
    cache = JudgeCache(tmp_path / "cache")
    judge = judge_for(server)
    images = views()
    first = judge.score(images, cache=cache)
    assert first.score == 55 and not first.cached and server.n == 1
    files = list(cache.directory.glob("*.json"))
    assert len(files) == 1 and not list(cache.directory.glob("*.tmp"))
    again = judge.score([im.copy() for im in images], cache=cache)
    assert server.n == 1  # no request
    assert again.cached and (again.score, again.raw, again.attempts) == (55, first.raw, 1)
    assert again.prompt_sha256 == PROMPT_SHA256 and again.model == MODEL
    many = score_many(judge, {"a": images}, cache=cache, progress=False)
    assert many["a"].cached and server.n == 1

    judge_for(server, settings=JudgeSettings(seed=1)).score(images, cache=cache)
    assert server.n == 2  # other settings: miss
    judge_for(server, settings=JudgeSettings(temperature=0.5)).score(images, cache=cache)
    assert server.n == 3
    judge.score(views(seed=9), cache=cache)
    assert server.n == 4  # other images: miss
    judge.score(images[::-1], cache=cache)
    assert server.n == 5  # same images, other order: miss
    OpenAIJudge(server.base_url, "other-model", backoff_s=0.01).score(images, cache=cache)
    assert server.n == 6  # other model: miss

    class OtherPrompt(OpenAIJudge):
        system_prompt = SYSTEM_PROMPT + " Be harsh."

    other = OtherPrompt(server.base_url, MODEL, backoff_s=0.01).score(images, cache=cache)
    assert server.n == 7  # other prompt hash: miss
    assert other.prompt_sha256 != PROMPT_SHA256
    assert server.requests[-1]["body"]["messages"][0]["content"].endswith("Be harsh.")
    assert judge.score(images, cache=cache).cached and server.n == 7


def test_cache_keeps_final_unparseable_verdicts(serve, tmp_path):
    server = serve(lambda n, body: answer("I cannot rate this."))
    judge = judge_for(server, settings=JudgeSettings(max_attempts=2), cache=JudgeCache(tmp_path))
    v = judge.score(views())
    assert v.score is None and server.n == 2 and not v.cached
    again = judge.score(views())
    assert again.cached and again.score is None and again.raw == v.raw and again.error == v.error
    assert server.n == 2


def test_cache_key_is_the_documented_hash():
    images = views(n=2)
    settings = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 32, "seed": 0, "max_attempts": 3}
    hashes = [hashlib.sha256(image.png_bytes(im)).hexdigest() for im in images]
    blob = json.dumps(["m", "p", hashes, settings], sort_keys=True).encode()
    assert JudgeCache.key("m", "p", images, settings) == hashlib.sha256(blob).hexdigest()


# ----------------------------------------------------------------------------- transformers judge

PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
# A Qwen-VL style ChatML template (the structure of Qwen3-VL's own: list content, one
# vision_start/image_pad/vision_end per image, the assistant turn opened for generation).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}" + PLACEHOLDER
    + "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tiny_qwen3_vl(tmp_path_factory) -> Path:
    """A randomly initialized Qwen3-VL (1 text layer, 1 vision block, width 32) with a locally
    built processor (Qwen2VLImageProcessor, a WordLevel tokenizer), saved with save_pretrained.
    Its vocabulary has no "score" token and decoding joins tokens with spaces, so it can never
    produce a parseable answer."""
    pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
    )
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
    vocab: dict[str, int] = {}
    for tok in special + ["[UNK]", "system", "user", "assistant"] + [chr(c) for c in range(33, 127)]:
        vocab.setdefault(tok, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(special)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token="[UNK]")
    patch = dict(patch_size=16, merge_size=2, temporal_patch_size=2)
    image_processor = Qwen2VLImageProcessor(**patch, size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64})
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer, video_processor=Qwen3VLVideoProcessor(**patch), chat_template=CHAT_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen3VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                         max_position_embeddings=1024,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3], "mrope_interleaved": True}),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=32,
                           num_position_embeddings=64, deepstack_visual_indexes=[0]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config).eval()
    path = tmp_path_factory.mktemp("models") / "tiny-qwen3-vl"
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_transformers_missing_model_path(tmp_path):
    missing = tmp_path / "Qwen3-VL-32B-Instruct"
    with pytest.raises(JudgeModelMissing) as info:
        TransformersJudge(missing)
    assert str(missing) in str(info.value) and QWEN3_VL_REPO in str(info.value)
    assert "does not exist" in str(info.value)
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        TransformersJudge(missing)


def test_transformers_judge_tiny_qwen3_vl(tiny_qwen3_vl):
    judge = TransformersJudge(tiny_qwen3_vl, settings=JudgeSettings(max_new_tokens=8))
    assert judge.model_id == "transformers:tiny-qwen3-vl"
    text = judge.chat_text(8)
    assert SYSTEM_PROMPT in text and text.count(PLACEHOLDER) == 8
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)) for _ in range(8)]
    inputs = judge.inputs(images)
    grid = inputs["image_grid_thw"]
    assert tuple(grid.shape) == (8, 3)
    image_pad = judge.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == image_pad).sum()) == int(grid.prod(-1).sum()) // 4  # merge 2x2
    assert inputs["pixel_values"].shape[0] == int(grid.prod(-1).sum())

    v = judge.score(images)
    assert v.score is None  # a random model's answer is unparseable: missing, never 0
    assert v.attempts == 3 and len(v.raw) == 3 and "unparseable" in v.error
    assert len(set(v.raw)) == 1 and v.raw[0].strip()  # greedy: the same non-empty answer each time
    assert v.model == judge.model_id and v.prompt_sha256 == PROMPT_SHA256

    sampling = TransformersJudge(tiny_qwen3_vl, settings=JudgeSettings(temperature=1.0, max_new_tokens=6))
    assert sampling.ask(images, attempt=1) == sampling.ask(images, attempt=1)  # seeded sampling


# ------------------------------------------------------------- end to end: run, judge, leaderboard


def test_cli_pcs_over_a_runs_saved_renders(serve, gso_root, tmp_path):
    """A real run with --save-renders on two GSO objects, `amodal-bench pcs` against the loopback
    server (one object answers 77, the other never parses), then the leaderboard's PCS."""
    import subprocess
    import sys

    import pandas as pd
    from conftest import one_view_protocol

    from bench.run.appearance import AppearanceConfig
    from bench.run.runner import RunConfig, run

    objects = ["Diet_Pepsi_Soda_Cola12_Pack_12_oz_Cans", "Room_Essentials_Salad_Plate_Turquoise"]
    out = tmp_path / "run"
    quiet = AppearanceConfig(fid_extractors=[], clip_score=False, lpips_nets=[])
    run(RunConfig(out=str(out), protocol=one_view_protocol(tmp_path), methods=["oracle"],
                  data=str(gso_root), jobs=1, cache=str(tmp_path / "cache"), sheets=0,
                  object_ids=objects, appearance=quiet, save_renders=True), progress=False)
    pngs = sorted((out / "renders").rglob("view_*.png"))
    assert len(pngs) == 2 * 4  # amodal3r-gso eval rig: 4 views per object
    first_image_of = {}

    def script(n, body):
        key = body["messages"][1]["content"][0]["image_url"]["url"][-64:]
        first_image_of.setdefault(key, len(first_image_of))
        return answer('{"score": 77}' if first_image_of[key] == 0 else "I think 77.")

    server = serve(script)
    cmd = [sys.executable, "-m", "bench.cli", "pcs", str(out), "--endpoint", server.base_url,
           "--model", "judge-x", "--cache", str(tmp_path / "judge-cache"), "--max-attempts", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert server.n == 1 + 2  # one valid answer, one object asked twice
    row = pd.read_csv(out / "leaderboard.csv").iloc[0]
    assert row.pcs == 77.0 and row.pcs_n == 1 and "judge-x" in row.pcs_judge
    assert "pcs: 1 of 2 generations without a judge score" in row.notes
    verdicts = sorted((out / "pcs").rglob("*.json"))
    assert len(verdicts) == 2
    bad = [json.loads(v.read_text()) for v in verdicts if json.loads(v.read_text())["score"] is None][0]
    assert bad["raw"] == ["I think 77.", "I think 77."] and bad["model"] == "judge-x"
    # a second report pays the judge nothing
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and server.n == 3
    # a run without saved renders: one clear line
    bare = tmp_path / "bare"
    run(RunConfig(out=str(bare), protocol=one_view_protocol(tmp_path), methods=["oracle"],
                  data=str(gso_root), jobs=1, cache=str(tmp_path / "cache"), sheets=0,
                  object_ids=objects[:1], appearance=quiet), progress=False)
    r = subprocess.run([*cmd[:4], str(bare), *cmd[5:]], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--save-renders" in r.stderr and len(r.stderr.strip().splitlines()) == 1
