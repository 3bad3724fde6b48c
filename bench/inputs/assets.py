"""Assets: ground-truth meshes with their texture, normalized to the TRELLIS object frame.

The TRELLIS object frame (dataset_toolkits/blender_script/render.py `normalize_scene`): scale by
1 / (longest bbox side), centre the bbox at the origin, Z-up; the object lies in [-0.5, 0.5]^3.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import trimesh

# TRELLIS `to_glb` maps Z-up to Y-up with v @ Z_UP_TO_Y_UP (postprocessing_utils.py:456-457).
Z_UP_TO_Y_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)


# Blender's default OBJ import (forward -Z, up Y) maps a file's (x, y, z) to (x, -z, y) in its
# Z-up world (column-vector form p_world = M @ p_file): TRELLIS's and Amodal3R's render scripts
# import GSO's Z-up OBJ files this way, laying them on their back. GENA3D turns them back upright
# (-90 deg about X after import, dataset_toolkits/render.py:436), which is the file's own frame.
BLENDER_OBJ_IMPORT = Z_UP_TO_Y_UP.copy()
IMPORT_FRAMES = ("upright", "blender-obj")


class AssetError(ValueError):
    """A mesh that cannot be evaluated (unreadable, empty, NaN, missing texture)."""


@dataclass
class Mesh:
    """A triangle mesh with optional appearance.

    vertices: (N, 3) float32, object frame (Z-up).
    faces: (F, 3) int32 indices into vertices.
    uv: (N, 2) float32 texture coordinates, OpenGL convention (v = 0 at the image bottom), or None.
    texture: (H, W, 3) uint8 sRGB, or None.
    vertex_colors: (N, 3) uint8 sRGB, or None. Used when there is no texture.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32)

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) bbox min and max."""
        return np.stack([self.vertices.min(0), self.vertices.max(0)])

    def validate(self) -> None:
        """Raise AssetError naming the first reason this mesh cannot be evaluated."""
        if len(self.faces) == 0 or len(self.vertices) == 0:
            raise AssetError("mesh has no faces")
        if not np.isfinite(self.vertices).all():
            raise AssetError("mesh has NaN or infinite vertices")
        if self.faces.min() < 0 or self.faces.max() >= len(self.vertices):
            raise AssetError("mesh faces index vertices that do not exist")
        if self.uv is not None and self.texture is None:
            raise AssetError("mesh has UVs but its texture is missing")

    def transformed(self, scale: float, offset: np.ndarray, rotation: np.ndarray | None = None) -> Mesh:
        """Return a copy with vertices v -> ((v @ rotation) + offset) * scale."""
        v = self.vertices.astype(np.float64)
        if rotation is not None:
            v = v @ rotation
        return replace(self, vertices=((v + offset) * scale).astype(np.float32))

    def content_hash(self) -> str:
        """sha256 over geometry and appearance: the key of GT caches."""
        h = hashlib.sha256()
        for a in (self.vertices, self.faces, self.uv, self.texture, self.vertex_colors):
            h.update(b"none" if a is None else np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


@dataclass
class Asset:
    """A ground-truth object in the TRELLIS object frame.

    source_to_object: v_object = (v_source @ rotation + offset) * scale, as recorded here.
    """

    object_id: str
    mesh: Mesh
    source: str
    scale: float = 1.0
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    up_axis: str = "z"
    import_frame: str = "upright"


class _TextureResolver(trimesh.resolvers.FilePathResolver):
    """Resolve files next to the mesh, then in the GSO texture folder ../materials/textures/.

    GSO's .mtl says `map_Kd texture.png` while the file lies in materials/textures/.
    Misses are remembered so a missing texture becomes an AssetError, not a silent grey mesh.
    """

    IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".webp")

    def __init__(self, mesh_path: Path):
        super().__init__(str(mesh_path))
        self.dirs = [mesh_path.parent, mesh_path.parent.parent / "materials" / "textures"]
        self.missing: list[str] = []
        self.unreadable: list[str] = []  # "name (why)": trimesh would drop them silently

    def get(self, name: str) -> bytes:
        for d in self.dirs:
            p = d / name
            if p.is_file():
                data = p.read_bytes()
                if p.suffix.lower() in self.IMAGE_SUFFIXES:
                    self._check_image(p, data)
                return data
        self.missing.append(name)
        raise FileNotFoundError(name)

    def _check_image(self, path: Path, data: bytes) -> None:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()  # decodes every pixel: a valid header over garbage fails here
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... on bad files
            self.unreadable.append(f"{path} ({type(e).__name__}: {e})")


_NUM = rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_GOOD_V = re.compile(rb"^v[ \t]+" + _NUM + rb"[ \t]+" + _NUM + rb"[ \t]+" + _NUM + rb"\b", re.M)
_I = rb"-?\d+"
_GOOD_F = re.compile(rb"^f[ \t]+(?:" + b"|".join(
    rb"(?:" + corner + rb")(?:[ \t]+(?:" + corner + rb")){2,}"
    for corner in (_I, _I + b"/" + _I, _I + b"//" + _I, _I + b"/" + _I + b"/" + _I)) + rb")[ \t\r]*$", re.M)
_V_LINE = re.compile(rb"^v[ \t]", re.M)
_F_LINE = re.compile(rb"^f[ \t]", re.M)
_F_INDEX = re.compile(rb"(?:^f[ \t]+|[ \t]+)(-?\d+)", re.M)


def _obj_well_formed(data: bytes) -> bool:
    """The fast path of check_obj (regexes in C): every v line has 3 numbers, every f line 3+
    corners of one format, every index is in range (all vertices counted; GSO's files list every
    vertex before the faces). False means: look line by line for the error."""
    n_v, n_f = len(_V_LINE.findall(data)), len(_F_LINE.findall(data))
    if len(_GOOD_V.findall(data)) != n_v or len(_GOOD_F.findall(data)) != n_f:
        return False
    face_lines = b"\n".join(m.group(0) for m in re.finditer(rb"^f[ \t][^\n]*", data, re.M))
    index = np.array(_F_INDEX.findall(face_lines), dtype=np.int64) if n_f else np.zeros(0, np.int64)
    last_v = data.rfind(b"\nv ")
    first_f = data.find(b"\nf ")
    ordered = last_v < first_f or n_f == 0  # no vertex after the first face: "preceding" = all
    return ordered and (len(index) == 0 or (index.max() <= n_v and -index.min() <= n_v
                                             and not (index == 0).any()))


def check_obj(path: Path) -> None:
    """Raise AssetError when an OBJ file is visibly damaged, before trimesh reads it (trimesh
    loads what it can: an OBJ cut inside its face block would be scored with the faces it kept).

    Damaged: a vertex line with fewer than 3 numbers, a face with fewer than 3 corners, corners
    of one face in different formats (`1/1 2/2 3`: a line cut short), an unparsable index, or a
    face that references a vertex the file does not have. A cut that happens to leave a
    well-formed last line cannot be seen here (GSO's files end without a newline): the
    manifest's sha256 catches it.
    """
    data = path.read_bytes()
    if _obj_well_formed(data):
        return
    lines = data.split(b"\n")
    n_vertices = 0
    for number, line in enumerate(lines, 1):
        if line.startswith(b"v "):
            parts = line.split()
            try:
                [float(x) for x in parts[1:4]]
            except ValueError:
                parts = []
            if len(parts) < 4:
                raise AssetError(f"{path}: line {number}: a vertex needs 3 numbers, got "
                                 f"{line[:60].decode(errors='replace')!r}")
            n_vertices += 1
        elif line.startswith(b"f "):
            corners = line.split()[1:]
            if len(corners) < 3 or len({c.count(b"/") for c in corners}) != 1:
                raise AssetError(f"{path}: line {number}: a face needs 3 corners of one format, got "
                                 f"{line[:60].decode(errors='replace')!r} (truncated OBJ?)")
            for corner in corners:
                try:
                    index = int(corner.split(b"/", 1)[0])
                except ValueError:
                    raise AssetError(f"{path}: line {number}: bad face index {corner[:20]!r}") from None
                # positive indices count from the first vertex, negative ones back from the last so far
                if index == 0 or index > n_vertices or -index > n_vertices:
                    raise AssetError(f"{path}: line {number}: a face references vertex {index} "
                                     f"but only {n_vertices} vertices precede it")


def _texture_array(material) -> np.ndarray | None:
    if material is None:
        return None
    if hasattr(material, "to_simple") and not hasattr(material, "image"):
        material = material.to_simple()
    image = getattr(material, "image", None)
    if image is None and hasattr(material, "baseColorTexture"):
        image = material.baseColorTexture
    if image is None:
        return None
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def mesh_from_trimesh(tm: trimesh.Trimesh) -> Mesh:
    """Convert a trimesh (texture or vertex-colour visuals) to our Mesh."""
    uv = texture = colors = None
    visual = tm.visual
    if isinstance(visual, trimesh.visual.texture.TextureVisuals):
        texture = _texture_array(visual.material)
        if texture is not None and visual.uv is not None and len(visual.uv) == len(tm.vertices):
            uv = np.asarray(visual.uv, dtype=np.float32)
        else:  # a plain-colour material (no image): keep its colour, drop the UVs
            texture = None
            color = getattr(visual.material, "main_color", None)
            if color is not None:
                colors = np.tile(np.asarray(color, np.uint8)[:3], (len(tm.vertices), 1))
    elif visual.kind == "vertex":
        colors = np.asarray(visual.vertex_colors)[:, :3].astype(np.uint8)
    return Mesh(np.asarray(tm.vertices), np.asarray(tm.faces), uv, texture, colors)


def load_mesh(path: str | os.PathLike) -> Mesh:
    """Load OBJ(+MTL+texture), GLB/GLTF or PLY with trimesh, in the file's own axes.

    Raises AssetError when the file cannot be read, is a damaged OBJ (check_obj), has no faces,
    or names a texture that is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"mesh file not found: {path}")
    resolver = _TextureResolver(path)
    if path.suffix.lower() == ".obj":
        check_obj(path)
    try:
        with open(path, "rb") as f:
            tm = trimesh.load(f, file_type=path.suffix.lstrip(".").lower(), resolver=resolver,
                              process=False, force="mesh")
    except Exception as e:  # trimesh raises many types on corrupt files
        if resolver.unreadable:
            raise AssetError(f"texture unreadable: {'; '.join(resolver.unreadable)}") from e
        raise AssetError(f"cannot load {path.name}: {type(e).__name__}: {e}") from e
    if not isinstance(tm, trimesh.Trimesh) or len(tm.faces) == 0:
        raise AssetError(f"mesh has no faces: {path}")
    if resolver.missing:
        raise AssetError(f"texture missing: {', '.join(resolver.missing)} not found in "
                         + " or ".join(str(d) for d in resolver.dirs))
    if resolver.unreadable:
        raise AssetError(f"texture unreadable: {'; '.join(resolver.unreadable)}")
    mesh = mesh_from_trimesh(tm)
    mesh.validate()
    return mesh


