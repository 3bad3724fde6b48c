"""Shared fixtures for the amodal-bench unit tests.

Tests that read the real Google Scanned Objects take the `gso_root` fixture, which skips them
with a clear reason when the data is not where bench.inputs.dataset.default_root('gso') points
(../shared/data/gso next to the repository, or $AMODAL_BENCH_GSO).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.inputs.assets import Mesh
from bench.inputs.dataset import default_root

# Small real objects, used where a test needs a real GSO mesh but not a big one.
SMALL_GSO_OBJECT = "Diet_Pepsi_Soda_Cola12_Pack_12_oz_Cans"  # ~2k faces, ~120 kB OBJ
TEXTURED_GSO_OBJECT = "Android_Lego"  # ~14k faces, 1024^2 texture


@pytest.fixture(scope="session")
def gso_root() -> Path:
    """The GSO data root; skips the test when the data is absent."""
    root = default_root("gso")
    if not root.is_dir():
        pytest.skip(f"GSO data not found at {root} (set AMODAL_BENCH_GSO or place the data at "
                    "../shared/data/gso)")
    return root


def gso_mesh_path(root: Path, object_id: str) -> Path:
    path = root / object_id / "meshes" / "model.obj"
    if not path.is_file():
        pytest.skip(f"GSO object {object_id} not found at {path}")
    return path


@pytest.fixture(scope="session")
def small_gso_path(gso_root: Path) -> Path:
    return gso_mesh_path(gso_root, SMALL_GSO_OBJECT)


@pytest.fixture(scope="session")
def small_gso_mesh(small_gso_path: Path) -> Mesh:
    """A small real GSO mesh in the TRELLIS object frame (read once per session)."""
    from bench.inputs.assets import load_asset

    return load_asset(small_gso_path).mesh


def textured_quad() -> Mesh:
    """A unit quad in the z = 0 plane (2 triangles) with UVs and a 4x4 two-colour texture."""
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    f = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    tex = np.zeros((4, 4, 3), np.uint8)
    tex[:2, :, 0] = 255  # top half red
    tex[2:, :, 2] = 255  # bottom half blue
    return Mesh(v, f, uv, tex)


@pytest.fixture
def quad_mesh() -> Mesh:
    return textured_quad()



def one_view_protocol(tmp: Path) -> str:
    """amodal3r-gso with a single setting (1 view), same inputs (seed key), and the fast unlit GT
    renderer (raster-unlit) instead of Cycles, to keep tests short."""
    import yaml

    from bench.inputs.protocol import PROTOCOL_DIR

    spec = yaml.safe_load((PROTOCOL_DIR / "amodal3r-gso.yaml").read_text())
    spec["input"]["views"] = [1]
    spec["seed"] = "amodal3r-gso"
    spec["gt_appearance"] = "raster-unlit"
    path = tmp / "amodal3r-gso-1view.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)
