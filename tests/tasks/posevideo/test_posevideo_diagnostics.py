"""crossmedia.tasks.posevideo.diagnostics, whose numbers the posevideo cards quote, still runs and still says
what the cards say (on a few test clips, so the relations are checked, not the cards' digits)."""
from __future__ import annotations

from crossmedia.tasks.posevideo.diagnostics import attr_check, main, psgan_jitter, scgan_following


def test_psgan_jitter_is_invisible_to_its_discriminator_and_filtered_away():
    out = psgan_jitter("psgan", batches=1, eval_clips=64)
    assert out["smoothness_smoothed"] < 0.6 * out["smoothness_generated"]
    assert out["accuracy_smoothed"] >= out["accuracy_generated"] - 0.05
    assert out["d_real_prob_real"] > 0.5 > out["d_real_prob_generated"]
    assert abs(out["d_real_prob_real_jittered"] - out["d_real_prob_real"]) < 0.05


def test_attr_check_sees_the_edit_move_only_the_two_stage_clothes():
    attr, e2e = attr_check("pose-attr", 1, 12), attr_check("pose-attr-e2e", 1, 12)
    assert attr["edit_change"] > 20 * e2e["edit_change"]
    assert attr["hue_error_top"] < 30 < e2e["hue_error_top"]
    assert attr["estimator_pck_real"] >= attr["estimator_pck_real_recoloured"]


def test_scgan_following_numbers_are_in_range(capsys):
    main(["scgan-following", "scgan", "--batches", "1", "--eval-clips", "12"])
    printed = capsys.readouterr().out.split()
    out = {key: float(value) for key, value in zip(printed[1::2], printed[2::2])}
    assert printed[0] == "scgan" and out == {k: round(v, 3) for k, v in scgan_following("scgan", 1, 12).items()}
    assert 1.0 < out["spread_ratio_x1.2"] < 1.2 and 0.85 < out["spread_ratio_x0.85"] < 1.0
    assert 0.0 < out["jitter_following"] < 1.0 and out["pck_clean"] > out["pck_missing"]
