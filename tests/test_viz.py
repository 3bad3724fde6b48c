"""Contact sheets are real pictures with the right content."""

from __future__ import annotations

import numpy as np
from conftest import one_view_protocol
from PIL import Image

from bench.run.sheets import TILE, mask_overlay


def test_mask_overlay_colours():
    rgb = np.full((4, 4, 3), 200, np.uint8)
    vis = np.zeros((4, 4), bool)
    occ = np.zeros((4, 4), bool)
    vis[0, 0], occ[1, 1] = True, True
    out = mask_overlay(rgb, vis, occ)
    assert out[0, 0, 1] > out[0, 0, 0]  # green tint on visible
    assert tuple(out[1, 1]) == (60, 90, 230)  # occluded: blue
    assert tuple(out[3, 3]) == (80, 80, 80)  # elsewhere: dimmed


def test_contact_sheet_from_a_run(gso_root, tmp_path):
    from bench.run.runner import RunConfig, run

    out = tmp_path / "run"
    run(RunConfig(out=str(out), protocol=one_view_protocol(tmp_path), methods=["oracle", "visible"],
                  data=str(gso_root), jobs=1, cache=str(tmp_path / "c"), sheets=1,
                  object_ids=["Android_Lego"]), progress=False)
    sheet = np.asarray(Image.open(out / "sheets" / "amodal3r-gso" / "Android_Lego.png"))  # its name
    # rows: 1 input view, GT rig, oracle rig, visible rig; 4 tiles wide (the 4-view rig)
    assert sheet.shape[1] == 4 * TILE and sheet.shape[0] == 4 * (TILE + 18)
    # the GT row and the oracle row are the same picture; neither is blank
    gt = sheet[1 * (TILE + 18) + 18: 2 * (TILE + 18)]
    oracle = sheet[2 * (TILE + 18) + 18: 3 * (TILE + 18)]
    assert np.array_equal(gt, oracle) and (gt < 250).mean() > 0.02
