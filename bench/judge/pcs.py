"""PCS: GENA3D's VLM-judged Perceptual Coherence Score, with an OpenAI-compatible HTTP judge
(e.g. vLLM serving Qwen3-VL) or a local transformers judge, retries, a verdict cache and strict
answer parsing.

Definition (GENA3D supplement A.3): each generated object is rendered at the 8 CLIP-score rig
poses (radius 2, FoV 40 deg, elevation 15 deg, azimuths 0, 45, ..., 315 deg); the 8 images are
given to Qwen3-VL 32B together with a system prompt that asks for multi-view coherence and
appearance quality as `{ "score": <int> }` in 0-100; PCS = the mean of the per-object scores.
No code is public. What we fix, exactly:

* Prompt. `SYSTEM_PROMPT` is the paper's prompt verbatim, read from `bench/pcs_prompt.txt`
  (the one place it lives; its single trailing newline is not part of the prompt).
  `PROMPT_SHA256` = sha256 of its UTF-8 bytes; every verdict records it. The paper's text
  extraction is one line: any line breaks of the original prompt are lost and we do not guess
  them.
* Request. One chat with two messages: the system message = the prompt, and one user message
  made of the images ONLY, in rig order, with NO extra instruction text (the paper gives only
  the system prompt and the images). HTTP: OpenAI chat-completions, each image a PNG data URL
  (`data:image/png;base64,...`). transformers: the model's own chat template, the system
  content as one text part and the user content as one `{"type": "image"}` part per view.
* Decoding (`JudgeSettings`): temperature 0 (greedy), top_p 1, at most 32 new tokens, seed 0.
  Attempt k (0-based) is sent with seed + k, so a retry at temperature > 0 is a new but
  reproducible sample (at temperature 0 the seed does not matter). Anything not set here
  (e.g. top_k, repetition_penalty) is the server's / model's generation_config default; those
  only act when sampling.
* Parsing (`parse_score`) is strict, as the prompt demands ("Do not include any text outside
  the output format"): the answer stripped of surrounding whitespace must be exactly one JSON
  object with exactly one key "score" whose value is a JSON integer in [0, 100]. We do NOT
  salvage a score from surrounding text, code fences, floats (50.0), strings ("50") or
  booleans: such answers are unparseable.
* Retries (`Judge.score`): an unparseable answer is asked again, up to `max_attempts` answers
  in all; if none parses, the verdict has score None (NEVER 0) with every raw answer kept.
  Transport failures are retried inside the HTTP backend (timeouts, connection errors, HTTP
  429 and 5xx; exponential backoff); when they persist the verdict has score None and an error
  naming the endpoint URL and the model id. Other HTTP errors (4xx) are not retried.
* PCS (`pcs_summary`) = the arithmetic mean of the valid scores over objects (NaN when there is
  none), reported with the counts of scored and missing objects. Missing verdicts are left out
  of the mean, never counted as 0; a report must show n_missing beside the PCS.
* Cache (`JudgeCache`): key = sha256 of the JSON list [model id, prompt sha256, [sha256 of each
  image's PNG bytes as we encode it (PIL, default settings), in order], settings dict]. Parsed
  scores and final unparseable verdicts are cached; transport errors never are. A hit returns
  the stored verdict with `cached=True`, so re-running a report never pays the judge twice.

Images: PIL images in mode RGB, or (H, W, 3) uint8 arrays. RGBA (and other modes) raise
ValueError: composite the renders on the protocol background first (what colour transparent
pixels hold would otherwise leak into the judge's view).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.files import atomic_write_bytes

__all__ = [
    "API_KEY_ENV",
    "PROMPT_SHA256",
    "QWEN3_VL_REPO",
    "SYSTEM_PROMPT",
    "Judge",
    "JudgeCache",
    "JudgeError",
    "JudgeModelMissing",
    "JudgeSettings",
    "OpenAIJudge",
    "TransformersJudge",
    "UnparseableAnswer",
    "Verdict",
    "as_rgb_image",
    "parse_score",
    "pcs_summary",
    "png_bytes",
    "score_many",
]

PROMPT_FILE = "pcs_prompt.txt"
API_KEY_ENV = "AMODAL_BENCH_JUDGE_API_KEY"
QWEN3_VL_REPO = "Qwen/Qwen3-VL-32B-Instruct"  # the judge GENA3D names (Qwen3-VL 32B)
SCORE_MIN, SCORE_MAX = 0, 100


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_prompt() -> str:
    text = resources.files("bench.judge").joinpath(PROMPT_FILE).read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


SYSTEM_PROMPT: str = _load_prompt()
PROMPT_SHA256: str = _sha256(SYSTEM_PROMPT.encode("utf-8"))


# ----------------------------------------------------------------------------- parsing


class UnparseableAnswer(ValueError):
    """The judge's answer is not exactly `{"score": <int in 0..100>}`. `.raw` is the answer as
    received, `.reason` why it was refused."""

    def __init__(self, reason: str, raw: str):
        self.reason = reason
        self.raw = raw
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        super().__init__(f"unparseable judge answer ({reason}): {shown!r}")


def _no_constants(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate keys {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return dict(pairs)


def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants)


def parse_score(text: str) -> int:
    """The score in a judge answer, strictly: `text` stripped of surrounding whitespace must be
    exactly one JSON object with the single key "score" and an integer value in [0, 100]
    (`{ "score": 85 }`). Raises UnparseableAnswer otherwise (text around the JSON, code fences,
    malformed JSON, missing or extra keys, non-int value, out of range). Nothing is salvaged."""
    if not isinstance(text, str):
        raise UnparseableAnswer(f"answer is {type(text).__name__}, not text", repr(text))
    s = text.strip()
    if not s:
        raise UnparseableAnswer("empty answer", text)
    if s.startswith("```") or s.endswith("```"):
        raise UnparseableAnswer("code fence around the answer", text)
    dec = _decoder()
    try:
        obj, end = dec.raw_decode(s)
    except ValueError as e:  # json.JSONDecodeError is a ValueError, so are the hooks' errors
        start = s.find("{")
        if start > 0:
            try:
                dec.raw_decode(s, start)
            except ValueError:
                pass
            else:
                raise UnparseableAnswer("text before the JSON object", text) from None
        raise UnparseableAnswer(f"malformed JSON: {e}", text) from None
    if end != len(s):
        raise UnparseableAnswer("text after the JSON value", text)
    if not isinstance(obj, dict):
        raise UnparseableAnswer(f"JSON {type(obj).__name__}, not an object", text)
    if "score" not in obj:
        raise UnparseableAnswer(f"missing key 'score' (keys: {sorted(obj)})", text)
    if len(obj) != 1:
        raise UnparseableAnswer(f"extra keys {sorted(k for k in obj if k != 'score')}", text)
    value = obj["score"]
    if type(value) is not int:  # bool is an int subclass: refused too
        raise UnparseableAnswer(f"score is {type(value).__name__} {value!r}, not an int", text)
    if not SCORE_MIN <= value <= SCORE_MAX:
        raise UnparseableAnswer(f"score {value} out of range [{SCORE_MIN}, {SCORE_MAX}]", text)
    return value


# ----------------------------------------------------------------------------- images


def as_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A PIL RGB image from a PIL RGB image or an (H, W, 3) uint8 array; anything else raises
    ValueError (RGBA: composite it on the protocol background first)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"judge images as arrays must be (H, W, 3) uint8, got {image.dtype} "
                             f"{image.shape}")
        return Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise ValueError(f"judge images must be PIL images or uint8 arrays, got {type(image).__name__}")
    if image.mode != "RGB":
        raise ValueError(f"judge images must be RGB, got mode {image.mode!r}"
                         + (": composite it on the protocol background first" if "A" in image.mode
                            else ": convert it to RGB first"))
    return image


def png_bytes(image: Image.Image) -> bytes:
    """The PNG encoding of an RGB image (PIL defaults): what is sent and what the cache hashes."""
    buf = io.BytesIO()
    as_rgb_image(image).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- judge


class JudgeError(RuntimeError):
    """The judge could not be asked (transport failure, server error, malformed response)."""


class JudgeModelMissing(FileNotFoundError):
    """The local judge model (weights, processor) is not where it was said to be."""


@dataclass
class JudgeSettings:
    """Decoding settings sent with every request (and part of the cache key)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    seed: int = 0
    max_attempts: int = 3

    def __post_init__(self):
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")


