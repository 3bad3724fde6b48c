"""3D Gaussian splats: a dataclass, the standard 3DGS PLY layout, and frame changes.

PLY layout (graphdeco-inria 3DGS; TRELLIS `Gaussian.save_ply`, trellis/representations/gaussian/
gaussian_model.py): one `vertex` element with float properties
    x y z  nx ny nz  f_dc_0..2  [f_rest_0..3K-1]  opacity  scale_0..2  rot_0..3
where opacity is stored as a logit (the file holds inverse_sigmoid(opacity)), scales as logs
(log(scale)), rot as an unnormalised quaternion (w, x, y, z), and f_rest channel-major
(f_rest_{c*K + k} is SH coefficient k + 1 of colour channel c). TRELLIS writes sh_degree 0 (no
f_rest). Normals are written as zeros and ignored on reading.

The dataclass holds *activated* values (opacity in [0, 1], positive scales, unit quaternions),
the values a rasterizer consumes.

Frames. TRELLIS `save_ply` applies its default transform T = [[1,0,0],[0,0,-1],[0,1,0]] as
xyz @ T.T and R -> T @ R, i.e. it maps the Z-up object frame by xyz' = T xyz = (x, -z, y): the
*inverse* of the rotation `to_glb` applies to meshes (v @ T = (x, z, -y), Y-up). A TRELLIS PLY
therefore has up = -Y, not +Y: `TRELLIS_PLY_TO_Z_UP` undoes save_ply, `Y_UP_TO_Z_UP` undoes
to_glb's (glTF) rotation; do not mix them up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.inputs.assets import Z_UP_TO_Y_UP

# column-vector rotations p_zup = M @ p_file
Y_UP_TO_Z_UP = Z_UP_TO_Y_UP.copy()  # glTF / to_glb: y_up_to_z_up(v) = v @ T.T = (T @ v.T).T
TRELLIS_PLY_TO_Z_UP = Z_UP_TO_Y_UP.T.copy()  # undoes save_ply's xyz' = T xyz

_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4",
              "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
_OPACITY_EPS = 1e-7  # opacities are clipped to [eps, 1 - eps] before the logit, so the file is finite


@dataclass
class Gaussians:
    """N 3D Gaussians, activated values.

    xyz: (N, 3) float32 centres. opacity: (N,) float32 in [0, 1]. scales: (N, 3) float32 > 0,
    standard deviations along the local axes. rotations: (N, 4) float32 unit quaternions (w, x, y, z).
    sh_dc: (N, 3) float32 degree-0 SH coefficients per RGB channel (colour = 0.5 + C0 * sh_dc,
    C0 = 0.28209479). sh_rest: (N, K, 3) float32 higher-order SH coefficients, or None.
    """

    xyz: np.ndarray
    opacity: np.ndarray
    scales: np.ndarray
    rotations: np.ndarray
    sh_dc: np.ndarray
    sh_rest: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyz = np.ascontiguousarray(self.xyz, dtype=np.float32).reshape(-1, 3)
        n = len(self.xyz)
        self.opacity = np.ascontiguousarray(self.opacity, dtype=np.float32).reshape(n)
        self.scales = np.ascontiguousarray(self.scales, dtype=np.float32).reshape(n, 3)
        self.rotations = np.ascontiguousarray(self.rotations, dtype=np.float32).reshape(n, 4)
        self.sh_dc = np.ascontiguousarray(self.sh_dc, dtype=np.float32).reshape(n, 3)
        if self.sh_rest is not None:
            self.sh_rest = np.ascontiguousarray(self.sh_rest, dtype=np.float32).reshape(n, -1, 3)

    def __len__(self) -> int:
        return len(self.xyz)

    def validate(self) -> None:
        """Raise ValueError naming the first problem (non-finite values, out-of-range activations)."""
        for name in ("xyz", "opacity", "scales", "rotations", "sh_dc"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"Gaussians.{name} holds NaN or infinite values")
        if ((self.opacity < 0) | (self.opacity > 1)).any():
            raise ValueError("Gaussians.opacity must lie in [0, 1]")
        if (self.scales <= 0).any():
            raise ValueError("Gaussians.scales must be positive")
        if (np.abs(np.linalg.norm(self.rotations, axis=1) - 1) > 1e-3).any():
            raise ValueError("Gaussians.rotations must be unit quaternions (w, x, y, z)")


# ----------------------------------------------------------------------------- quaternions
def normalize_quaternions(q: np.ndarray) -> np.ndarray:
    """(N, 4) -> unit quaternions; a zero quaternion raises ValueError."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if (n == 0).any():
        raise ValueError("zero quaternion cannot be normalised")
    return q / n


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (w, x, y, z), any norm -> (N, 3, 3) rotation matrices (column vectors)."""
    w, x, y, z = np.moveaxis(normalize_quaternions(q), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions (w, x, y, z) with w >= 0
    (Shepperd's method: the largest of the four squared components is taken first)."""
    m = np.asarray(m, dtype=np.float64).reshape(-1, 3, 3)
    tr = np.trace(m, axis1=1, axis2=2)
    diag = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], 1)
    pick = np.argmax(diag, axis=1)
    q = np.empty((len(m), 4))
    for k in range(4):
        i = pick == k
        if not i.any():
            continue
        a = m[i]
        if k == 0:
            s = np.sqrt(1 + tr[i]) * 2
            q[i] = np.stack([s / 4, (a[:, 2, 1] - a[:, 1, 2]) / s, (a[:, 0, 2] - a[:, 2, 0]) / s,
                             (a[:, 1, 0] - a[:, 0, 1]) / s], 1)
        elif k == 1:
            s = np.sqrt(1 + a[:, 0, 0] - a[:, 1, 1] - a[:, 2, 2]) * 2
            q[i] = np.stack([(a[:, 2, 1] - a[:, 1, 2]) / s, s / 4, (a[:, 0, 1] + a[:, 1, 0]) / s,
                             (a[:, 0, 2] + a[:, 2, 0]) / s], 1)
        elif k == 2:
            s = np.sqrt(1 + a[:, 1, 1] - a[:, 0, 0] - a[:, 2, 2]) * 2
            q[i] = np.stack([(a[:, 0, 2] - a[:, 2, 0]) / s, (a[:, 0, 1] + a[:, 1, 0]) / s, s / 4,
                             (a[:, 1, 2] + a[:, 2, 1]) / s], 1)
        else:
            s = np.sqrt(1 + a[:, 2, 2] - a[:, 0, 0] - a[:, 1, 1]) * 2
            q[i] = np.stack([(a[:, 1, 0] - a[:, 0, 1]) / s, (a[:, 0, 2] + a[:, 2, 0]) / s,
                             (a[:, 1, 2] + a[:, 2, 1]) / s, s / 4], 1)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return normalize_quaternions(q)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (..., 4) quaternions (w, x, y, z): the rotation b, then a."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], -1)


