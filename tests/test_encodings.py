"""bench.cases.encodings: Amodal3R's grey-level mask and GENA3D's four images, through PNG and back.

References: Amodal3R README (255 / 188 / 0) and `preprocess_image_w_mask` (< 127 occluded, dilated
by cv2 MORPH_ELLIPSE 3; > 230 background; RGB zeroed over both); GENA3D sparse_image_to_3d.py
(masks > 127). Structuring elements are the arrays printed by OpenCV 4
cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)); dilation is checked against
scipy.ndimage.binary_dilation. PNGs go through PIL (lossless). All comparisons are exact.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from bench.cases.encodings import (
    GENA3D_FILES,
    decode_amodal3r,
    decode_gena3d,
    dilate,
    ellipse_kernel,
    encode_amodal3r,
    encode_gena3d,
)

OPENCV_ELLIPSE = {
    1: [[1]],
    3: [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
    5: [[0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]],
    7: [[0, 0, 0, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 0], [0, 0, 0, 1, 0, 0, 0]],
}
OPENCV_ELLIPSE_13_ROW_WIDTHS = [1, 7, 9, 11, 13, 13, 13, 13, 13, 11, 9, 7, 1]
CROSS = np.array(OPENCV_ELLIPSE[3], dtype=bool)
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def png_round_trip(image: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    buf.seek(0)
    return np.asarray(Image.open(buf))


def random_view(seed: int, h: int = 40, w: int = 56) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(1, 256, size=(h, w, 3), dtype=np.uint8)  # no zeros: zeroing is visible
    labels = rng.choice(3, size=(h, w), p=[0.3, 0.4, 0.3])  # 0 background, 1 visible, 2 occluded
    return rgb, labels == 1, labels == 2


# ---------------------------------------------------------------- structuring element, dilation

@pytest.mark.parametrize("size", sorted(OPENCV_ELLIPSE))
def test_ellipse_kernel_matches_opencv(size: int) -> None:
    np.testing.assert_array_equal(ellipse_kernel(size), np.array(OPENCV_ELLIPSE[size], dtype=bool))


def test_ellipse_kernel_13_matches_opencv() -> None:
    k = ellipse_kernel(13)
    assert k.sum(axis=1).tolist() == OPENCV_ELLIPSE_13_ROW_WIDTHS
    np.testing.assert_array_equal(k, k[::-1])  # OpenCV's rule is not transpose-symmetric at 13
    np.testing.assert_array_equal(k, k[:, ::-1])


@settings(max_examples=30, deadline=None, database=None)
@given(seed=SEEDS, size=st.sampled_from([1, 3, 5, 7]))
def test_dilate_matches_scipy(seed: int, size: int) -> None:
    mask = np.random.default_rng(seed).random((23, 31)) < 0.1
    kernel = ellipse_kernel(size)
    np.testing.assert_array_equal(dilate(mask, kernel), ndimage.binary_dilation(mask, structure=kernel))


# ---------------------------------------------------------------- Amodal3R

@settings(max_examples=40, deadline=None, database=None)
@given(seed=SEEDS)
def test_amodal3r_values_and_rgb_zeroing(seed: int) -> None:
    rgb, vis, occ = random_view(seed)
    rgb_zeroed, mask = encode_amodal3r(rgb, vis, occ)
    assert mask.dtype == np.uint8 and rgb_zeroed.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, 188, 255}
    np.testing.assert_array_equal(mask == 255, ~(vis | occ))
    np.testing.assert_array_equal(mask == 188, vis)
    np.testing.assert_array_equal(mask == 0, occ)
    zeroed = ndimage.binary_dilation(occ, structure=CROSS) | ~(vis | occ)
    assert (rgb_zeroed[zeroed] == 0).all()
    np.testing.assert_array_equal(rgb_zeroed[~zeroed], rgb[~zeroed])
    # feeding the zeroed RGB back through their preprocessing changes nothing
    seen, _, _ = decode_amodal3r(mask)
    np.testing.assert_array_equal(np.where(seen[..., None], rgb_zeroed, 0), rgb_zeroed)


@settings(max_examples=40, deadline=None, database=None)
@given(seed=SEEDS)
def test_amodal3r_png_round_trip(seed: int) -> None:
    rgb, vis, occ = random_view(seed)
    rgb_zeroed, mask = encode_amodal3r(rgb, vis, occ)
    mask_png, rgb_png = png_round_trip(mask), png_round_trip(rgb_zeroed)
    np.testing.assert_array_equal(rgb_png, rgb_zeroed)
    # without the dilation the classes come back exactly
    v0, o0, b0 = decode_amodal3r(mask_png, kernel_size=0)
    np.testing.assert_array_equal(v0, vis)
    np.testing.assert_array_equal(o0, occ)
    np.testing.assert_array_equal(b0, ~(vis | occ))
    # with their dilation (default): the occluder grows by the cross, visibility loses it
    v, o, b = decode_amodal3r(mask_png)
    grown = ndimage.binary_dilation(occ, structure=CROSS)
    np.testing.assert_array_equal(o, grown)
    np.testing.assert_array_equal(b, ~(vis | occ))
    np.testing.assert_array_equal(v, vis & ~grown)
    assert not (v & o).any() and not (v & b).any()


def test_amodal3r_thresholds_as_their_pipeline() -> None:
    mask = np.array([[0, 126, 127, 188, 230, 231, 255]], dtype=np.uint8)
    v, o, b = decode_amodal3r(mask, kernel_size=0)
    assert o.tolist() == [[True, True, False, False, False, False, False]]
    assert b.tolist() == [[False, False, False, False, False, True, True]]
    assert v.tolist() == [[False, False, True, True, True, False, False]]


def test_amodal3r_dilation_may_reach_background() -> None:
    """Their mask_occ is the dilated occluder, background pixels included."""
    mask = np.array([[255, 0, 188]], dtype=np.uint8)
    v, o, b = decode_amodal3r(mask)
    assert o.tolist() == [[True, True, True]] and b.tolist() == [[True, False, False]]
    assert not v.any()


def test_amodal3r_bad_input() -> None:
    rgb, vis, occ = random_view(0)
    with pytest.raises(ValueError, match="overlap"):
        encode_amodal3r(rgb, vis | occ, occ)
    with pytest.raises(ValueError, match="visibility has shape"):
        encode_amodal3r(rgb, vis[:, 1:], occ)
    with pytest.raises(ValueError, match="occlusion must be a 2D bool"):
        encode_amodal3r(rgb, vis, occ.astype(np.uint8))
    with pytest.raises(ValueError, match="rgb must be a uint8"):
        encode_amodal3r(rgb.astype(np.float32), vis, occ)
    with pytest.raises(ValueError, match="rgb must be a uint8"):
        encode_amodal3r(rgb[..., :2], vis, occ)
    with pytest.raises(ValueError, match="mask must be a uint8"):
        decode_amodal3r(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="odd"):
        decode_amodal3r(np.zeros((4, 4), dtype=np.uint8), kernel_size=4)


# ---------------------------------------------------------------- GENA3D

@settings(max_examples=40, deadline=None, database=None)
@given(seed=SEEDS, alpha=st.booleans())
def test_gena3d_png_round_trip(seed: int, alpha: bool) -> None:
    rgb, vis, occ = random_view(seed)
    completed = np.random.default_rng(seed + 1).integers(0, 256, size=rgb.shape[:2] + (4 if alpha else 3,),
                                                          dtype=np.uint8)
    images = encode_gena3d(completed, rgb, vis, occ)
    assert set(images) == set(GENA3D_FILES)
    for key in ("visibility", "occlusion"):
        assert images[key].dtype == np.uint8 and images[key].shape == vis.shape
        assert set(np.unique(images[key]).tolist()) <= {0, 255}
    read = decode_gena3d({key: png_round_trip(img) for key, img in images.items()})
    np.testing.assert_array_equal(read["visibility"], vis)
    np.testing.assert_array_equal(read["occlusion"], occ)
    np.testing.assert_array_equal(read["amodal_completion"], completed)
    np.testing.assert_array_equal(read["occluded"], rgb)


def test_gena3d_threshold_127() -> None:
    rgb = np.zeros((1, 4, 3), dtype=np.uint8)
    grey = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    read = decode_gena3d({"amodal_completion": rgb, "occluded": rgb, "visibility": grey, "occlusion": grey})
    assert read["visibility"].tolist() == [[False, False, True, True]]


def test_gena3d_file_names() -> None:
    assert GENA3D_FILES == {"amodal_completion": "amodal_completion.png", "occluded": "sd_img_cut.png",
                            "visibility": "visibility_instance_mask.png", "occlusion": "occ_mask0.png"}


def test_gena3d_bad_input() -> None:
    rgb, vis, occ = random_view(1)
    with pytest.raises(ValueError, match="overlap"):
        encode_gena3d(rgb, rgb, vis, vis)
    with pytest.raises(ValueError, match="rgb has size"):
        encode_gena3d(rgb, rgb[:-1], vis, occ)
    with pytest.raises(ValueError, match="visibility must be a 2D bool"):
        encode_gena3d(rgb, rgb, vis.astype(np.uint8) * 255, occ)
    with pytest.raises(ValueError, match="occlusion has shape"):
        encode_gena3d(rgb, rgb, vis, occ[1:])
    images = encode_gena3d(rgb, rgb, vis, occ)
    with pytest.raises(ValueError, match="missing GENA3D images"):
        decode_gena3d({k: v for k, v in images.items() if k != "occlusion"})
    with pytest.raises(ValueError, match="visibility must be a uint8"):
        decode_gena3d({**images, "visibility": vis})
    with pytest.raises(ValueError, match="occlusion has shape"):
        decode_gena3d({**images, "occlusion": images["occlusion"][1:]})
