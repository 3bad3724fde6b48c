"""2D occlusion masks: Amodal3R random occluders (supp. A.3b) and GENA3D occlusion masks (supp. A.2).

All masks are (H, W) bool arrays, row-major, origin top-left; shape parameters are in continuous
pixel coordinates with pixel centres at integer + 0.5 (as bench.inputs.cameras). Every random draw comes
from the caller's `np.random.Generator`, in a fixed order, so a generator state fixes the output.
"""

from __future__ import annotations

import numpy as np

_MIN_STROKE = 3  # thinnest line / ellipse stroke and smallest circle radius, pixels


def check_mask(name: str, mask: object, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return `mask` if it is a 2D bool array (of `shape` when given), else raise ValueError."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 2:
        got = f"{mask.dtype} {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"{name} must be a 2D bool array (H, W), got {got}")
    if shape is not None and mask.shape != shape:
        raise ValueError(f"{name} has shape {mask.shape}, expected {shape}")
    return mask


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive (row0, row1, col0, col1) of the True pixels of a non-empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def thick_segment(shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float],
                  thickness: float) -> np.ndarray:
    """Pixels whose centre lies within thickness/2 of the segment p0-p1 ((x, y) pixel coords)."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = ((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-12)
    t = np.clip(t, 0.0, 1.0)
    return (x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2 <= (thickness / 2) ** 2


def filled_disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """Pixels whose centre lies within `radius` of `centre` ((x, y) pixel coords)."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2


