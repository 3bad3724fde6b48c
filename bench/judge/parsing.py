"""Strict parsing of the PCS judge's answer, as the prompt demands ("Do not include any text
outside the output format"): the answer stripped of surrounding whitespace must be exactly one
JSON object with exactly one key "score" whose value is a JSON integer in [0, 100]. We do NOT
salvage a score from surrounding text, code fences, floats (50.0), strings ("50") or booleans:
such answers are unparseable (`UnparseableAnswer`).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SCORE_MAX", "SCORE_MIN", "UnparseableAnswer", "parse_score"]

SCORE_MIN, SCORE_MAX = 0, 100


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
