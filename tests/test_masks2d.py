"""bench.cases.masks2d: Amodal3R random occluders (supp. A.3b) and GENA3D occlusion masks (supp. A.2).

References: scipy.ndimage (binary_dilation / binary_erosion / label) as independent morphology;
numbers measured once with OpenCV 4 (cv2.erode, 13 x 13 ones) for the border behaviour. All mask
comparisons are exact (tolerance 0 pixels).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from bench.cases.masks2d import (
    _occluder_layers,
    amodal3r_random_occluder,
    dilated_rectangle,
    gena3d_occlusion_mask,
)

SIZES = st.integers(min_value=16, max_value=96)
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
FAST = settings(max_examples=30, deadline=None, database=None)  # no .hypothesis/ in the tree
CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity
SQUARE = ndimage.generate_binary_structure(2, 2)  # 8-connectivity


# ---------------------------------------------------------------- Amodal3R random occluder

@FAST
@given(h=SIZES, w=SIZES, seed=SEEDS)
def test_occluder_shape_dtype_nonempty_deterministic(h: int, w: int, seed: int) -> None:
    a = amodal3r_random_occluder(h, w, np.random.default_rng(seed))
    b = amodal3r_random_occluder(h, w, np.random.default_rng(seed))
    assert a.shape == (h, w) and a.dtype == np.bool_
    assert a.any()
    assert not a.all() or min(h, w) < 24  # a tiny image may be covered, a real one is not
    np.testing.assert_array_equal(a, b)


def test_occluder_different_seeds_differ() -> None:
    masks = [amodal3r_random_occluder(64, 64, np.random.default_rng(s)) for s in range(20)]
    pairs = [(i, j) for i in range(20) for j in range(i + 1, 20)]
    same = sum(np.array_equal(masks[i], masks[j]) for i, j in pairs)
    assert same == 0, f"{same} of {len(pairs)} seed pairs gave identical masks"


def test_occluder_coverage_is_partial() -> None:
    """On a 256^2 image the occluder covers a part, not nothing and not everything."""
    cover = [amodal3r_random_occluder(256, 256, np.random.default_rng(s)).mean() for s in range(20)]
    assert 0.01 < np.median(cover) < 0.6, cover


@FAST
@given(h=SIZES, w=SIZES, seed=SEEDS)
def test_rectangles_connect_to_strokes(h: int, w: int, seed: int) -> None:
    """What the paper's "so regions connect" gives us honestly: each dilated rectangle is one
    4-connected region that overlaps the strokes, so the rectangles never add a fragment:
    #components(union) <= #components(strokes) (4- and 8-connectivity). The union itself is not
    claimed to be connected."""
    strokes, rects = _occluder_layers(h, w, np.random.default_rng(seed), None)
    assert 3 <= len(rects) <= 7
    union = strokes.copy()
    for rect in rects:
        assert ndimage.label(rect, structure=CROSS)[1] == 1
        assert (rect & strokes).any()
        union |= rect
    np.testing.assert_array_equal(union, amodal3r_random_occluder(h, w, np.random.default_rng(seed)))
    for structure in (CROSS, SQUARE):
        assert ndimage.label(union, structure)[1] <= ndimage.label(strokes, structure)[1]


@pytest.mark.parametrize("radius", [1, 2, 3, 5])
@pytest.mark.parametrize("rows,cols", [((10, 20), (5, 9)), ((0, 3), (30, 39)), ((37, 39), (0, 39))])
def test_dilated_rectangle_matches_scipy(radius: int, rows: tuple[int, int], cols: tuple[int, int]) -> None:
    i, j = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = i**2 + j**2 <= radius**2
    rect = np.zeros((40, 40), dtype=bool)
    rect[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    expected = ndimage.binary_dilation(rect, structure=disc)
    np.testing.assert_array_equal(dilated_rectangle((40, 40), rows, cols, radius), expected)


@FAST
@given(seed=SEEDS, r0=st.integers(0, 60), c0=st.integers(0, 60), size=st.integers(4, 40))
def test_occluder_lands_on_object_bbox(seed: int, r0: int, c0: int, size: int) -> None:
    obj = np.zeros((100, 100), dtype=bool)
    obj[r0:r0 + size, c0:c0 + size] = True
    occ = amodal3r_random_occluder(100, 100, np.random.default_rng(seed), object_mask=obj)
    assert occ[r0:r0 + size, c0:c0 + size].any()


def test_occluder_empty_object_falls_back_to_image() -> None:
    empty = np.zeros((48, 48), dtype=bool)
    a = amodal3r_random_occluder(48, 48, np.random.default_rng(3), object_mask=empty)
    np.testing.assert_array_equal(a, amodal3r_random_occluder(48, 48, np.random.default_rng(3)))


def test_occluder_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="positive integers"):
        amodal3r_random_occluder(0, 10, rng)
    with pytest.raises(ValueError, match="positive integers"):
        amodal3r_random_occluder(10.0, 10, rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="object_mask has shape"):
        amodal3r_random_occluder(10, 10, rng, object_mask=np.ones((10, 11), dtype=bool))
    with pytest.raises(ValueError, match="object_mask must be a 2D bool"):
        amodal3r_random_occluder(10, 10, rng, object_mask=np.ones((10, 10), dtype=np.uint8))
    with pytest.raises(TypeError, match="Generator"):
        amodal3r_random_occluder(10, 10, 0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- GENA3D occlusion mask

def _reference(occluded: np.ndarray, visibility: np.ndarray, k: int, kernel: int = 13) -> np.ndarray:
    """Independent reference: bbox canvas, scipy erosion by a kernel x kernel square k times with
    outside-the-image counted as foreground (cv2.erode's default border), visible cleared."""
    canvas = np.zeros_like(occluded)
    if occluded.any():
        rows, cols = np.nonzero(occluded)
        canvas[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
    eroded = ndimage.binary_erosion(canvas, structure=np.ones((kernel, kernel), bool), iterations=k,
                                    border_value=1) if k else canvas
    return eroded & ~visibility


def _random_scene(seed: int, h: int = 120, w: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    bottom, right = rng.integers(top, h), rng.integers(left, w)
    occ = np.zeros((h, w), dtype=bool)
    occ[top:bottom + 1, left:right + 1] = rng.random((bottom - top + 1, right - left + 1)) < 0.7
    vis = ~occ & (rng.random((h, w)) < 0.5)
    return occ, vis


@settings(max_examples=60, deadline=None, database=None)
@given(scene=SEEDS, seed=SEEDS)
def test_gena3d_matches_erosion_reference(scene: int, seed: int) -> None:
    occ, vis = _random_scene(scene)
    out = gena3d_occlusion_mask(occ, vis, np.random.default_rng(seed))
    k = int(np.random.default_rng(seed).integers(1, 4))  # the draw the function makes first
    np.testing.assert_array_equal(out, _reference(occ, vis, k))
    assert out.dtype == np.bool_ and not (out & vis).any()
    if occ.any():
        rows, cols = np.nonzero(occ)
        inside = np.zeros_like(occ)
        inside[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        assert not (out & ~inside).any()


def test_gena3d_erosion_count_in_range() -> None:
    occ = np.zeros((200, 200), dtype=bool)
    occ[40:160, 50:170] = True
    vis = np.zeros_like(occ)
    seen = set()
    for seed in range(40):
        out = gena3d_occlusion_mask(occ, vis, np.random.default_rng(seed))
        matches = [k for k in range(0, 6) if np.array_equal(out, _reference(occ, vis, k))]
        assert len(matches) == 1 and 1 <= matches[0] <= 3, matches
        seen.add(matches[0])
    assert seen == {1, 2, 3}
    out = gena3d_occlusion_mask(occ, vis, np.random.default_rng(0), erosions=(2, 2))
    np.testing.assert_array_equal(out, _reference(occ, vis, 2))


def test_gena3d_border_side_not_eroded_like_cv2() -> None:
    """cv2.erode(m, np.ones((13, 13)), iterations=k) on a 60 x 60 image with m[0:30, 5:45] = 1
    gave rows 0..23 / 0..17 / 0..11 and columns 11..38 / 17..32 / 23..26 for k = 1 / 2 / 3."""
    occ = np.zeros((60, 60), dtype=bool)
    occ[0:30, 5:45] = True
    expected = {1: (23, 11, 38), 2: (17, 17, 32), 3: (11, 23, 26)}
    for k, (r1, c0, c1) in expected.items():
        out = gena3d_occlusion_mask(occ, np.zeros_like(occ), np.random.default_rng(0), erosions=(k, k))
        ref = np.zeros_like(occ)
        ref[0:r1 + 1, c0:c1 + 1] = True
        np.testing.assert_array_equal(out, ref)


def test_gena3d_empty_and_deterministic() -> None:
    empty = np.zeros((32, 32), dtype=bool)
    out = gena3d_occlusion_mask(empty, empty, np.random.default_rng(1))
    assert out.dtype == np.bool_ and out.shape == (32, 32) and not out.any()
    occ, vis = _random_scene(5)
    a = gena3d_occlusion_mask(occ, vis, np.random.default_rng(9))
    np.testing.assert_array_equal(a, gena3d_occlusion_mask(occ, vis, np.random.default_rng(9)))


def test_gena3d_bad_input() -> None:
    rng = np.random.default_rng(0)
    occ = np.zeros((20, 20), dtype=bool)
    occ[5:10, 5:10] = True
    with pytest.raises(ValueError, match="visibility has shape"):
        gena3d_occlusion_mask(occ, np.zeros((20, 21), dtype=bool), rng)
    with pytest.raises(ValueError, match="occluded_region must be a 2D bool"):
        gena3d_occlusion_mask(occ.astype(np.uint8), np.zeros_like(occ), rng)
    with pytest.raises(ValueError, match="overlap"):
        gena3d_occlusion_mask(occ, occ.copy(), rng)
    with pytest.raises(ValueError, match="odd"):
        gena3d_occlusion_mask(occ, np.zeros_like(occ), rng, kernel=12)
    with pytest.raises(ValueError, match="erosions"):
        gena3d_occlusion_mask(occ, np.zeros_like(occ), rng, erosions=(3, 1))