@dataclass
class Verdict:
    """The judge's verdict on one object. `score` is None when missing (never 0); `error` says
    why. `raw` holds every raw answer received, in order; `attempts` counts the answers asked
    for (including a failed transport attempt)."""

    score: int | None
    raw: list[str] = field(default_factory=list)
    attempts: int = 0
    error: str = ""
    model: str = ""
    prompt_sha256: str = ""
    settings: dict = field(default_factory=dict)
    cached: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Verdict:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class Judge(ABC):
    """A VLM judge. Subclasses implement `ask` (one raw answer per call, JudgeError on transport
    failure); `score` is shared: cache look-up, retries of ask + parse_score, the verdict."""

    model_id: str
    settings: JudgeSettings
    system_prompt: str = SYSTEM_PROMPT
    cache: JudgeCache | None = None

    @property
    def prompt_sha256(self) -> str:
        return _sha256(self.system_prompt.encode("utf-8"))

    @abstractmethod
    def ask(self, images: list[Image.Image], attempt: int = 0) -> str:
        """One raw answer for `images` (seed = settings.seed + attempt). Raises JudgeError
        when the judge cannot be reached."""

    def score(self, images: Sequence[Image.Image | np.ndarray],
              cache: JudgeCache | None = None) -> Verdict:
        """The verdict on one object's views. Never raises for a bad answer and never returns 0
        for one: unparseable answers are retried up to settings.max_attempts, then give
        Verdict(score=None, error=...). `cache` (default: self.cache) is consulted first."""
        images = [as_rgb_image(im) for im in images]
        if not images:
            raise ValueError("the judge needs at least one image")
        cache = cache if cache is not None else self.cache
        settings = asdict(self.settings)
        meta = dict(model=self.model_id, prompt_sha256=self.prompt_sha256, settings=settings)
        key = None
        if cache is not None:
            key = cache.key(self.model_id, self.prompt_sha256, images, settings)
            hit = cache.get(key)
            if hit is not None:
                return hit
        raws: list[str] = []
        reasons: list[str] = []
        for attempt in range(self.settings.max_attempts):
            try:
                raw = self.ask(images, attempt=attempt)
            except JudgeError as e:  # transport failure: final, and never cached
                return Verdict(None, raws, attempt + 1, f"judge error: {e}", **meta)
            raws.append(raw)
            try:
                value = parse_score(raw)
            except UnparseableAnswer as e:
                reasons.append(e.reason)
                continue
            verdict = Verdict(value, raws, attempt + 1, "", **meta)
            break
        else:
            verdict = Verdict(None, raws, self.settings.max_attempts,
                              f"unparseable answer after {self.settings.max_attempts} attempt(s): "
                              + "; ".join(reasons), **meta)
        if cache is not None:
            cache.put(key, verdict)
        return verdict


