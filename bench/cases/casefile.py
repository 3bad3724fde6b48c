"""The on-disk case format: export cases, run any model elsewhere, find its outputs.

A GPU cluster needs only numpy, PIL and json to read a case, never this harness. Layout:

    CASES/manifest.json                   format, format_version, protocol {name, content_hash},
                                          dataset, cases [{object_id, n_views, degree, path}],
                                          conventions
    CASES/<protocol>/<setting>/<object_id>/     <setting> = views-<n>, or views-<n>-occ<percent>
                                                in an occlusion sweep (bench.inputs.protocol.setting_label)
        case.json                         format, format_version, object_id, protocol,
                                          protocol_hash, n_views, degree (null unless a sweep),
                                          seed, background, occlusion_ratio, meta, views [...],
                                          expected_output {...}
        view_<k>_rgb.png                  (H, W, 3) 8-bit sRGB; occluded pixels in the occluder colour
        view_<k>_visibility.png           (H, W) 8-bit, 255 = object pixel not occluded, else 0
        view_<k>_occlusion.png            (H, W) 8-bit, 255 = object pixel hidden by the occluder
        view_<k>_depth.npy                (H, W) float32 camera z at visible pixels, 0 elsewhere
                                          (always written; optional input for RGB-D methods)
        output/<method>/mesh.glb|.obj|.ply    written by the method: exactly one of the three
        output/<method>/gaussians.ply     optional: the generation's 3D Gaussians (3DGS PLY), used
                                          for its appearance metrics (bench.run.measure)
        output/<method>/output.json       optional sidecar {"up_axis": "y"|"z", "gaussians_frame":
                                          "trellis"|"z-up", ...anything}

Each view of case.json: file names (rgb, visibility_mask, occlusion_mask, depth), camera
{convention: "opencv_world_to_camera", extrinsics (4x4 world-to-camera; x right, y down,
z forward), intrinsics_pixels (3x3; origin top-left, pixel centres at integer + 0.5), width,
height}, yaw_deg/pitch_deg (TRELLIS: camera at r (sin yaw cos pitch, cos yaw cos pitch,
sin pitch) looking at the origin, +Z up) and visible_fraction.
World frame: the TRELLIS object frame, Z-up, object in [-0.5, 0.5]^3. Outputs must be in that
frame (no rescaling is applied). `up_axis` defaults to "y" for .glb (glTF, as TRELLIS `to_glb`)
and "z" for .obj/.ply; a Y-up output is rotated back with bench.inputs.assets.y_up_to_z_up.
gaussians.ply is read in TRELLIS `save_ply`'s frame (up = -Y) unless `gaussians_frame` is "z-up".
The GT mesh path (AmodalCase.source) is never exported; read_case returns source="".
Files are written atomically; case.json last, so a case directory with case.json is complete.
Outputs are read back as Generations by bench.methods.precomputed (import_output, ImportedMethod).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from bench.cases.case import AmodalCase, InputView
from bench.files import atomic_write_bytes, setting_label
from bench.inputs.cameras import Camera
from bench.inputs.protocol import Protocol

FORMAT_VERSION = 1
CONVENTION = "opencv_world_to_camera"
OUTPUT_EXTS = ("glb", "obj", "ply")
DEFAULT_UP = {"glb": "y", "obj": "z", "ply": "z"}
FRAME = ("TRELLIS object frame: Z-up, object in [-0.5, 0.5]^3, same world frame as the cameras; "
         "no rescaling is applied. GLB is read as Y-up (glTF, TRELLIS to_glb) and OBJ/PLY as Z-up "
         "unless output.json declares up_axis")
CONVENTIONS = {
    "world_frame": "TRELLIS object frame, Z-up, object in [-0.5, 0.5]^3",
    "camera": f"{CONVENTION}: extrinsics 4x4 world-to-camera (x right, y down, z forward); "
              "intrinsics_pixels 3x3, origin top-left, pixel centres at integer + 0.5",
    "yaw_pitch": "TRELLIS: camera at r*(sin yaw cos pitch, cos yaw cos pitch, sin pitch), +Z up",
    "rgb": "8-bit sRGB PNG (H, W, 3); occluded pixels in the occluder colour",
    "masks": "8-bit PNG (H, W), 0 or 255",
    "depth": "float32 .npy (H, W), camera z at visible pixels, 0 elsewhere",
    "output": FRAME,
}


def _dump(obj: dict) -> bytes:
    """Sorted-key JSON; numpy scalars/arrays become plain numbers/lists, anything else raises."""
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=False,
                      default=lambda o: o.tolist() if isinstance(o, (np.generic, np.ndarray))
                      else json.JSONEncoder().default(o)).encode()


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _name(value: str, what: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\\" in value:
        raise ValueError(f"{what} {value!r} cannot be a directory name")
    return value


def case_dir(root: Path, protocol: str, n_views: int, object_id: str,
             degree: float | None = None) -> Path:
    """CASES/<protocol>/<setting label>/<object_id>."""
    return (Path(root) / _name(protocol, "protocol") / setting_label(int(n_views), degree)
            / _name(object_id, "object id"))


def export_case(case: AmodalCase, root: Path) -> Path:
    """Write one case under root; returns its directory. case.json is written last."""
    out = case_dir(root, case.protocol, case.n_views, case.object_id, case.degree)
    views = []
    for k, v in enumerate(case.views):
        files = {"rgb": f"view_{k}_rgb.png", "visibility_mask": f"view_{k}_visibility.png",
                 "occlusion_mask": f"view_{k}_occlusion.png", "depth": f"view_{k}_depth.npy"}
        atomic_write_bytes(out / files["rgb"], _png(np.ascontiguousarray(v.rgb, np.uint8)))
        for key in ("visibility_mask", "occlusion_mask"):
            atomic_write_bytes(out / files[key], _png(getattr(v, key).astype(np.uint8) * 255))
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(v.depth, np.float32))
        atomic_write_bytes(out / files["depth"], buf.getvalue())
        views.append({**files, "camera": v.camera.to_json(), "yaw_deg": v.yaw_deg,
                      "pitch_deg": v.pitch_deg, "visible_fraction": v.visible_fraction})
    atomic_write_bytes(out / "case.json", _dump({
        "format": "amodal-bench-case", "format_version": FORMAT_VERSION,
        "object_id": case.object_id, "protocol": case.protocol,
        "protocol_hash": case.protocol_hash, "n_views": case.n_views, "degree": case.degree,
        "seed": case.seed,
        "background": case.background, "occlusion_ratio": case.occlusion_ratio,
        "meta": case.meta, "views": views,
        "expected_output": {"path": "output/<method>/mesh.glb", "formats": list(OUTPUT_EXTS),
                            "sidecar": "output/<method>/output.json",
                            "gaussians": "output/<method>/gaussians.ply (optional, 3DGS PLY; "
                                         "gaussians_frame 'trellis' (default) or 'z-up')",
                            "up_axis_default": DEFAULT_UP, "frame": FRAME}}))
    return out


def export_cases(cases: Iterable[AmodalCase], root: Path, protocol: Protocol, dataset: str) -> Path:
    """Export cases and write CASES/manifest.json; returns the manifest path.

    An existing manifest of the same protocol (name and hash) and dataset is extended; one of
    another protocol or dataset raises ValueError, so cases of two versions never mix."""
    root = Path(root)
    entries: dict[str, dict] = {}
    if (root / "manifest.json").is_file():
        old = read_manifest(root)
        if (old["protocol"] != {"name": protocol.name, "content_hash": protocol.content_hash}
                or old["dataset"] != dataset):
            raise ValueError(f"{root / 'manifest.json'} holds {old['protocol']} on "
                             f"{old['dataset']}; export {protocol.name} elsewhere")
        entries = {e["path"]: e for e in old["cases"]}
    for case in cases:
        if case.protocol_hash != protocol.content_hash:
            raise ValueError(f"case {case.object_id} has protocol hash {case.protocol_hash}, "
                             f"not {protocol.name}'s {protocol.content_hash}")
        path = export_case(case, root).relative_to(root).as_posix()
        entries[path] = {"object_id": case.object_id, "n_views": case.n_views,
                         "degree": case.degree, "path": path}
    manifest = root / "manifest.json"
    atomic_write_bytes(manifest, _dump({
        "format": "amodal-bench-cases", "format_version": FORMAT_VERSION,
        "protocol": {"name": protocol.name, "content_hash": protocol.content_hash},
        "dataset": dataset, "cases": [entries[p] for p in sorted(entries)],
        "conventions": CONVENTIONS}))
    return manifest


def _json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ValueError(f"missing file {path}") from e
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"unreadable JSON {path}: {e}") from e
    if not isinstance(d, dict) or d.get("format_version") != FORMAT_VERSION:
        got = d.get("format_version") if isinstance(d, dict) else None
        raise ValueError(f"{path}: format_version {got!r}, this harness reads {FORMAT_VERSION}")
    return d


def read_manifest(root: Path) -> dict:
    """CASES/manifest.json, with its format version checked."""
    return _json(Path(root) / "manifest.json")


def read_case_json(case_dir: Path) -> dict:
    """<case_dir>/case.json as written by export_case, with its format version checked (no views
    read); ValueError when it is missing or unreadable."""
    return _json(Path(case_dir) / "case.json")


def case_dirs(root: Path) -> list[Path]:
    """The case directories the manifest lists, in manifest order."""
    return [Path(root) / e["path"] for e in read_manifest(root)["cases"]]


def _image(path: Path, shape: tuple[int, ...], mask: bool) -> np.ndarray:
    try:
        with Image.open(path) as im:
            a = np.array(im)
    except FileNotFoundError as e:
        raise ValueError(f"missing file {path}") from e
    except (OSError, ValueError) as e:  # PIL: UnidentifiedImageError, truncated data
        raise ValueError(f"unreadable PNG {path}: {e}") from e
    if a.dtype != np.uint8 or a.shape != shape:
        raise ValueError(f"{path}: expected uint8 {shape}, got {a.dtype} {a.shape}")
    if mask:
        if not np.isin(a, (0, 255)).all():
            raise ValueError(f"{path}: mask values must be 0 or 255, found {np.unique(a)[:8]}")
        return a == 255
    return a


def read_case(case_dir: Path) -> AmodalCase:
    """Read a case written by export_case; raises ValueError naming the offending file."""
    case_dir = Path(case_dir)
    meta_path = case_dir / "case.json"
    d = _json(meta_path)
    views = []
    try:
        for k, v in enumerate(d["views"]):
            cam = v["camera"]
            if cam.get("convention") != CONVENTION:
                raise ValueError(f"{meta_path}: view {k} camera convention is "
                                 f"{cam.get('convention')!r}, expected {CONVENTION!r}")
            camera = Camera.from_json(cam)
            hw = (camera.height, camera.width)
            depth_path = case_dir / v["depth"]
            try:
                depth = np.load(depth_path, allow_pickle=False)
            except FileNotFoundError as e:
                raise ValueError(f"missing file {depth_path}") from e
            except (OSError, ValueError) as e:
                raise ValueError(f"unreadable depth {depth_path}: {e}") from e
            if depth.dtype != np.float32 or depth.shape != hw:
                raise ValueError(f"{depth_path}: expected float32 {hw}, got {depth.dtype} "
                                 f"{depth.shape}")
            views.append(InputView(camera, _image(case_dir / v["rgb"], (*hw, 3), False),
                                   _image(case_dir / v["visibility_mask"], hw, True),
                                   _image(case_dir / v["occlusion_mask"], hw, True), depth,
                                   float(v["yaw_deg"]), float(v["pitch_deg"])))
        if len(views) != d["n_views"]:
            raise ValueError(f"{meta_path}: n_views {d['n_views']} but {len(views)} views")
        degree = d.get("degree")
        return AmodalCase(object_id=d["object_id"], protocol=d["protocol"],
                          protocol_hash=d["protocol_hash"], n_views=int(d["n_views"]),
                          seed=int(d["seed"]), views=views, background=d["background"],
                          occlusion_ratio=float(d["occlusion_ratio"]), source="",
                          degree=None if degree is None else float(degree),
                          meta=d.get("meta", {}))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{meta_path}: malformed ({type(e).__name__}: {e})") from e


def output_path(case_dir: Path, method: str, ext: str = "glb") -> Path:
    """Where `method` writes its result for this case: <case_dir>/output/<method>/mesh.<ext>."""
    ext = ext.lstrip(".").lower()
    if ext not in OUTPUT_EXTS:
        raise ValueError(f"output format {ext!r}; valid: {', '.join(OUTPUT_EXTS)}")
    return Path(case_dir) / "output" / _name(method, "method") / f"mesh.{ext}"
