"""The schema of a protocol YAML file, checked before any work.

Every key a protocol may hold, with its type and range; an unknown key (a typo such as
`eval_rig.resolutoin` or `input.visible_fracton`), a missing required key or a wrong type is a
`ProtocolError` naming the file, the key path and what was expected, in one line.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from pathlib import Path


class ProtocolError(ValueError):
    """A protocol file that does not follow the schema (one line: file, key path, expectation)."""


Check = Callable[[object], str | None]  # returns what was expected, or None when the value is fine


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def string() -> Check:
    return lambda x: None if isinstance(x, str) and x else "a non-empty string"


def one_of(*values: str) -> Check:
    return lambda x: None if x in values else "one of " + ", ".join(values)


def number(lo: float | None = None, hi: float | None = None, open_lo: bool = False) -> Check:
    what = "a number" + (f" > {lo}" if open_lo and lo is not None else f" >= {lo}" if lo is not None
                         else "") + (f" <= {hi}" if hi is not None else "")

    def check(x):
        if not _is_number(x):
            return what
        if lo is not None and (x <= lo if open_lo else x < lo):
            return what
        if hi is not None and x > hi:
            return what
        return None
    return check


def integer(lo: int = 1) -> Check:
    return lambda x: None if _is_int(x) and x >= lo else f"an integer >= {lo}"


def number_list(lo=None, hi=None, integers: bool = False, length: int | None = None) -> Check:
    item = integer(lo if lo is not None else 0) if integers else number(lo, hi)
    kind = "integers" if integers else "numbers"
    rng = (f" >= {lo}" if lo is not None else "") + (f" <= {hi}" if hi is not None else "")
    what = (f"a list [low, high] of {kind}{rng}, low <= high" if length == 2
            else f"a non-empty list of {kind}{rng}")

    def check(x):
        if not isinstance(x, list) or not x or (length is not None and len(x) != length):
            return what
        if any(item(v) for v in x):
            return what
        if length == 2 and x[0] > x[1]:
            return what
        return None
    return check


def number_or_list(lo=None, hi=None) -> Check:
    scalar, many = number(lo, hi), number_list(lo, hi)
    return lambda x: None if scalar(x) is None or many(x) is None else "a number or a list of numbers"


RIG = {
    "yaws_deg": (True, number_list()),
    "pitch_deg": (True, number_or_list(-90, 90)),
    "radius": (True, number(0, open_lo=True)),
    "fov_deg": (True, number(0, 180, open_lo=True)),
    "resolution": (True, integer(1)),
}
POOL = {
    # where input cameras come from: uniform yaw/pitch ranges (input.yaw_deg, input.pitch_deg),
    # TRELLIS's sphere Hammersley sequence of `views` with a random offset, or fixed yaws
    "kind": (True, one_of("uniform", "hammersley", "fixed")),
    "views": (False, integer(1)),
    "yaws_deg": (False, number_list()),
    "pitch_deg": (False, number(-90, 90)),
}
INPUT = {
    "views": (True, number_list(1, integers=True)),
    "pool": (False, POOL),
    "yaw_deg": (False, number_list(length=2)),
    "pitch_deg": (False, number_list(-90, 90, length=2)),
    "radius": (True, number(0, open_lo=True)),
    "fov_deg": (True, number(0, 180, open_lo=True)),
    "resolution": (True, integer(1)),
    "visible_fraction": (False, number_list(0, 1, length=2)),
    "max_tries": (False, integer(1)),
}
OCCLUSION = {
    "method": (True, one_of("face_region_growing")),
    "ratio": (False, number_list(0, 1, length=2)),
    "degrees": (False, number_list(0, 1)),
    "by": (False, one_of("faces", "area")),
    "seed_faces": (False, integer(1)),
    "adjacency": (False, one_of("merged", "mesh-vertices")),
    "occluder_color": (False, None),  # filled in by schema(): the named backgrounds
}
POINTCLOUD = {
    "points": (True, integer(1)),
    "sampling": (False, one_of("fps", "fps_bucket")),
    # COV/MMD on the clouds as sampled (PointFlow) or after LION's per-shape box normalization
    "normalization": (False, one_of("none", "lion_box")),
}


def schema(backgrounds) -> dict:
    colours = one_of(*backgrounds)
    return {
        "name": (True, string()),
        "description": (False, string()),
        "dataset": (True, string()),
        "seed": (False, string()),
        "background": (True, colours),
        # the frame a mesh is imported in (PROTOCOLS.md 7): "upright" keeps the file's Z-up
        # frame (GENA3D's -90 deg X turn after Blender's OBJ import), "blender-obj" is Blender's
        # default OBJ import (file Y-up, so a Z-up GSO mesh lies on its back; TRELLIS's script)
        "import_frame": (False, one_of("upright", "blender-obj")),
        # the GT appearance renderer of the eval rig: lit Cycles as TRELLIS's / GENA3D's Blender
        # script, or the fast unlit rasterizer (never a paper's protocol: tables mark it)
        "gt_appearance": (False, one_of("cycles-trellis", "cycles-gena3d", "raster-unlit")),
        "eval_rig": (True, RIG),
        "input": (True, INPUT),
        "occlusion": (True, {**OCCLUSION, "occluder_color": (False, colours)}),
        "pointcloud": (True, POINTCLOUD),
    }


def validate(spec, path: Path, backgrounds) -> None:
    """Raise ProtocolError on the first deviation from the schema (deterministic order)."""
    def fail(key: str, what: str, value=None, show_value: bool = True) -> ProtocolError:
        got = f", got {value!r}" if show_value else ""
        return ProtocolError(f"protocol {path}: {key}: expected {what}{got}")

    def walk(node, rules: dict, prefix: str) -> None:
        if not isinstance(node, dict):
            raise fail(prefix.rstrip(".") or "(top level)", "a mapping of keys", node)
        for key in node:
            if key not in rules:
                raise fail(prefix + str(key), "no such key; valid here: " + ", ".join(rules),
                           show_value=False)
        for key, (required, rule) in rules.items():
            if key not in node:
                if required:
                    raise fail(prefix + key, f"a value (the protocol lacks {prefix + key})", show_value=False)
                continue
            value = node[key]
            if isinstance(rule, dict):
                walk(value, rule, f"{prefix}{key}.")
            elif rule is not None and (why := rule(value)) is not None:
                raise fail(prefix + key, why, value)

    walk(spec, schema(backgrounds), "")
    occ = spec["occlusion"]
    if ("ratio" in occ) == ("degrees" in occ):
        raise ProtocolError(f"protocol {path}: occlusion: expected exactly one of 'ratio' (a sampled "
                            "range) or 'degrees' (a sweep)")
    inp = spec["input"]
    kind = inp.get("pool", {}).get("kind", "uniform")
    need = {"uniform": ("yaw_deg", "pitch_deg"), "hammersley": ("pool.views",),
            "fixed": ("pool.yaws_deg", "pool.pitch_deg")}[kind]
    for key in need:
        node, _, leaf = (inp["pool"], None, key[5:]) if key.startswith("pool.") else (inp, None, key)
        if leaf not in node:
            raise ProtocolError(f"protocol {path}: input.{key}: expected a value (a {kind} pool "
                                f"needs {', '.join('input.' + k for k in need)})")
    rig = spec["eval_rig"]
    if isinstance(rig["pitch_deg"], list) and len(rig["pitch_deg"]) != len(rig["yaws_deg"]):
        raise ProtocolError(f"protocol {path}: eval_rig.pitch_deg: expected one pitch per yaw "
                            f"({len(rig['yaws_deg'])}), got {len(rig['pitch_deg'])}")