def score_many(judge: Judge, items: Mapping[Hashable, Sequence[Image.Image | np.ndarray]],
               concurrency: int = 4, cache: JudgeCache | None = None,
               progress: bool = True) -> dict[Hashable, Verdict]:
    """`judge.score` on every item, at most `concurrency` at a time (threads); returns the
    verdicts keyed like `items`, in its order. Exceptions other than bad answers / transport
    failures (e.g. an RGBA image) propagate."""
    from tqdm import tqdm

    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    out: dict[Hashable, Verdict] = {}
    with ThreadPoolExecutor(max_workers=concurrency) as pool, \
            tqdm(total=len(items), desc="PCS judge", unit="obj", disable=not progress) as bar:
        futures = {pool.submit(judge.score, images, cache): key for key, images in items.items()}
        for fut in as_completed(futures):
            out[futures[fut]] = fut.result()
            bar.update(1)
    return {key: out[key] for key in items}


def pcs_summary(verdicts: Iterable[Verdict] | Mapping[Any, Verdict]) -> dict:
    """PCS = mean of the valid scores (NaN when none), with n_scored and n_missing."""
    if isinstance(verdicts, Mapping):
        verdicts = verdicts.values()
    verdicts = list(verdicts)
    scores = [v.score for v in verdicts if v.score is not None]
    return {"pcs": float(np.mean(scores)) if scores else float("nan"),
            "n_scored": len(scores), "n_missing": len(verdicts) - len(scores)}


