"""`sam3d`: SAM 3D Objects (facebookresearch/sam-3d-objects, gated weights): one image + the
object's mask -> the object's shape, texture and pose in the camera frame.

Input (`sam3d_inputs`): the view's RGB (H, W, 3) uint8 and the visible-object mask (H, W) bool,
as notebook/inference.py `Inference.__call__(image, mask, seed)` takes them (it writes the mask
into the alpha channel itself); the occluded pixels stay in the occluder colour, SAM 3D is meant
to complete them. SAM 3D is a single-image model: with several views the most visible one is used
(`view_index` in meta). `pointmap_source="case-depth"` would pass the case's own depth as the
`pointmap` argument instead of the MoGe estimate (`pointmap_from_view`); the default is upstream's
(MoGe).

Output (`sam3d_to_world`): output['glb'] is a trimesh in SAM 3D's object frame rotated to Y-up
like TRELLIS `to_glb`; output['gs'] the Gaussians in the Z-up object frame; output['rotation']
(1, 4) wxyz, ['translation'] (1, 3), ['scale'] (1, 3) place the Z-up object in PyTorch3D's camera
frame (X left, Y up, Z forward): p_cam = s * (p_local @ R) + t in PyTorch3D's row-vector
convention with R = quaternion_to_matrix(q) (their layout post-optimisation undoes the glb's Y-up
rotation, then applies this transform). The adapter maps p_cam to OpenCV (negate x, y) and then
to the world with the input camera's extrinsics. MoGe's metric scale is not the object frame's,
so `rescale=True` (default) centres and scales the result as the ground truth (recorded).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from baselines._gpu import (
    GPUAdapter,
    Stack,
    Weights,
    case_seed,
    gaussians_from_trellis,
    load_module_from_file,
    most_visible_view,
    to_numpy,
)
from bench.cases.case import AmodalCase, InputView
from bench.inputs.assets import Mesh, normalize_mesh
from bench.inputs.cameras import Camera
from bench.inputs.gaussians import Gaussians, quaternion_to_matrix, transform_gaussians
from bench.methods.adapter import Generation
from bench.methods.normalize import normalize_output

SAM3D_STACK = Stack(
    "sam3d_objects", "git clone facebookresearch/sam-3d-objects and follow doc/setup.md "
    "(pip install -e '.[inference]', pytorch3d, kaolin, gsplat)",
    repo_env="AMODAL_BENCH_SAM3D_REPO", marker="notebook/inference.py", repo_required=True)
SAM3D_WEIGHTS = Weights("AMODAL_BENCH_SAM3D_WEIGHTS",
                        "the gated facebook/sam-3d-objects checkpoints (their checkpoints/hf)",
                        "pipeline.yaml")
P3D_FROM_OPENCV = np.diag([-1.0, -1.0, 1.0])  # PyTorch3D camera (X left, Y up) <-> OpenCV (X right, Y down)
POINTMAP_SOURCES = ("moge", "case-depth")


def sam3d_inputs(view: InputView) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8, mask (H, W) bool of the visible object pixels)."""
    if not view.visibility_mask.any():
        raise ValueError("the view has no visible object pixels")
    return np.ascontiguousarray(view.rgb, dtype=np.uint8), view.visibility_mask.copy()


def pointmap_from_view(view: InputView) -> np.ndarray:
    """(H, W, 3) float32 camera-space points in PyTorch3D's convention (X left, Y up, Z forward)
    from the view's depth, NaN where there is no depth (pixel centres at integer + 0.5)."""
    depth = view.depth.astype(np.float64)
    h, w = depth.shape
    k = view.camera.intrinsics
    v, u = np.mgrid[0:h, 0:w]
    x = (u + 0.5 - k[0, 2]) / k[0, 0] * depth
    y = (v + 0.5 - k[1, 2]) / k[1, 1] * depth
    points = np.stack([x, y, depth], -1) @ P3D_FROM_OPENCV.T
    points[depth <= 0] = np.nan
    return points.astype(np.float32)


