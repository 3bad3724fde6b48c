"""CPU rasterizer: OpenGL 3.3 through moderngl on a headless EGL context (Mesa llvmpipe).

Chosen by measurement (README, bench/perf/render_benchmark.py): an 8-view 512^2 rig of a 50k-face
mesh rasterizes in ~0.1 s on 2 cores. Needs Debian `libegl1` and `libgl1-mesa-dri`.
The default context backend wants an X display, hence backend='egl'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.inputs.cameras import Camera
from bench.render.raster import check_cameras, clip_from_camera

_VERTEX = """
#version 330
uniform mat4 view;
uniform mat4 clip;
in vec3 in_pos;
out vec2 v_bary;
out float v_z;
void main() {
    vec4 pc = view * vec4(in_pos, 1.0);
    v_z = pc.z;
    int k = gl_VertexID % 3;  // vertices are expanded per face: corner k of its triangle
    v_bary = vec2(k == 0 ? 1.0 : 0.0, k == 1 ? 1.0 : 0.0);
    gl_Position = clip * pc;
}
"""
_FRAGMENT = """
#version 330
in vec2 v_bary;
in float v_z;
out vec4 out_rast;
void main() {
    out_rast = vec4(v_bary, v_z, float(gl_PrimitiveID + 1));
}
"""

_CONTEXT = None


def _preload_triton() -> None:
    """Import triton (when installed, as with CUDA builds of torch) before Mesa's llvmpipe loads.

    Both carry their own LLVM; loading triton after the EGL context exists segfaults the process
    (seen with torch 2.14.1: any later `import torchvision` or clean-fid crashes), while the
    other order works. Measured cost: ~0.3 s once per process."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def _context():
    """One EGL context per process, created on first use (never before a fork)."""
    global _CONTEXT
    if _CONTEXT is None:
        import moderngl

        _preload_triton()

        try:
            _CONTEXT = moderngl.create_standalone_context(backend="egl")
        except Exception as e:
            raise RuntimeError(
                "moderngl could not open a headless EGL context; install Debian packages "
                f"libegl1 and libgl1-mesa-dri, or use --rasterizer numpy ({e})") from e
    return _CONTEXT


class ModernGLRasterizer:
    name = "moderngl"

    def __init__(self) -> None:
        self.ctx = _context()
        self.program = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._fbo = None
        self._size: tuple[int, int] | None = None

    def _framebuffer(self, h: int, w: int):
        if self._size != (h, w):
            if self._fbo is not None:
                self._fbo.release()
            color = self.ctx.texture((w, h), 4, dtype="f4")
            depth = self.ctx.depth_renderbuffer((w, h))
            self._fbo = self.ctx.framebuffer(color_attachments=[color], depth_attachment=depth)
            self._size = (h, w)
        return self._fbo

    def rasterize(self, vertices: np.ndarray, faces: np.ndarray,
                  cameras: Sequence[Camera]) -> np.ndarray:
        h, w = check_cameras(cameras)
        corners = np.ascontiguousarray(vertices[faces].reshape(-1, 3), dtype="f4")
        vbo = self.ctx.buffer(corners.tobytes())
        vao = self.ctx.vertex_array(self.program, [(vbo, "3f", "in_pos")])
        fbo = self._framebuffer(h, w)
        out = np.empty((len(cameras), h, w, 4), dtype=np.float32)
        try:
            fbo.use()
            self.ctx.enable(self.ctx.DEPTH_TEST)
            for i, cam in enumerate(cameras):
                # moderngl uniforms take column-major bytes: write the transpose
                self.program["view"].write(cam.extrinsics.T.astype("f4").tobytes())
                self.program["clip"].write(clip_from_camera(cam).T.astype("f4").tobytes())
                fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
                vao.render()
                fbo.read_into(out[i], components=4, dtype="f4")  # no intermediate bytes copy
        finally:
            vao.release()
            vbo.release()
        return out
