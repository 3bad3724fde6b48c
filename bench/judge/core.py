"""PCS: GENA3D's VLM-judged Perceptual Coherence Score; the judge core shared by the backends
(`http_backend.OpenAIJudge`, `transformers_backend.TransformersJudge`).

Definition (GENA3D supplement A.3): each generated object is rendered at the 8 CLIP-score rig
poses (radius 2, FoV 40 deg, elevation 15 deg, azimuths 0, 45, ..., 315 deg); the 8 images are
given to Qwen3-VL 32B together with a system prompt that asks for multi-view coherence and
appearance quality as `{ "score": <int> }` in 0-100; PCS = the mean of the per-object scores.
No code is public. What we fix, exactly (the prompt: `prompt`; parsing: `parsing`; the images:
`image`; the verdict and its cache: `verdict`, `cache`):

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
* Retries (`Judge.score`): an unparseable answer is asked again, up to `max_attempts` answers
  in all; if none parses, the verdict has score None (NEVER 0) with every raw answer kept.
  Transport failures are retried inside the HTTP backend (timeouts, connection errors, HTTP
  429 and 5xx; exponential backoff); when they persist the verdict has score None and an error
  naming the endpoint URL and the model id. Other HTTP errors (4xx) are not retried.
* PCS (`bench.metrics.pcs.pcs_mean`, applied by the report) = the arithmetic mean of the valid
  scores over objects (NaN when there is none), reported with the counts of scored and missing
  objects. Missing verdicts are left out of the mean, never counted as 0; a report must show
  n_missing beside the PCS.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from bench.judge.cache import JudgeCache
from bench.judge.image import as_rgb_image
from bench.judge.parsing import UnparseableAnswer, parse_score
from bench.judge.prompt import SYSTEM_PROMPT, sha256_hex
from bench.judge.verdict import Verdict

__all__ = ["Judge", "JudgeError", "JudgeModelMissing", "JudgeSettings", "score_many"]


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


class Judge(ABC):
    """A VLM judge. Subclasses implement `ask` (one raw answer per call, JudgeError on transport
    failure); `score` is shared: cache look-up, retries of ask + parse_score, the verdict."""

    model_id: str
    settings: JudgeSettings
    system_prompt: str = SYSTEM_PROMPT
    cache: JudgeCache | None = None

    @property
    def prompt_sha256(self) -> str:
        return sha256_hex(self.system_prompt.encode("utf-8"))

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
