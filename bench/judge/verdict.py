"""The PCS judge's verdict on one object (`Verdict`): the score or None (never 0), every raw
answer, the model id, the prompt sha256 and the decoding settings it was asked with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

__all__ = ["Verdict"]


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