def y_up_to_z_up(vertices: np.ndarray) -> np.ndarray:
    """Undo TRELLIS `to_glb`'s Z-up -> Y-up rotation: (N, 3) Y-up -> (N, 3) Z-up."""
    return vertices @ Z_UP_TO_Y_UP.T


def normalize_mesh(mesh: Mesh) -> tuple[Mesh, float, np.ndarray]:
    """Scale by 1/longest bbox side and centre the bbox (TRELLIS `normalize_scene`).

    Returns (normalized mesh, scale, offset) with v_norm = (v + offset) * scale.
    """
    lo, hi = mesh.vertices.astype(np.float64).min(0), mesh.vertices.astype(np.float64).max(0)
    extent = float((hi - lo).max())
    if not extent > 0:
        raise AssetError("mesh is degenerate (zero bounding box)")
    offset = -(lo + hi) / 2
    scale = 1.0 / extent
    return mesh.transformed(scale, offset), scale, offset


def load_asset(path: str | os.PathLike, object_id: str | None = None, up_axis: str = "z",
               import_frame: str = "upright") -> Asset:
    """Load a mesh and bring it into the TRELLIS object frame.

    up_axis: the file's up axis, 'z' (GSO, PLY scans) or 'y' (glTF convention, TRELLIS GLB outputs).
    import_frame: "upright" keeps the file's frame (after up_axis); "blender-obj" is the frame of
    Blender's default OBJ import, BLENDER_OBJ_IMPORT applied before normalization (a protocol's
    `import_frame`, PROTOCOLS.md 7).
    """
    if up_axis not in ("z", "y"):
        raise ValueError(f"up_axis must be 'z' or 'y', got {up_axis!r}")
    if import_frame not in IMPORT_FRAMES:
        raise ValueError(f"import_frame must be one of {', '.join(IMPORT_FRAMES)}, got {import_frame!r}")
    path = Path(path)
    mesh = load_mesh(path)
    if up_axis == "y":
        mesh = replace(mesh, vertices=y_up_to_z_up(mesh.vertices.astype(np.float64)))
    if import_frame == "blender-obj":
        mesh = replace(mesh, vertices=(mesh.vertices.astype(np.float64) @ BLENDER_OBJ_IMPORT.T)
                       .astype(np.float32))
    mesh, scale, offset = normalize_mesh(mesh)
    if object_id is None:  # GSO layout <id>/meshes/model.obj: the id is the grandparent folder
        object_id = path.parent.parent.name if path.parent.name == "meshes" else path.stem
    return Asset(object_id, mesh, str(path), scale, offset, up_axis, import_frame)