def pose_to_world(rotation: Any, translation: Any, scale: Any,
                  camera: Camera) -> tuple[np.ndarray, float, np.ndarray]:
    """SAM 3D's local-to-camera pose -> (A, s, b) with p_world = s * A @ p_local + b (column
    vectors, p_local in the Z-up object frame); A is a proper rotation.

    p_p3d = s M^T p + t (their row-vector p @ M), p_cv = D p_p3d, p_world = R^T (p_cv - t_w2c),
    so A = R^T D M^T, b = R^T (D t - t_w2c)."""
    q = to_numpy(rotation).reshape(4)
    t = to_numpy(translation).reshape(3).astype(np.float64)
    s3 = to_numpy(scale).reshape(-1).astype(np.float64)
    s = float(s3.mean())
    if not s > 0:
        raise ValueError(f"SAM 3D returned a non-positive scale {s3.tolist()}")
    m = quaternion_to_matrix(q[None])[0]
    r, t_w2c = camera.extrinsics[:3, :3], camera.extrinsics[:3, 3]
    a = r.T @ P3D_FROM_OPENCV @ m.T
    b = r.T @ (P3D_FROM_OPENCV @ t - t_w2c)
    return a, s, b


def sam3d_to_world(output: dict, camera: Camera) -> tuple[Mesh, Gaussians | None, dict]:
    """Mesh (from output['glb'], Y-up local) and Gaussians (output['gs'] or output['gaussian'][0],
    Z-up local) in the world (object) frame of `camera`, plus the record of the pose."""
    a, s, b = pose_to_world(output["rotation"], output["translation"], output["scale"], camera)
    local, _ = normalize_output(output["glb"], up_axis="y", rescale=False)
    mesh = replace(local, vertices=s * (local.vertices.astype(np.float64) @ a.T) + b)
    gs = output.get("gs")
    if gs is None and output.get("gaussian"):
        gs = output["gaussian"][0]
    gaussians = None if gs is None else transform_gaussians(gaussians_from_trellis(gs), a, s, b)
    record = {"pose": {"rotation_wxyz": to_numpy(output["rotation"]).reshape(4).tolist(),
                       "translation": to_numpy(output["translation"]).reshape(3).tolist(),
                       "scale": to_numpy(output["scale"]).reshape(-1).tolist()},
              "pose_convention": "p_cam(PyTorch3D) = s * p_local(Z-up) @ quaternion_to_matrix(q) + t"}
    return mesh, gaussians, record


class SAM3DObjects(GPUAdapter):
    name = "sam3d"
    model_id = "facebook/sam-3d-objects"
    upstream = "facebookresearch/sam-3d-objects"
    stacks = (SAM3D_STACK,)
    weights = (SAM3D_WEIGHTS,)
    pointmap_source = "moge"
    rescale = True

    def _pipeline(self) -> Any:
        SAM3D_STACK.add_to_path()
        import os

        repo = Path(os.environ[SAM3D_STACK.repo_env])
        module = load_module_from_file("_sam3d_notebook_inference", repo / "notebook" / "inference.py")
        return module.Inference(str(SAM3D_WEIGHTS.path() / "pipeline.yaml"), compile=False)

    def _call(self, inference: Any, image: np.ndarray, mask: np.ndarray, seed: int,
              pointmap: np.ndarray | None) -> dict:
        if pointmap is None:
            return inference(image, mask, seed=seed)
        import torch

        return inference(image, mask, seed=seed, pointmap=torch.from_numpy(pointmap))

    def generate(self, case: AmodalCase) -> Generation:
        if self.pointmap_source not in POINTMAP_SOURCES:
            raise ValueError(f"pointmap_source must be one of {POINTMAP_SOURCES}")
        k = most_visible_view(case)
        view = case.views[k]
        image, mask = sam3d_inputs(view)
        pointmap = pointmap_from_view(view) if self.pointmap_source == "case-depth" else None
        seed = case_seed(case)
        output = self._call(self.pipeline(), image, mask, seed, pointmap)
        meta = {**self.base_meta(case, seed), "call": "Inference.__call__(image, mask, seed)",
                "view_index": k, "pointmap_source": self.pointmap_source,
                "input": {"encoding": "RGB uint8 + visible-object bool mask", "size": list(mask.shape)}}
        if output.get("glb") is None:
            return Generation(None, {**meta, "reason": "SAM 3D returned no mesh ('glb' is None)"})
        try:
            mesh, gaussians, record = sam3d_to_world(output, view.camera)
        except ValueError as e:
            return Generation(None, {**meta, "reason": str(e)})
        meta.update(record)
        scale, offset = 1.0, np.zeros(3)
        if self.rescale:
            mesh, scale, offset = normalize_mesh(mesh)
            if gaussians is not None:
                gaussians = transform_gaussians(gaussians, None, scale, scale * offset)
        meta.update({"rescale": self.rescale, "rescale_scale": float(scale),
                     "rescale_offset": [float(x) for x in offset]})
        return Generation(mesh, meta, gaussians)