def ellipse_outline(shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float],
                    angle: float, thickness: float) -> np.ndarray:
    """A thick ellipse outline: pixels within ~thickness/2 of the curve (semi-axes `axes`, rotated
    by `angle` radians). Distance is the first-order (Sampson) distance |q - 1| / |grad q| with
    q = (u/a)^2 + (v/b)^2, exact on circles and close to the curve elsewhere."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    c, s = np.cos(angle), np.sin(angle)
    u = c * (x - centre[0]) + s * (y - centre[1])
    v = -s * (x - centre[0]) + c * (y - centre[1])
    a, b = axes
    q = (u / a) ** 2 + (v / b) ** 2
    grad = 2.0 * np.sqrt(u**2 / a**4 + v**2 / b**4)
    return np.abs(q - 1.0) <= (thickness / 2) * grad


def dilated_rectangle(shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int],
                      radius: int) -> np.ndarray:
    """The pixel rectangle rows[0]..rows[1] x cols[0]..cols[1] (inclusive) dilated by the digital
    disc {(i, j): i^2 + j^2 <= radius^2}, clipped to the image. Exact: a pixel is in the dilation
    iff its squared distance to the nearest rectangle pixel is <= radius^2."""
    i, j = np.ogrid[0:shape[0], 0:shape[1]]
    di = np.maximum(np.maximum(rows[0] - i, i - rows[1]), 0)
    dj = np.maximum(np.maximum(cols[0] - j, j - cols[1]), 0)
    return di**2 + dj**2 <= radius**2


def _occluder_layers(height: int, width: int, rng: np.random.Generator,
                     object_mask: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(strokes, [dilated rectangle, ...]) of one Amodal3R random occluder; see the public doc."""
    if not (isinstance(height, int | np.integer) and isinstance(width, int | np.integer)) \
            or height < 1 or width < 1:
        raise ValueError(f"height and width must be positive integers, got {height!r}, {width!r}")
    shape = (int(height), int(width))
    _check_rng(rng)
    if object_mask is not None and check_mask("object_mask", object_mask, shape).any():
        r0, r1, c0, c1 = _bbox(object_mask)
    else:
        r0, r1, c0, c1 = 0, shape[0] - 1, 0, shape[1] - 1
    rh, rw = r1 - r0 + 1, c1 - c0 + 1
    scale = max(_MIN_STROKE, round(0.03 * (rh + rw)))

    def point() -> tuple[float, float]:
        return float(rng.uniform(c0, c1 + 1)), float(rng.uniform(r0, r1 + 1))

    strokes = np.zeros(shape, dtype=bool)
    for _ in range(rng.integers(1, 4)):  # lines
        p0, p1 = point(), point()
        strokes |= thick_segment(shape, p0, p1, int(rng.integers(_MIN_STROKE, scale + 1)))
    for _ in range(rng.integers(1, 4)):  # circles (filled)
        centre = point()
        strokes |= filled_disc(shape, centre, int(rng.integers(_MIN_STROKE, scale + 1)))
    max_axis = max(scale, max(rh, rw) // 4)
    for _ in range(rng.integers(1, 4)):  # ellipses (outlines)
        centre = point()
        axes = (int(rng.integers(scale, max_axis + 1)), int(rng.integers(scale, max_axis + 1)))
        angle, thick = float(rng.uniform(0.0, np.pi)), int(rng.integers(_MIN_STROKE, scale + 1))
        strokes |= ellipse_outline(shape, centre, axes, angle, thick)

    anchors = np.argwhere(strokes)  # never empty: a line always covers its endpoints' pixels
    radius = max(1, scale // 2)
    rects = []
    for _ in range(rng.integers(3, 8)):
        ai, aj = anchors[rng.integers(len(anchors))]
        h, w = int(rng.integers(scale, 4 * scale + 1)), int(rng.integers(scale, 4 * scale + 1))
        top, left = ai - int(rng.integers(h)), aj - int(rng.integers(w))
        rows = (max(top, 0), min(top + h - 1, shape[0] - 1))
        cols = (max(left, 0), min(left + w - 1, shape[1] - 1))
        rects.append(dilated_rectangle(shape, rows, cols, radius))
    return strokes, rects


def amodal3r_random_occluder(height: int, width: int, rng: np.random.Generator,
                             object_mask: np.ndarray | None = None) -> np.ndarray:
    """A random 2D occluder as in Amodal3R's training augmentation (supplement A.3b): "randomly
    drawing 1 to 3 lines, circles, and ellipses", then "3 to 7 rectangular regions that have
    undergone an expansion operation" so that the mask regions connect.

    Returns (height, width) bool, True = occluder. Not clipped to the object.

    The paper gives only the counts. Our choices (its public code has no generator):
      - 1-3 shapes of *each* type, counts drawn independently; lines are thick segments, circles
        filled discs, ellipses thick outlines (full, randomly rotated);
      - scale s = max(3, round(0.03 * (h + w))) of the sampling region (the usual free-form
        inpainting-mask scale); line / outline thickness and circle radius ~ U{3..s} pixels;
        ellipse semi-axes ~ U{s..max(s, max(h, w) // 4)};
      - shape centres / endpoints uniform in the sampling region: the bounding box of
        `object_mask` when given and non-empty (so the occluder lands on the object), else the
        whole image;
      - each rectangle has sides ~ U{s..4s}, contains a stroke pixel drawn uniformly (this is how
        the rectangles "connect" regions: each overlaps the strokes, so the rectangles never add
        a separate fragment), and is dilated by a digital disc of radius max(1, s // 2).
    With these values the occluder covers about 15-37 % (5th-95th percentile, median ~25 %) of an
    elliptical object passed as `object_mask`, independent of image size.
    The union is not guaranteed to be connected: separate strokes may stay apart.
    """
    strokes, rects = _occluder_layers(height, width, rng, object_mask)
    for rect in rects:
        strokes |= rect
    return strokes


def gena3d_occlusion_mask(occluded_region: np.ndarray, visibility: np.ndarray,
                          rng: np.random.Generator, kernel: int = 13,
                          erosions: tuple[int, int] = (1, 3)) -> np.ndarray:
    """GENA3D's training occlusion mask (supplement A.2): the bounding box of the rendered occluded
    region as the initial canvas, eroded k ~ U{erosions[0]..erosions[1]} times with a
    kernel x kernel kernel, then the visible pixels cleared.

    occluded_region, visibility: (H, W) bool, disjoint. Returns (H, W) bool.

    Structuring element: a full kernel x kernel square. The paper says only "kernel size k = 13";
    GENA3D's data-engine code is not public, its pipeline code uses OpenCV throughout, and a square
    (np.ones / MORPH_RECT) is OpenCV's plain erosion kernel. On a filled box any erosion by a
    square is exact and cheap: each side moves in by kernel // 2 pixels per iteration. Sides on the
    image border stay put, as with cv2.erode's default border (outside counts as foreground).
    k is drawn before anything else, so an empty region also advances `rng` by one draw; it
    gives an empty mask.
    """
    _check_rng(rng)
    occ = check_mask("occluded_region", occluded_region)
    vis = check_mask("visibility", visibility, occ.shape)
    if (occ & vis).any():
        raise ValueError(f"occluded_region and visibility overlap on {int((occ & vis).sum())} pixels; "
                         "a pixel is either visible or occluded")
    if isinstance(kernel, bool) or not isinstance(kernel, int | np.integer) or kernel < 1 \
            or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd integer, got {kernel!r}")
    lo, hi = erosions
    if not 0 <= lo <= hi:
        raise ValueError(f"erosions must be (lo, hi) with 0 <= lo <= hi, got {erosions!r}")
    k = int(rng.integers(lo, hi + 1))
    out = np.zeros(occ.shape, dtype=bool)
    if not occ.any():
        return out
    r0, r1, c0, c1 = _bbox(occ)
    step = (kernel // 2) * k
    h, w = occ.shape
    r0, r1 = r0 + (step if r0 > 0 else 0), r1 - (step if r1 < h - 1 else 0)
    c0, c1 = c0 + (step if c0 > 0 else 0), c1 - (step if c1 < w - 1 else 0)
    if r0 <= r1 and c0 <= c1:
        out[r0:r1 + 1, c0:c1 + 1] = True
    out &= ~vis
    return out
