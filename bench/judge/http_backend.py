"""The PCS judge behind an OpenAI-compatible chat-completions endpoint (`OpenAIJudge`, e.g. vLLM
serving Qwen3-VL), over the stdlib's urllib: request timeout, bounded retries with exponential
backoff for timeouts, connection errors, HTTP 429 and 5xx (honouring Retry-After); other HTTP
errors fail at once. Errors name the endpoint URL and the model id, never the API key.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from PIL import Image

from bench.judge.cache import JudgeCache
from bench.judge.core import Judge, JudgeError, JudgeSettings
from bench.judge.image import png_bytes

__all__ = ["API_KEY_ENV", "OpenAIJudge"]

API_KEY_ENV = "AMODAL_BENCH_JUDGE_API_KEY"


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
