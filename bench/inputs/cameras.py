"""Cameras and rigs in the TRELLIS convention.

World frame: the TRELLIS object frame, Z-up, object in [-0.5, 0.5]^3.
A camera at TRELLIS (yaw, pitch, r) sits at r * (sin yaw cos pitch, cos yaw cos pitch, sin pitch)
and looks at the origin with +Z up (TRELLIS trellis/utils/render_utils.py
`yaw_pitch_r_fov_to_extrinsics_intrinsics`). Extrinsics are OpenCV world-to-camera
(x right, y down, z forward, as utils3d `extrinsics_look_at`); intrinsics are in pixels.
The Blender scripts of TRELLIS/GENA3D use blender_yaw = 90 deg - trellis_yaw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A pinhole camera.

    extrinsics: (4, 4) float64, OpenCV world-to-camera.
    intrinsics: (3, 3) float64, pixels; pixel centres at integer + 0.5, origin top-left.
    """

    extrinsics: np.ndarray
    intrinsics: np.ndarray
    width: int
    height: int

    @property
    def position(self) -> np.ndarray:
        """(3,) camera centre in world coordinates."""
        r, t = self.extrinsics[:3, :3], self.extrinsics[:3, 3]
        return -r.T @ t

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) OpenCV camera coordinates (z = depth in metres)."""
        return points @ self.extrinsics[:3, :3].T + self.extrinsics[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points -> ((N, 2) pixel coordinates (u right, v down), (N,) camera z)."""
        pc = self.world_to_camera(points)
        z = pc[:, 2]
        uvw = pc @ self.intrinsics.T
        return uvw[:, :2] / z[:, None], z

    def unproject(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) camera-z depth (0 = no surface) -> (M, 3) world points of the valid pixels."""
        v, u = np.nonzero(depth > 0)
        z = depth[v, u].astype(np.float64)
        k = self.intrinsics
        x = (u + 0.5 - k[0, 2]) / k[0, 0] * z
        y = (v + 0.5 - k[1, 2]) / k[1, 1] * z
        pc = np.stack([x, y, z], axis=1)
        r, t = self.extrinsics[:3, :3], self.extrinsics[:3, 3]
        return (pc - t) @ r  # R^T (pc - t), row-vector form

    def to_json(self) -> dict:
        return {
            "convention": "opencv_world_to_camera",
            "extrinsics": self.extrinsics.tolist(),
            "intrinsics_pixels": self.intrinsics.tolist(),
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, d: dict) -> Camera:
        return cls(np.asarray(d["extrinsics"], float), np.asarray(d["intrinsics_pixels"], float),
                   int(d["width"]), int(d["height"]))


def look_at_extrinsics(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera (4, 4): z towards the target, y down, x right (utils3d convention)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(-up, z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.stack([x, y, z], axis=0)
    ext = np.eye(4)
    ext[:3, :3] = r
    ext[:3, 3] = -r @ eye
    return ext


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> np.ndarray:
    """(3, 3) pixel intrinsics for a square-pixel camera with the given FoV (TRELLIS: fx = 0.5/tan(fov/2)
    in normalized units, i.e. fx = W/2/tan(fov/2) in pixels; the FoV spans both axes when W = H)."""
    f = 0.5 / np.tan(np.deg2rad(fov_deg) / 2)
    return np.array([[f * width, 0, width / 2], [0, f * height, height / 2], [0, 0, 1.0]])


def camera_from_yaw_pitch(yaw_deg: float, pitch_deg: float, radius: float, fov_deg: float,
                          resolution: int) -> Camera:
    """A camera in the TRELLIS yaw convention (see module docstring), looking at the origin."""
    yaw, pitch = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    eye = radius * np.array([np.sin(yaw) * np.cos(pitch), np.cos(yaw) * np.cos(pitch),
                             np.sin(pitch)])
    ext = look_at_extrinsics(eye, np.zeros(3), np.array([0.0, 0.0, 1.0]))
    return Camera(ext, intrinsics_from_fov(fov_deg, resolution, resolution), resolution, resolution)


@dataclass(frozen=True)
class Rig:
    """A named set of cameras (e.g. the Amodal3R 4-view evaluation rig)."""

    name: str
    cameras: tuple[Camera, ...]
    yaws_deg: tuple[float, ...]
    pitches_deg: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.cameras)

    @classmethod
    def from_spec(cls, name: str, spec: dict) -> Rig:
        """Build from a protocol's rig spec: yaws_deg (list), pitch_deg (scalar or list),
        radius, fov_deg, resolution."""
        yaws = [float(y) for y in spec["yaws_deg"]]
        pitch = spec["pitch_deg"]
        pitches = ([float(p) for p in pitch] if isinstance(pitch, (list, tuple))
                   else [float(pitch)] * len(yaws))
        if len(pitches) != len(yaws):
            raise ValueError(f"rig {name}: {len(yaws)} yaws but {len(pitches)} pitches")
        cams = tuple(camera_from_yaw_pitch(y, p, float(spec["radius"]), float(spec["fov_deg"]),
                                           int(spec["resolution"])) for y, p in zip(yaws, pitches))
        return cls(name, cams, tuple(yaws), tuple(pitches))


def _radical_inverse_base2(i: int) -> float:
    """Van der Corput radical inverse of i in base 2 (bits of i mirrored behind the point)."""
    val, f = 0.0, 0.5
    while i > 0:
        val += (i & 1) * f
        i >>= 1
        f *= 0.5
    return val


def sphere_hammersley(num: int, offset: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """TRELLIS's view pool (dataset_toolkits/utils.py `sphere_hammersley_sequence`, called by
    dataset_toolkits/render.py with offset = (rand(), rand()) per object): point i of `num` is
    (u, v) = (i / num + offset_0 / num, radical_inverse_2(i) + offset_1), u warped piecewise
    (2u below 1/4, else 2u/3 + 1/3), pitch = arccos(1 - 2u) - 90 deg, Blender yaw = 360 v deg.

    Returns (yaws_deg, pitches_deg) in the TRELLIS render_utils convention of this module
    (yaw = 90 deg - Blender yaw, the Blender script's convention), yaws in [0, 360)."""
    yaws, pitches = np.empty(num), np.empty(num)
    for i in range(num):
        u = i / num + offset[0] / num
        v = _radical_inverse_base2(i) + offset[1]
        u = 2 * u if u < 0.25 else 2 / 3 * u + 1 / 3
        pitches[i] = np.rad2deg(np.arccos(1 - 2 * u) - np.pi / 2)
        yaws[i] = (90.0 - np.rad2deg(v * 2 * np.pi)) % 360.0
    return yaws, pitches


def input_view_pool(spec: dict, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The pool a protocol's input views are drawn from (protocol `input` section), as
    (yaws_deg, pitches_deg), or None for uniform yaw / pitch ranges (no pool).

    hammersley: TRELLIS's sequence of `pool.views` with a random offset drawn from the object's
    seed (a stream of its own: every setting of an object sees the same pool, as TRELLIS renders
    one pool per object); fixed: `pool.yaws_deg` at `pool.pitch_deg` (GENA3D's 8 yaws)."""
    pool = spec.get("pool", {"kind": "uniform"})
    if pool["kind"] == "uniform":
        return None
    if pool["kind"] == "fixed":
        yaws = np.asarray(pool["yaws_deg"], float)
        return yaws, np.full(len(yaws), float(pool["pitch_deg"]))
    offset = np.random.default_rng([seed, 0x5EED_9001]).random(2)
    return sphere_hammersley(int(pool["views"]), (float(offset[0]), float(offset[1])))
