"""The PCS judge run in-process with transformers (`TransformersJudge`), from a local model
directory only; nothing is downloaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from bench.judge.cache import JudgeCache
from bench.judge.core import Judge, JudgeModelMissing, JudgeSettings
from bench.judge.image import as_rgb_image

__all__ = ["QWEN3_VL_REPO", "TransformersJudge"]

QWEN3_VL_REPO = "Qwen/Qwen3-VL-32B-Instruct"  # the judge GENA3D names (Qwen3-VL 32B)


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
