"""The watchdog of a supervised command: ends it when the process that started it dies.

    python -m bench.methods.watchdog PGID [PATH ...]

run_command starts one per command, in a session of its own, with a pipe on its stdin whose only
writer is the supervising process. When the supervisor finishes normally it writes one byte and
closes the pipe: the watchdog exits. When the supervisor dies in any way, SIGKILL included, the
pipe closes without that byte: the watchdog sends SIGTERM to the command's process group, then
SIGKILL after GRACE_S, and removes the PATHs (the command's temporary folder). A prctl death
signal cannot do this: it reaches only the direct child, never the processes the command started.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

GRACE_S = 2.0
RELEASE = b"x"  # written by the supervisor when it ended the command itself


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str]) -> int:
    pgid, paths = int(argv[0]), argv[1:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the terminal is the supervisor's
    data = os.read(0, 1)  # blocks until the supervisor writes or dies
    if data == RELEASE:
        return 0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            break
        end = time.monotonic() + (GRACE_S if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < end and _alive(pgid):
            time.sleep(0.05)
        if not _alive(pgid):
            break
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