# ----------------------------------------------------------------------------- frames
def transform_gaussians(g: Gaussians, rotation: np.ndarray | None = None, scale: float = 1.0,
                        translation: np.ndarray | None = None) -> Gaussians:
    """Apply p -> scale * (rotation @ p) + translation (column vectors) to every Gaussian:
    centres move, orientations compose (q' = q_rotation * q), scales multiply by `scale`.

    rotation: (3, 3) proper rotation (det +1); a reflection cannot act on a Gaussian's quaternion.
    """
    m = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    if m.shape != (3, 3) or not np.allclose(m @ m.T, np.eye(3), atol=1e-6) \
            or not np.isclose(np.linalg.det(m), 1.0, atol=1e-6):
        raise ValueError(f"rotation must be a proper 3x3 rotation matrix, got {m.tolist()}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    t = np.zeros(3) if translation is None else np.asarray(translation, dtype=np.float64).reshape(3)
    xyz = scale * (g.xyz.astype(np.float64) @ m.T) + t
    q = quaternion_multiply(matrix_to_quaternion(m[None])[0], g.rotations.astype(np.float64))
    return replace(g, xyz=xyz, rotations=normalize_quaternions(q), scales=g.scales * scale)


def trellis_ply_to_z_up(g: Gaussians) -> Gaussians:
    """Undo TRELLIS `save_ply`'s default transform (xyz' = T xyz, R' = T R)."""
    return transform_gaussians(g, TRELLIS_PLY_TO_Z_UP)


def y_up_to_z_up(g: Gaussians) -> Gaussians:
    """Gaussians in a glTF-style Y-up frame (as `to_glb` meshes) -> Z-up object frame."""
    return transform_gaussians(g, Y_UP_TO_Z_UP)


# ----------------------------------------------------------------------------- PLY
def _parse_header(path: Path, f) -> tuple[str, int, list[tuple[str, str]]]:
    first = f.readline()
    if first.strip() != b"ply":
        raise ValueError(f"{path}: not a PLY file (first line {first[:20]!r})")
    fmt, count, props, element = None, None, [], None
    while True:
        line = f.readline()
        if not line:
            raise ValueError(f"{path}: PLY header has no end_header")
        words = line.decode("ascii", "replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            element = words[1]
            if element == "vertex":
                count = int(words[2])
            elif count is None:
                raise ValueError(f"{path}: element {element!r} before 'vertex' is not supported")
        elif words[0] == "property" and element == "vertex":
            if words[1] == "list":
                raise ValueError(f"{path}: list property {words[-1]!r} in the vertex element")
            if words[1] not in _PLY_TYPES:
                raise ValueError(f"{path}: unknown PLY type {words[1]!r}")
            props.append((words[2], _PLY_TYPES[words[1]]))
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise ValueError(f"{path}: unsupported PLY format {fmt!r}")
    if count is None:
        raise ValueError(f"{path}: no vertex element")
    return fmt, count, props


def read_gaussian_ply(path: str | os.PathLike) -> Gaussians:
    """Read a 3DGS PLY (module docstring), in the file's own axes; activations applied
    (opacity = sigmoid, scales = exp, rotations normalised). Raises ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Gaussian PLY not found: {path}")
    with open(path, "rb") as f:
        fmt, count, props = _parse_header(path, f)
        names = [p for p, _ in props]
        missing = [p for p in _REQUIRED if p not in names]
        if missing:
            raise ValueError(f"{path}: not a 3D Gaussian PLY, missing properties {missing}")
        if fmt == "ascii":
            table = np.loadtxt(f, dtype=np.float64, max_rows=count, ndmin=2)
            if table.shape != (count, len(props)):
                raise ValueError(f"{path}: expected {count} x {len(props)} values, got {table.shape}")
            data = {p: table[:, i] for i, p in enumerate(names)}
        else:
            order = "<" if fmt == "binary_little_endian" else ">"
            dtype = np.dtype([(p, order + t) for p, t in props])
            buf = f.read(dtype.itemsize * count)
            if len(buf) != dtype.itemsize * count:
                raise ValueError(f"{path}: truncated, {len(buf) // dtype.itemsize} of {count} vertices")
            raw = np.frombuffer(buf, dtype=dtype)
            data = {p: raw[p].astype(np.float64) for p in names}
    rest = sorted((p for p in names if p.startswith("f_rest_")), key=lambda p: int(p[7:]))
    if len(rest) % 3:
        raise ValueError(f"{path}: {len(rest)} f_rest properties, not a multiple of 3")
    sh_rest = None
    if rest:
        k = len(rest) // 3
        sh_rest = np.stack([data[p] for p in rest], 1).reshape(count, 3, k).transpose(0, 2, 1)
    rot = np.stack([data[f"rot_{i}"] for i in range(4)], 1)
    if count and (np.linalg.norm(rot, axis=1) == 0).any():
        raise ValueError(f"{path}: zero quaternion in rot_0..3")
    with np.errstate(over="ignore"):
        g = Gaussians(
            xyz=np.stack([data["x"], data["y"], data["z"]], 1),
            opacity=1 / (1 + np.exp(-data["opacity"])),
            scales=np.exp(np.stack([data[f"scale_{i}"] for i in range(3)], 1)),
            rotations=normalize_quaternions(rot) if count else rot,
            sh_dc=np.stack([data[f"f_dc_{i}"] for i in range(3)], 1),
            sh_rest=sh_rest)
    try:
        g.validate()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return g


def write_gaussian_ply(path: str | os.PathLike, g: Gaussians) -> Path:
    """Write `g` as a binary little-endian 3DGS PLY (module docstring): opacity as a logit
    (clipped to [1e-7, 1 - 1e-7] first), scales as logs, zero normals. Returns the path."""
    g.validate()
    path = Path(path)
    n = len(g)
    k = 0 if g.sh_rest is None else g.sh_rest.shape[1]
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * k)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    table = np.empty((n, len(names)), dtype=np.float64)
    table[:, 0:3] = g.xyz
    table[:, 3:6] = 0.0
    table[:, 6:9] = g.sh_dc
    if k:
        table[:, 9:9 + 3 * k] = g.sh_rest.transpose(0, 2, 1).reshape(n, 3 * k)
    o = np.clip(g.opacity.astype(np.float64), _OPACITY_EPS, 1 - _OPACITY_EPS)
    table[:, 9 + 3 * k] = np.log(o / (1 - o))
    table[:, 10 + 3 * k:13 + 3 * k] = np.log(g.scales.astype(np.float64))
    table[:, 13 + 3 * k:] = g.rotations
    header = "\n".join(["ply", "format binary_little_endian 1.0", f"element vertex {n}",
                        *[f"property float {p}" for p in names], "end_header"]) + "\n"
    body = table.astype("<f4")  # little-endian bytes whatever the host's order
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.ascontiguousarray(body).tobytes())
    return path
