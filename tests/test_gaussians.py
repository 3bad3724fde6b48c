"""bench.inputs.gaussians: the 3DGS PLY layout on real files, quaternions, and frame changes.

References: scipy.spatial.transform.Rotation (quaternions), trimesh's own PLY reader (an
independent parser of the files written here), a PLY written field by field with numpy in the
layout TRELLIS `save_ply` produces, and covariances R S^2 R^T built directly.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from bench.inputs.assets import Z_UP_TO_Y_UP
from bench.inputs.gaussians import (
    TRELLIS_PLY_TO_Z_UP,
    Gaussians,
    matrix_to_quaternion,
    normalize_quaternions,
    quaternion_multiply,
    quaternion_to_matrix,
    read_gaussian_ply,
    transform_gaussians,
    trellis_ply_to_z_up,
    write_gaussian_ply,
    y_up_to_z_up,
)

# TRELLIS save_ply's attribute order (construct_list_of_attributes, sh_degree 0)
TRELLIS_LAYOUT = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def random_gaussians(n=64, k=0, seed=0) -> Gaussians:
    rng = np.random.default_rng(seed)
    return Gaussians(xyz=rng.normal(size=(n, 3)) * 0.3, opacity=rng.uniform(0.02, 0.98, n),
                     scales=rng.uniform(1e-3, 5e-2, (n, 3)),
                     rotations=normalize_quaternions(rng.normal(size=(n, 4))),
                     sh_dc=rng.normal(size=(n, 3)), sh_rest=rng.normal(size=(n, k, 3)) if k else None)


def covariances(g: Gaussians) -> np.ndarray:
    r = Rotation.from_quat(g.rotations[:, [1, 2, 3, 0]].astype(np.float64)).as_matrix()
    s2 = np.einsum("ni,ij->nij", g.scales.astype(np.float64) ** 2, np.eye(3))
    return r @ s2 @ r.transpose(0, 2, 1)


def test_quaternions_match_scipy():
    q = np.random.default_rng(1).normal(size=(200, 4))
    m = quaternion_to_matrix(q)
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()  # scipy is (x, y, z, w)
    assert np.abs(m - ref).max() < 1e-12
    back = matrix_to_quaternion(m)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    assert np.abs(back - qn * np.sign(qn[:, :1])).max() < 1e-12
    # 180-degree rotations (trace -1): the branches of Shepperd's method other than w
    for mat in (np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), Z_UP_TO_Y_UP):
        assert np.abs(quaternion_to_matrix(matrix_to_quaternion(mat)) [0] - mat).max() < 1e-12
    a, b = Rotation.random(5, random_state=2), Rotation.random(5, random_state=3)
    prod = quaternion_multiply(a.as_quat()[:, [3, 0, 1, 2]], b.as_quat()[:, [3, 0, 1, 2]])
    assert np.abs(quaternion_to_matrix(prod) - (a * b).as_matrix()).max() < 1e-12


def test_round_trip_through_a_real_file(tmp_path):
    g = random_gaussians(n=50, k=15)  # sh degree 3: 15 coefficients per channel
    path = write_gaussian_ply(tmp_path / "splat.ply", g)
    h = read_gaussian_ply(path)
    assert len(h) == 50 and h.sh_rest.shape == (50, 15, 3)
    assert np.array_equal(h.xyz, g.xyz) and np.array_equal(h.sh_dc, g.sh_dc)
    assert np.array_equal(h.sh_rest, g.sh_rest) and np.array_equal(h.rotations, g.rotations)
    # activations round trip through float32 logits / logs
    assert np.allclose(h.opacity, g.opacity, rtol=0, atol=1e-6)
    assert np.allclose(h.scales, g.scales, rtol=1e-6)


def test_file_layout_read_by_trimesh(tmp_path):
    """trimesh parses our file independently: the 3DGS property order, pre-activation values."""
    g = random_gaussians(n=20, k=3)
    path = write_gaussian_ply(tmp_path / "splat.ply", g)
    header = path.read_bytes().split(b"end_header")[0].decode()
    assert "format binary_little_endian 1.0" in header and "element vertex 20" in header
    cloud = trimesh.load(path)
    assert isinstance(cloud, trimesh.PointCloud)
    raw = cloud.metadata["_ply_raw"]["vertex"]["data"]
    rest = [f"f_rest_{i}" for i in range(9)]
    assert list(raw.dtype.names) == TRELLIS_LAYOUT[:9] + rest + TRELLIS_LAYOUT[9:]
    assert np.allclose(raw["opacity"], np.log(g.opacity / (1 - g.opacity)), atol=1e-5)
    assert np.allclose(raw["scale_1"], np.log(g.scales[:, 1]), atol=1e-6)
    assert np.array_equal(raw["nx"], np.zeros(20, np.float32))
    # f_rest is channel-major: f_rest_{c*K + k} = coefficient k of channel c (K = 3 here)
    assert np.array_equal(raw["f_rest_4"], g.sh_rest[:, 1, 1])
    assert np.array_equal(raw["f_rest_2"], g.sh_rest[:, 2, 0])


def _trellis_style_ply(path, xyz, opacity_logit, log_scales, rot, f_dc, big_endian=False):
    """A PLY as TRELLIS save_ply writes it (plyfile, vertex element, float properties)."""
    order = ">" if big_endian else "<"
    data = np.empty(len(xyz), dtype=[(p, order + "f4") for p in TRELLIS_LAYOUT])
    for i, c in enumerate("xyz"):
        data[c] = xyz[:, i]
        data[f"n{c}"] = 0
    for i in range(3):
        data[f"f_dc_{i}"] = f_dc[:, i]
        data[f"scale_{i}"] = log_scales[:, i]
    data["opacity"] = opacity_logit
    for i in range(4):
        data[f"rot_{i}"] = rot[:, i]
    fmt = "binary_big_endian" if big_endian else "binary_little_endian"
    header = "\n".join(["ply", f"format {fmt} 1.0", "comment written like plyfile",
                        f"element vertex {len(xyz)}", *[f"property float {p}" for p in TRELLIS_LAYOUT],
                        "end_header"]) + "\n"
    path.write_bytes(header.encode() + data.tobytes())
    return path


@pytest.mark.parametrize("big_endian", [False, True])
def test_reads_a_trellis_layout_file_with_activations(tmp_path, big_endian):
    rng = np.random.default_rng(4)
    n = 30
    xyz, logit, log_s = rng.normal(size=(n, 3)), rng.normal(size=n) * 3, rng.normal(size=(n, 3)) - 4
    rot = rng.normal(size=(n, 4)) * 2  # unnormalised, as TRELLIS stores _rotation + bias
    f_dc = rng.normal(size=(n, 3))
    g = read_gaussian_ply(_trellis_style_ply(tmp_path / "t.ply", xyz, logit, log_s, rot, f_dc, big_endian))
    assert g.sh_rest is None
    assert np.allclose(g.xyz, xyz, atol=1e-6) and np.allclose(g.sh_dc, f_dc, atol=1e-6)
    assert np.allclose(g.opacity, 1 / (1 + np.exp(-logit)), atol=1e-6)
    assert np.allclose(g.scales, np.exp(log_s), rtol=1e-5)
    assert np.allclose(g.rotations, rot / np.linalg.norm(rot, axis=1, keepdims=True), atol=1e-6)


def test_reads_ascii(tmp_path):
    g = random_gaussians(n=3)
    names = TRELLIS_LAYOUT
    rows = np.column_stack([g.xyz, np.zeros((3, 3)), g.sh_dc, np.log(g.opacity / (1 - g.opacity)),
                            np.log(g.scales), g.rotations])
    text = "\n".join(["ply", "format ascii 1.0", "element vertex 3", *[f"property float {p}" for p in names],
                      "end_header", *[" ".join(f"{x:.9g}" for x in r) for r in rows]]) + "\n"
    (tmp_path / "a.ply").write_text(text)
    h = read_gaussian_ply(tmp_path / "a.ply")
    assert np.allclose(h.xyz, g.xyz, atol=1e-6) and np.allclose(h.opacity, g.opacity, atol=1e-6)


def test_transform_moves_covariances_like_a_rigid_motion():
    g = random_gaussians(n=40)
    m = Rotation.from_euler("xyz", [30, -70, 115], degrees=True).as_matrix()
    t = np.array([0.1, -0.2, 0.3])
    h = transform_gaussians(g, m, scale=2.5, translation=t)
    assert np.allclose(h.xyz, 2.5 * g.xyz @ m.T + t, atol=1e-6)
    assert np.allclose(covariances(h), 2.5**2 * m @ covariances(g) @ m.T, atol=1e-8)
    assert np.allclose(h.opacity, g.opacity) and np.array_equal(h.sh_dc, g.sh_dc)
    with pytest.raises(ValueError, match="proper 3x3 rotation"):
        transform_gaussians(g, np.diag([1.0, 1, -1]))  # a reflection


def test_undoing_trellis_save_ply_and_gltf_rotations():
    """save_ply maps Z-up by xyz @ T.T (R -> T R): the inverse of to_glb's v @ T. Each has its
    own inverse; using the glTF one on a save_ply file turns the object upside down."""
    g = random_gaussians(n=40)
    t = Z_UP_TO_Y_UP
    rot_ply = matrix_to_quaternion(t @ quaternion_to_matrix(g.rotations))
    ply = Gaussians(g.xyz @ t.T, g.opacity, g.scales, rot_ply, g.sh_dc)  # what save_ply writes
    back = trellis_ply_to_z_up(ply)
    assert np.allclose(back.xyz, g.xyz, atol=1e-6)
    assert np.allclose(covariances(back), covariances(g), atol=1e-9)
    assert np.allclose(TRELLIS_PLY_TO_Z_UP @ t, np.eye(3))
    wrong = y_up_to_z_up(ply)
    assert np.allclose(wrong.xyz[:, 2], -g.xyz[:, 2], atol=1e-6)  # upside down
    gltf = Gaussians(g.xyz @ t, g.opacity, g.scales,  # to_glb-style: v @ T, R -> T^T R
                     matrix_to_quaternion(t.T @ quaternion_to_matrix(g.rotations)), g.sh_dc)
    assert np.allclose(y_up_to_z_up(gltf).xyz, g.xyz, atol=1e-6)


def test_bad_files_raise_naming_the_file(tmp_path):
    not_ply = tmp_path / "x.ply"
    not_ply.write_bytes(b"solid\n")
    with pytest.raises(ValueError, match=f"{not_ply}: not a PLY file"):
        read_gaussian_ply(not_ply)
    mesh_ply = tmp_path / "mesh.ply"
    trimesh.creation.box().export(mesh_ply)
    with pytest.raises(ValueError, match="not a 3D Gaussian PLY, missing properties"):
        read_gaussian_ply(mesh_ply)
    good = write_gaussian_ply(tmp_path / "g.ply", random_gaussians(n=10))
    truncated = tmp_path / "t.ply"
    truncated.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(ValueError, match=f"{truncated}: truncated, 9 of 10"):
        read_gaussian_ply(truncated)
    zero = tmp_path / "z.ply"
    z3 = np.zeros((2, 3))
    _trellis_style_ply(zero, z3, np.zeros(2), z3, np.zeros((2, 4)), z3)
    with pytest.raises(ValueError, match="zero quaternion"):
        read_gaussian_ply(zero)
    with pytest.raises(ValueError, match="not found"):
        read_gaussian_ply(tmp_path / "missing.ply")


def test_validate_refuses_out_of_range_values(tmp_path):
    g = random_gaussians(n=4)
    g.opacity[0] = 1.5
    with pytest.raises(ValueError, match="opacity must lie in"):
        write_gaussian_ply(tmp_path / "bad.ply", g)
    g = random_gaussians(n=4)
    g.xyz[1, 2] = np.nan
    with pytest.raises(ValueError, match="xyz holds NaN"):
        g.validate()
