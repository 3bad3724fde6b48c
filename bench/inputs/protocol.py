"""Named evaluation protocols, declared as YAML data in bench/protocols/ (one file each).

A protocol fixes the evaluation rig, how input views are sampled, how occlusion is simulated and
how point clouds are made. Its content hash goes into every record, so numbers from different
protocol versions are never mixed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bench.files import setting_label
from bench.inputs.cameras import Rig
from bench.inputs.protocol_schema import ProtocolError, validate

PROTOCOL_DIR = Path(__file__).parent / "protocols"


@dataclass(frozen=True)
class Setting:
    """One evaluation setting of a protocol: the number of input views and, for occlusion
    sweeps, a fixed 3D occlusion degree (share of faces) instead of the sampled ratio."""

    views: int
    degree: float | None = None

    @property
    def label(self) -> str:
        return setting_label(self.views, self.degree)


BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}  # a protocol's named colours


def background_rgb(name: str) -> np.ndarray:
    """sRGB [0, 1] float32 of a named background (or occluder) colour."""
    if name not in BACKGROUNDS:
        raise ValueError(f"unknown background {name!r}; valid: {', '.join(BACKGROUNDS)}")
    return np.asarray(BACKGROUNDS[name], dtype=np.float32)


@dataclass(frozen=True)
class Protocol:
    name: str
    spec: dict
    content_hash: str

    @property
    def background(self) -> str:
        return self.spec["background"]

    @property
    def import_frame(self) -> str:
        """The frame GT meshes are imported in ("upright" unless the protocol names one)."""
        return self.spec.get("import_frame", "upright")

    @property
    def gt_appearance(self) -> str:
        """The GT appearance renderer of the eval rig: cycles-trellis, cycles-gena3d or the fast,
        non-standard raster-unlit (the default of a protocol that names none)."""
        return self.spec.get("gt_appearance", "raster-unlit")

    @property
    def view_settings(self) -> list[int]:
        return [int(v) for v in self.spec["input"]["views"]]

    @property
    def settings(self) -> list[Setting]:
        """views x occlusion degrees (a sweep lists `occlusion.degrees`; otherwise one None)."""
        degrees = self.spec["occlusion"].get("degrees") or [None]
        return [Setting(v, None if d is None else float(d)) for d in degrees
                for v in self.view_settings]

    def eval_rig(self) -> Rig:
        return Rig.from_spec(f"{self.name}/eval", self.spec["eval_rig"])

    def seed_for(self, object_id: str) -> int:
        """The one seed of (protocol, object): all randomness of a case flows from it.

        Derived from the protocol's `seed` key (default: its name) and the object id, not from
        the content hash, so a variant that only changes evaluation settings (e.g. the point
        sampler) can declare `seed: <parent name>` and see exactly the same occluded inputs.
        Records still carry the content hash, so results of different versions never mix."""
        key = self.spec.get("seed", self.name)
        h = hashlib.sha256(f"{key}/{object_id}".encode()).digest()
        return int.from_bytes(h[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def list_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))


GT_RENDERERS = ("cycles-trellis", "cycles-gena3d", "raster-unlit")


def load_protocol(name_or_path: str) -> Protocol:
    """Load a protocol by name (bench/protocols/<name>.yaml) or from a YAML path.

    `<protocol>+<renderer>` (e.g. amodal3r-gso+raster-unlit) is the protocol with another GT
    appearance renderer (GT_RENDERERS): its own name, content hash and GT cache keys, and the
    same seed, so its occluded inputs are the parent's exactly. It is how tests, the demo and CI
    use the fast unlit path; tables mark raster-unlit rows."""
    base, sep, renderer = str(name_or_path).rpartition("+")
    if sep and renderer in GT_RENDERERS:
        parent = load_protocol(base)
        spec = {**parent.spec, "name": f"{parent.name}+{renderer}", "gt_appearance": renderer,
                "seed": parent.spec.get("seed", parent.name)}
        canonical = json.dumps(spec, sort_keys=True).encode()
        return Protocol(spec["name"], spec, hashlib.sha256(canonical).hexdigest()[:16])
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PROTOCOL_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown protocol {name_or_path!r}; valid: "
                             f"{', '.join(list_protocols())}")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ProtocolError(f"protocol {path}: not valid YAML:{where} {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProtocolError(f"protocol {path}: cannot be read: {e}") from None
    if spec is None:
        raise ProtocolError(f"protocol {path}: the file is empty")
    validate(spec, path, BACKGROUNDS)
    canonical = json.dumps(spec, sort_keys=True).encode()
    return Protocol(spec["name"], spec, hashlib.sha256(canonical).hexdigest()[:16])
