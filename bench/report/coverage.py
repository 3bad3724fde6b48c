"""Do a run directory's records cover what its run.json configured?

`bench.run.runner.run` writes run.json with the configuration (methods, protocol, the objects
after --objects / --limit) and the protocol's content hash; every (method, setting, object) item
ends as one record. A record deleted by hand, a run that was killed and never resumed, or a
harness error (status "error", retried on resume) leaves an item without a final record: the
leaderboard's `n` silently drops and its success rate may rise. `coverage_problems` names those
items so that `amodal-bench report` / `drift` can warn about them (stderr; the report still runs).

Settings come from the protocol named in run.json when it still loads with the recorded content
hash; otherwise from the records of that hash (a warning says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bench.files import setting_label
from bench.records.store import load_records, record_path

MAX_NAMED = 10  # objects named per (method, setting) line


def _settings(run: Path, info: dict, records: list) -> tuple[str, list[tuple[int, float | None]], list[str]]:
    """(protocol name, [(views, degree)], warnings) of the run."""
    from bench.inputs.protocol import load_protocol

    config, want = info.get("config", {}), info.get("protocol_hash")
    try:
        protocol = load_protocol(str(config.get("protocol")))
        if want is None or protocol.content_hash == want:
            return protocol.name, [(s.views, s.degree) for s in protocol.settings], []
        why = (f"protocol {config.get('protocol')!r} changed since the run (hash {protocol.content_hash}, "
               f"run {want})")
    except ValueError as e:  # an unknown name, a YAML path gone or broken (ProtocolError is one)
        why = f"protocol {config.get('protocol')!r} does not load ({e})"
    mine = [r for r in records if r.protocol_hash == want]
    names = sorted({r.protocol for r in mine})
    settings = sorted({(r.views, r.occlusion_degree) for r in mine}, key=lambda s: (s[1] or -1, s[0]))
    return (names[0] if names else str(config.get("protocol"))), settings, [
        f"{run / 'run.json'}: {why}; checked the settings found in the records: "
        + (", ".join(setting_label(v, d) for v, d in settings) or "none")]


def coverage_problems(run: str | Path, label: Callable[[str], str] = str,
                      records: list | None = None) -> list[str]:
    """One line per problem: each (method, setting) whose records do not cover every object of
    run.json (naming up to MAX_NAMED objects), harness errors, a missing or unreadable run.json.
    `label`: the name a configured method's records are kept under (bench.methods.registry
    .method_name; identity by default). `records`: the run's records, when already loaded."""
    run = Path(run)
    path = run / "run.json"
    if not path.is_file():
        return [f"{run}: no run.json; cannot check that the records cover the run's configuration"]
    try:
        info = json.loads(path.read_text())
        methods, objects = list(info["config"]["methods"]), list(info["objects"])
        if not all(isinstance(x, str) for x in methods + objects):
            raise TypeError("methods and objects must be strings")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        return [f"{path}: unreadable run configuration ({type(e).__name__}: {e}); cannot check that "
                "the records cover it"]
    records = load_records(run) if records is None else records
    protocol, settings, lines = _settings(run, info, records)
    status = {(r.method, r.views, r.occlusion_degree, r.object_id): r.status
              for r in records if r.protocol == protocol}
    total = missing_total = 0
    for method in methods:
        try:
            name = label(method)
        except Exception:  # a method string that no longer resolves: its records use the string
            name = method
        for views, degree in settings:
            missing, errors = [], []
            for oid in objects:
                total += 1
                s = status.get((name, views, degree, oid))
                if s is None:
                    missing.append(oid)
                elif s == "error":
                    errors.append(oid)
            where = f"{run}: {name} {protocol} {setting_label(views, degree)}"
            folder = record_path(run, protocol, name, views, "x", degree).parent
            for kind, ids in (("no record", missing), ("a harness error (retried on resume)", errors)):
                if ids:
                    missing_total += len(ids)
                    named = ", ".join(ids[:MAX_NAMED]) + (f", ... ({len(ids) - MAX_NAMED} more)"
                                                          if len(ids) > MAX_NAMED else "")
                    lines.append(f"{where}: {kind} for {len(ids)} of {len(objects)} configured objects: "
                                 f"{named} (under {folder})")
    if missing_total:
        lines.append(f"{run}: {missing_total} of {total} configured items (methods x objects x settings "
                     "of run.json) have no final record: the leaderboard's n and success rate leave them out")
    return lines
