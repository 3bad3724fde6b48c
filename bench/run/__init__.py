"""Orchestration: a run over (method, object, setting) items, the evaluation of one generation,
the GT cache, the image networks a run has, contact sheets.

    from bench.run import RunConfig, run
"""

from bench.run.runner import RunConfig, run

__all__ = ["RunConfig", "run"]
