"""Calling a method: its adapter (or its outputs computed elsewhere) and its Generation within the
run's time limit. `config` is a bench.run.runner.RunConfig."""

from __future__ import annotations

import contextlib
import signal
import threading
from functools import partial
from pathlib import Path

from bench.cases.case import AmodalCase
from bench.methods.registry import get_adapter


def _raise_timeout(seconds: float, signum, frame):
    raise TimeoutError(f"generate() did not return within {seconds:g} s")


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise TimeoutError in the main thread after `seconds` (SIGALRM). Code that holds the GIL
    in C (a long numpy / torch call) is interrupted when it returns; a worker adapter
    (bench.methods.worker) kills a hung process instead."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGALRM, partial(_raise_timeout, seconds))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _adapter(config, method: str):
    if config.cases:  # outputs computed elsewhere, read from the exported case folders
        from bench.methods.precomputed import ImportedMethod

        return ImportedMethod(Path(config.cases), method)
    return get_adapter(method)


def generate(config, method: str, case: AmodalCase):
    """The method's Generation for `case`, within config.generation_timeout_s."""
    with _time_limit(config.generation_timeout_s):
        return _adapter(config, method).generate(case)
