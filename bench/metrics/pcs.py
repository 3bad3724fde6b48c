"""PCS, GENA3D's Perceptual Coherence Score (supplement A.3): the arithmetic mean over objects of
the judge's valid scores (0-100). An object whose answers never parsed has no score: it is left
out of the mean and counted as missing, never as 0. The judge itself is bench.judge."""

from __future__ import annotations

import math
from collections.abc import Iterable


def pcs_mean(scores: Iterable[float | None]) -> dict:
    """{"pcs": mean of the non-None scores (NaN when none), "n_scored", "n_missing"}."""
    scores = list(scores)
    valid = [float(s) for s in scores if s is not None]
    return {"pcs": math.fsum(valid) / len(valid) if valid else float("nan"),
            "n_scored": len(valid), "n_missing": len(scores) - len(valid)}
