"""The PCS judge's system prompt: GENA3D's prompt (supplement A.3) verbatim.

`SYSTEM_PROMPT` is read from `bench/judge/pcs_prompt.txt` (package data of `bench.judge`, the
one place it lives; its single trailing newline is not part of the prompt). `PROMPT_SHA256` =
sha256 of its UTF-8 bytes; every verdict records it. The paper's text extraction is one line:
any line breaks of the original prompt are lost and we do not guess them.
"""

from __future__ import annotations

import hashlib
from importlib import resources

__all__ = ["PROMPT_FILE", "PROMPT_SHA256", "SYSTEM_PROMPT", "sha256_hex"]

PROMPT_FILE = "pcs_prompt.txt"


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of `data` (the prompt hash, the cache's image hashes and keys)."""
    return hashlib.sha256(data).hexdigest()


def _load_prompt() -> str:
    text = resources.files("bench.judge").joinpath(PROMPT_FILE).read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


SYSTEM_PROMPT: str = _load_prompt()
PROMPT_SHA256: str = sha256_hex(SYSTEM_PROMPT.encode("utf-8"))
