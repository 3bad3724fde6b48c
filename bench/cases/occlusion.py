"""3D-consistent occlusion: a face region grown over the mesh (GENA3D 3.3, Amodal3R A.4a).

The occlusion is a property of the object, not of a view: a set of occluded faces is chosen once
per (protocol, object) and every input view sees the same occluded surface. Per view, the
visibility mask is where the front-most surface is not occluded, the occlusion mask where it is.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from bench.inputs.assets import Mesh


class OcclusionError(ValueError):
    """The mesh cannot carry a grown occlusion region (a single triangle, a triangle soup)."""


ADJACENCY = ("merged", "mesh-vertices")


def face_adjacency(mesh: Mesh, adjacency: str = "merged") -> tuple[np.ndarray, np.ndarray]:
    """Faces sharing an edge, as CSR (indptr (F+1,), indices).

    adjacency="merged": vertices are merged by position first, so UV seams (duplicated vertices)
    do not cut the surface apart. "mesh-vertices": edges are pairs of the mesh's own vertex
    indices, as the public 3d_mask_render.py builds them from Blender's exported PLY (whose
    vertices are split at UV seams), so a seam stops the growth."""
    if adjacency not in ADJACENCY:
        raise ValueError(f"occlusion adjacency must be one of {', '.join(ADJACENCY)}, got {adjacency!r}")
    if adjacency == "merged":
        _, vid = np.unique(np.round(mesh.vertices.astype(np.float64), 7), axis=0, return_inverse=True)
    else:
        vid = np.arange(len(mesh.vertices))
    f = vid.reshape(-1)[mesh.faces.reshape(-1)].reshape(-1, 3)
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    face_of_edge = np.tile(np.arange(len(f)), 3)
    key = edges[:, 0].astype(np.int64) * (vid.max() + 1) + edges[:, 1]
    order = np.argsort(key, kind="stable")
    key, face_of_edge = key[order], face_of_edge[order]
    # every pair of faces within a run of equal edge keys is adjacent
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    pairs = []
    for size in np.unique(ends - starts):
        if size < 2:
            continue
        s = starts[(ends - starts) == size]
        group = face_of_edge[s[:, None] + np.arange(size)]
        for i in range(size):
            for j in range(size):
                if i != j:
                    pairs.append(group[:, [i, j]])
    if pairs:
        pairs = np.unique(np.concatenate(pairs), axis=0)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]  # a degenerate face is not its own neighbour
    else:
        pairs = np.zeros((0, 2), np.int64)
    indptr = np.r_[0, np.cumsum(np.bincount(pairs[:, 0], minlength=len(f)))]
    return indptr, pairs[:, 1]


def face_areas(mesh: Mesh) -> np.ndarray:
    v = mesh.vertices.astype(np.float64)
    return 0.5 * np.linalg.norm(np.cross(v[mesh.faces[:, 1]] - v[mesh.faces[:, 0]],
                                         v[mesh.faces[:, 2]] - v[mesh.faces[:, 0]]), axis=1)


def grow_occlusion(mesh: Mesh, ratio: float, rng: np.random.Generator, by: str = "faces",
                   seed_faces: int = 1, adjacency: str = "merged") -> np.ndarray:
    """Occlude a face region grown breadth-first from one random start face (the default, as the
    papers describe and the public 3d_mask_render.py does, lines 46-57 and 96-100).

    ratio: target share of faces (by='faces') or of surface area (by='area'), in [0, 1]. By
    faces the count is floored, int(F * ratio), as 3d_mask_render.py does; by area growth stops
    at the first face that reaches ratio x total area.
    seed_faces: > 1 starts from several random faces at once (a named variant, not a paper's).
    When the queue empties before the target (a connected piece is used up), growth restarts
    from a new random unoccluded face. (The script restarts from any random face, possibly an
    already chosen one, and re-walks it: the final count is the same, which pieces are added
    may differ; its neighbour order is Python's set order, ours the sorted face index.)
    adjacency: see face_adjacency. Returns (F,) bool, True = occluded.
    """
    if by not in ("faces", "area"):
        raise ValueError(f"occlusion 'by' must be 'faces' or 'area', got {by!r}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"occlusion ratio must lie in [0, 1], got {ratio}")
    n = len(mesh.faces)
    if n < 2:
        raise OcclusionError("a single triangle cannot be partly occluded")
    weight = np.ones(n) if by == "faces" else face_areas(mesh)
    target = float(int(n * ratio)) if by == "faces" else ratio * weight.sum()
    indptr, nbrs = face_adjacency(mesh, adjacency)
    if len(nbrs) == 0:
        raise OcclusionError(f"triangle soup: none of the {n} faces shares an edge, so no region "
                             "can grow over the surface")
    occluded = np.zeros(n, bool)
    covered = 0.0
    queue: deque[int] = deque()
    if seed_faces > 1:  # several simultaneous start faces (seed_faces == 1 starts in the loop)
        for f in rng.choice(n, size=min(seed_faces, n), replace=False):
            if covered < target:
                occluded[f] = True
                covered += weight[f]
                queue.append(int(f))
    while covered < target:
        if not queue:
            free = np.flatnonzero(~occluded)
            if len(free) == 0:
                break
            seed = int(free[rng.integers(len(free))])
            occluded[seed] = True
            covered += weight[seed]
            queue.append(seed)
            continue
        f = queue.popleft()
        for g in nbrs[indptr[f]:indptr[f + 1]]:
            if covered >= target:
                break
            if not occluded[g]:
                occluded[g] = True
                covered += weight[g]
                queue.append(int(g))
    return occluded


def view_masks(face_id: np.ndarray, occluded_faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """face_id (..., H, W) (-1 = background) -> (visibility_mask, occlusion_mask), bool each.

    visibility: the object is seen there and its front-most face is not occluded;
    occlusion: the object is there but its front-most face is occluded.
    """
    hit = face_id >= 0
    occ = np.zeros_like(hit)
    occ[hit] = occluded_faces[face_id[hit]]
    return hit & ~occ, occ
