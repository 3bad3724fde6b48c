"""GPU rasterizer: nvdiffrast's CUDA rasterizer (optional extra, imported lazily).

NOT RUN HERE: this machine has no GPU and nvdiffrast is not on PyPI. It fills the same contract as
the CPU rasterizers (raster.py): nvdiffrast already returns (b0, b1, z/w, triangle_id + 1) with
row 0 at NDC y = -1, which our clip matrix maps to the image top; only channel 2 is replaced by
camera z, interpolated perspective-correctly by nvdiffrast itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.inputs.cameras import Camera
from bench.render.raster import check_cameras, clip_from_camera


class NvdiffrastRasterizer:
    name = "nvdiffrast"

    def __init__(self) -> None:
        try:
            import nvdiffrast.torch as dr
            import torch
        except ImportError as e:
            raise RuntimeError("the nvdiffrast rasterizer needs nvdiffrast (not on PyPI): "
                               "pip install git+https://github.com/NVlabs/nvdiffrast") from e
        if not torch.cuda.is_available():
            raise RuntimeError("the nvdiffrast rasterizer needs a CUDA GPU; use --rasterizer moderngl")
        self.torch, self.dr = torch, dr
        self.glctx = dr.RasterizeCudaContext()

    def rasterize(self, vertices: np.ndarray, faces: np.ndarray,
                  cameras: Sequence[Camera]) -> np.ndarray:
        torch, dr = self.torch, self.dr
        h, w = check_cameras(cameras)
        dev = torch.device("cuda")
        v = torch.as_tensor(vertices, dtype=torch.float32, device=dev)
        v_h = torch.cat([v, torch.ones_like(v[:, :1])], 1)
        tri = torch.as_tensor(faces, dtype=torch.int32, device=dev)
        view = torch.as_tensor(np.stack([c.extrinsics for c in cameras]), dtype=torch.float32,
                               device=dev)
        clip = torch.as_tensor(np.stack([clip_from_camera(c) for c in cameras]),
                               dtype=torch.float32, device=dev)
        pc = torch.einsum("vij,nj->vni", view, v_h)  # (V, N, 4) camera coordinates
        pos = torch.einsum("vij,vnj->vni", clip, pc).contiguous()
        rast, _ = dr.rasterize(self.glctx, pos, tri, resolution=[h, w])
        z, _ = dr.interpolate(pc[..., 2:3].contiguous(), rast, tri)
        rast = torch.cat([rast[..., :2], z * (rast[..., 3:] > 0), rast[..., 3:]], -1)
        return rast.cpu().numpy()