# ----------------------------------------------------------------------------- cache


class JudgeCache:
    """Verdicts on disk, one JSON file per key (<directory>/<key>.json, written atomically)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(model_id: str, prompt_sha256: str, images: Sequence[Image.Image], settings: dict) -> str:
        """sha256 of the JSON [model id, prompt sha256, [sha256(PNG bytes) per image], settings]."""
        image_hashes = [_sha256(png_bytes(im)) for im in images]
        blob = json.dumps([model_id, prompt_sha256, image_hashes, settings], sort_keys=True)
        return _sha256(blob.encode("utf-8"))

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> Verdict | None:
        path = self.path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ValueError(f"corrupt judge cache entry {path}: {e} (delete it to ask again)") from e
        if data.get("key") != key:
            raise ValueError(f"judge cache entry {path} holds key {data.get('key')!r}, not {key}")
        verdict = Verdict.from_dict(data["verdict"])
        verdict.cached = True
        return verdict

    def put(self, key: str, verdict: Verdict) -> None:
        record = {"key": key, "verdict": {**verdict.to_dict(), "cached": False}}
        data = json.dumps(record, indent=1, sort_keys=True).encode("utf-8")
        atomic_write_bytes(self.path(key), data)


# ----------------------------------------------------------------------------- HTTP backend


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    value = err.headers.get("Retry-After") if err.headers is not None else None
    try:
        return min(max(float(value), 0.0), 60.0) if value is not None else None
    except ValueError:
        return None


class OpenAIJudge(Judge):
    """A judge behind an OpenAI-compatible chat-completions endpoint (e.g. `vllm serve
    Qwen/Qwen3-VL-32B-Instruct`): POST {base_url}/chat/completions with the stdlib's urllib.

    Request body: model, messages (system prompt; user = the images as PNG data URLs, nothing
    else), temperature, top_p, max_tokens (= max_new_tokens), seed (= settings.seed + attempt).
    Answer = choices[0].message.content. Transport: each request has `timeout_s`; timeouts,
    connection errors, HTTP 429 and 5xx are retried `max_retries` times (1 + max_retries
    requests at most) after backoff_s * 2**i seconds (or the server's Retry-After, at most
    60 s); other HTTP errors and malformed responses raise JudgeError at once. Errors name the
    endpoint URL and the model id. The API key (argument, else $AMODAL_BENCH_JUDGE_API_KEY) is
    sent as a Bearer token and never appears in errors or verdicts."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0,
                 max_retries: int = 3, backoff_s: float = 1.0, settings: JudgeSettings | None = None,
                 cache: JudgeCache | None = None):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model_id = model
        self._api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.settings = settings if settings is not None else JudgeSettings()
        self.cache = cache

    def __repr__(self) -> str:
        return f"OpenAIJudge(url={self.url!r}, model={self.model_id!r})"

    def messages(self, images: Sequence[Image.Image]) -> list[dict]:
        parts = [{"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + base64.b64encode(png_bytes(im)).decode("ascii")}}
            for im in images]
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": parts}]

    def request_body(self, images: Sequence[Image.Image], attempt: int = 0) -> dict:
        s = self.settings
        return {"model": self.model_id, "messages": self.messages(images), "temperature": s.temperature,
                "top_p": s.top_p, "max_tokens": s.max_new_tokens, "seed": s.seed + attempt}

    def _fail(self, message: str) -> JudgeError:
        return JudgeError(f"judge endpoint {self.url} (model {self.model_id!r}): {message}")

    def ask(self, images: list[Image.Image], attempt: int = 0) -> str:
        data = json.dumps(self.request_body(images, attempt)).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last, delay = "", 0.0
        for i in range(self.max_retries + 1):
            if i:
                time.sleep(delay)
            delay = self.backoff_s * 2 ** i  # before retry i + 1, unless Retry-After asks for more
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    body = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace") if e.fp is not None else ""
                last = f"HTTP {e.code} {e.reason}: {detail}".rstrip(": ")
                if e.code == 429 or 500 <= e.code < 600:
                    delay = max(delay, _retry_after(e) or 0.0)
                    continue
                raise self._fail(f"{last} (not retried)") from e
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                reason = e.reason if isinstance(e, urllib.error.URLError) else e
                kind = "timed out" if isinstance(reason, TimeoutError) else "connection failed"
                last = f"{kind} ({type(reason).__name__}: {reason}; timeout {self.timeout_s} s)"
                continue
            return self._answer(body)
        raise self._fail(f"failed after {self.max_retries + 1} request(s); last: {last}")

    def _answer(self, body: bytes) -> str:
        try:
            content = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise self._fail(f"malformed chat-completions response ({type(e).__name__}: {e}): "
                             f"{body[:300]!r}") from None
        if content is None:  # e.g. a reasoning model that used every token thinking
            return ""
        if isinstance(content, list):  # content parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise self._fail(f"message content is {type(content).__name__}, not text")
        return content


# ----------------------------------------------------------------------------- local backend


class TransformersJudge(Judge):
    """A judge run in-process with transformers, from a local model directory only
    (`AutoProcessor` / `AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)`;
    nothing is downloaded). GENA3D's judge is Qwen/Qwen3-VL-32B-Instruct.

    Prompt: `processor.apply_chat_template` on [system: [text SYSTEM_PROMPT], user: [image] * n]
    with add_generation_prompt=True, then `processor(text=[...], images=images)`. Decoding:
    `model.generate(max_new_tokens, do_sample=temperature > 0, and temperature/top_p when
    sampling)` after `torch.manual_seed(seed + attempt)`; the answer is the decoded NEW tokens
    (special tokens skipped). Calls are serialized by a lock (one model, one generate at a
    time). `model_id` defaults to "transformers:<directory name>" (the cache key's model)."""

    def __init__(self, model_path: str | os.PathLike, settings: JudgeSettings | None = None,
                 device: str = "cpu", dtype: Any = "auto", model_id: str | None = None,
                 cache: JudgeCache | None = None):
        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            what = "does not exist" if not path.exists() else "has no config.json"
            raise JudgeModelMissing(
                f"judge model directory {path} {what}. The PCS judge needs a local copy of "
                f"{QWEN3_VL_REPO} (weights, config, processor and tokenizer files), e.g. "
                f"`huggingface-cli download {QWEN3_VL_REPO} --local-dir {path}` on a machine with "
                "internet access; or serve the model with vLLM and use OpenAIJudge instead.")
        try:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as e:
            raise ImportError(f"TransformersJudge needs the transformers package ({e}); "
                              "pip install transformers") from e
        self.path = path
        self.device = device
        self.model_id = model_id or f"transformers:{path.resolve().name}"
        self.settings = settings if settings is not None else JudgeSettings()
        self.cache = cache
        self._torch = torch
        self._lock = threading.Lock()
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=dtype)
        self.model.to(device).eval()

    def __repr__(self) -> str:
        return f"TransformersJudge(path={str(self.path)!r}, model={self.model_id!r})"

    def messages(self, n_images: int) -> list[dict]:
        return [{"role": "system", "content": [{"type": "text", "text": self.system_prompt}]},
                {"role": "user", "content": [{"type": "image"} for _ in range(n_images)]}]

    def chat_text(self, n_images: int) -> str:
        """The prompt text the model sees (chat template applied, before image expansion)."""
        return self.processor.apply_chat_template(self.messages(n_images), add_generation_prompt=True,
                                                  tokenize=False)

    def inputs(self, images: Sequence[Image.Image]):
        images = [as_rgb_image(im) for im in images]
        return self.processor(text=[self.chat_text(len(images))], images=images, return_tensors="pt")

    def ask(self, images: list[Image.Image], attempt: int = 0) -> str:
        s = self.settings
        sampling = s.temperature > 0
        kwargs = {"temperature": s.temperature, "top_p": s.top_p} if sampling else {}
        with self._lock, self._torch.inference_mode():
            inputs = self.inputs(images).to(self.device)
            self._torch.manual_seed(s.seed + attempt)
            out = self.model.generate(**inputs, max_new_tokens=s.max_new_tokens, do_sample=sampling, **kwargs)
            new = out[:, inputs["input_ids"].shape[1]:]
            return self.processor.batch_decode(new, skip_special_tokens=True)[0]
