"""Running one command under supervision: its own session, captured output, a deadline, the
whole process group ended.

run_command runs an argument list without a shell, in a session of its own (start_new_session)
with stdin from /dev/null; stdout and stderr go to a log file, interleaved as they arrive, and
their tails come back in the Outcome. On a timeout, or when the caller is interrupted
(KeyboardInterrupt), the command's process group gets SIGTERM and, after grace_s, SIGKILL;
processes it leaves behind after exiting are ended the same way. A command that cannot start is
an Outcome with start_error, never an exception.

If the supervising process itself dies (SIGTERM, SIGKILL, a crash), a watchdog process
(bench.methods.watchdog) ends the command's process group and removes `cleanup` paths; SIGTERM
on the supervisor is turned into SystemExit (`exit_on_sigterm`) so its own cleanup runs first.

Generic: it knows nothing of cases or methods (bench.methods.worker builds the command).
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_CHARS = 4000
DRAIN_S = 2.0  # after the command exits, how long to keep reading pipes a straggler holds open


@dataclass
class Outcome:
    """What run_command saw: exit code (negative: killed by that signal), timeout, tails."""

    exit_code: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    stderr_tail: str = ""
    log_tail: str = ""
    start_error: str = ""  # the command could not be started


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: still there
        return True
    if not sys.platform.startswith("linux"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            return True
    return False


def _kill_group(proc: subprocess.Popen, grace_s: float) -> bool:
    """SIGTERM the command's process group, SIGKILL what is left after grace_s; reap the leader.
    Returns whether anything was still running."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    proc.poll()
    if not _group_alive(pgid):
        proc.poll()
        return False
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        proc.poll()
        return False
    except PermissionError:  # a member we may not signal; SIGKILL below tries again
        pass
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        proc.poll()  # reap the leader, so it does not linger as a zombie of ours
        if not _group_alive(pgid):
            return True
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    end = time.monotonic() + 5.0  # SIGKILL cannot be ignored; children need a moment to go
    while time.monotonic() < end and _group_alive(pgid):
        time.sleep(0.02)
    return True


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit in this process (the default handler dies without running
    `finally` blocks: a supervised command and its temporary folder would be left behind)."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _start_watchdog(pgid: int, cleanup: list[Path]) -> subprocess.Popen | None:
    try:
        return subprocess.Popen([sys.executable, "-m", "bench.methods.watchdog", str(pgid),
                                 *map(str, cleanup)], stdin=subprocess.PIPE, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    except OSError:
        return None


def _release_watchdog(dog: subprocess.Popen | None) -> None:
    if dog is None:
        return
    try:
        dog.stdin.write(b"x")
        dog.stdin.close()
    except OSError:
        pass
    dog.wait()


def run_command(argv: list[str], cwd: str | None, env: dict[str, str], log_path: Path,
                timeout_s: float, grace_s: float, cleanup: list[Path] | None = None) -> Outcome:
    """Run argv without a shell in a new session, stdout and stderr to log_path (interleaved,
    as they arrive); a timeout kills the process group. `cleanup`: paths the watchdog removes
    if this process dies while the command runs."""
    out = Outcome()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        log.write(f"# command: {shlex.join(argv)}\n# cwd: {cwd or os.getcwd()}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True, close_fds=True)
        except FileNotFoundError as e:
            if cwd and not Path(cwd).is_dir():
                out.start_error = f"working directory {cwd} does not exist"
            else:
                out.start_error = f"command not found: {argv[0]}"
            log.write(f"# {out.start_error} ({e})\n".encode())
            return out
        except PermissionError:
            out.start_error = f"cannot execute {argv[0]}: permission denied"
            log.write(f"# {out.start_error}\n".encode())
            return out
        except OSError as e:
            out.start_error = f"cannot start {argv[0]}: {e}"
            log.write(f"# {out.start_error}\n".encode())
            return out
        dog = _start_watchdog(proc.pid, cleanup or [])
        err_tail, all_tail = bytearray(), bytearray()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = t0 + timeout_s
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and (not sel.get_map() or now - exited_at > DRAIN_S):
                    break
                if exited_at is None and now >= deadline:
                    out.timed_out = True
                    log.write(f"\n# timed out after {timeout_s:g} s: killing the process group\n"
                              .encode())
                    log.flush()
                    _kill_group(proc, grace_s)
                    exited_at = time.monotonic()
                    continue
                wait = 0.1 if exited_at is not None else min(0.25, max(deadline - now, 0.0))
                if not sel.get_map():
                    time.sleep(wait)
                    continue
                for key, _ in sel.select(timeout=wait):
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        continue
                    log.write(data)
                    all_tail += data
                    del all_tail[:-4 * LOG_TAIL_CHARS]
                    if key.fileobj is proc.stderr:
                        err_tail += data
                        del err_tail[:-4 * LOG_TAIL_CHARS]
                log.flush()
        finally:  # also on KeyboardInterrupt: never leave the command running
            sel.close()
            if proc.poll() is None or _group_alive(proc.pid):
                if _kill_group(proc, grace_s) and not out.timed_out:
                    log.write(b"\n# processes left behind by the command were killed\n")
            proc.stdout.close()
            proc.stderr.close()
            proc.wait()
            _release_watchdog(dog)
        out.exit_code = proc.returncode
    out.seconds = time.monotonic() - t0
    out.stderr_tail = err_tail.decode("utf-8", "replace")
    out.log_tail = all_tail.decode("utf-8", "replace")[-LOG_TAIL_CHARS:]
    return out
