"""The PCS judge's verdict cache (`JudgeCache`): key = sha256 of the JSON list [model id, prompt
sha256, [sha256 of each image's PNG bytes as we encode it (PIL, default settings), in order],
settings dict]. Parsed scores and final unparseable verdicts are cached; transport errors never
are. A hit returns the stored verdict with `cached=True`, so re-running a report never pays the
judge twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from bench.files import atomic_write_bytes
from bench.judge.image import png_bytes
from bench.judge.prompt import sha256_hex
from bench.judge.verdict import Verdict

__all__ = ["JudgeCache"]


class JudgeCache:
    """Verdicts on disk, one JSON file per key (<directory>/<key>.json, written atomically)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(model_id: str, prompt_sha256: str, images: Sequence[Image.Image], settings: dict) -> str:
        """sha256 of the JSON [model id, prompt sha256, [sha256(PNG bytes) per image], settings]."""
        image_hashes = [sha256_hex(png_bytes(im)) for im in images]
        blob = json.dumps([model_id, prompt_sha256, image_hashes, settings], sort_keys=True)
        return sha256_hex(blob.encode("utf-8"))

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
