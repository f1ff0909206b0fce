"""The diagnostic scripts under tools/ whose numbers the posevideo cards quote still run and still say what
the cards say (on the first test batch only, so the relations are checked, not the cards' digits)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

TOOLS = Path(__file__).parents[3] / "tools"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_psgan_jitter_is_invisible_to_its_discriminator_and_filtered_away():
    out = _tool("posevideo_psgan_jitter").check("psgan", batches=1, eval_clips=64)
    assert out["smoothness_smoothed"] < 0.6 * out["smoothness_generated"]
    assert out["accuracy_smoothed"] >= out["accuracy_generated"] - 0.05
    assert out["d_real_prob_real"] > 0.5 > out["d_real_prob_generated"]
    assert abs(out["d_real_prob_real_jittered"] - out["d_real_prob_real"]) < 0.05


def test_attr_check_sees_the_edit_move_only_the_two_stage_clothes():
    tool = _tool("posevideo_attr_check")
    attr, e2e = tool.check("pose-attr", batches=1, eval_clips=12), tool.check("pose-attr-e2e", batches=1, eval_clips=12)
    assert attr["edit_change"] > 20 * e2e["edit_change"]
    assert attr["hue_error_top"] < 30 < e2e["hue_error_top"]
    assert attr["estimator_pck_real"] >= attr["estimator_pck_real_recoloured"]


def test_scgan_following_numbers_are_in_range():
    out = _tool("posevideo_scgan_following").check("scgan", batches=1, eval_clips=12)
    assert 1.0 < out["spread_ratio_x1.2"] < 1.2 and 0.85 < out["spread_ratio_x0.85"] < 1.0
    assert 0.0 < out["jitter_following"] < 1.0
    assert out["pck_clean"] > out["pck_missing"]
