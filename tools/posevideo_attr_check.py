"""Numbers the pose-attr and pose-attr-e2e cards quote beyond their metrics (issue 12, claim 3).

For each entry, on its card's test pairs (the first 36 test clips x 2 pairs of the built-in puppets):

* slot L1: mean |E_c(source) - the source garments' mean colours| ([-1, 1] scale), over present garments;
* the edit's pixel change: mean |edited - reconstructed| inside the target frame's clothes masks;
* hue error of the edited frame to the request, per garment (top, bottom), degrees;
* the pose estimator's PCK@0.1 on the REAL target frames, as they are and with the clothes hue-shifted to the
  same requests inside the masks (what the recolouring costs the estimator itself, not the generator).

Run: ``python tools/posevideo_attr_check.py [--batches N]`` (about a minute on one CPU thread).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from crossmedia import zoo
from crossmedia.tasks.posevideo.attr import GARMENTS, garment_colours, hue_shift, recolour
from crossmedia.tasks.posevideo.metrics import HueError, PCKMetric
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _posevideo import entry_and_test_batches  # noqa: E402


def check(name: str, batches: int | None = None, eval_clips: int | None = None) -> dict[str, float]:
    """The numbers above for one zoo entry."""
    model, test_batches = entry_and_test_batches(name, batches, eval_clips)
    estimator = zoo.load(model.hparams.estimator)
    slot_l1, change = [], []
    hue = {garment: HueError(labels=(label,)) for garment, label in GARMENTS.items()}
    real, real_recoloured = PCKMetric(), PCKMetric()
    with torch.no_grad():
        for batch in test_batches:
            source, target, kp, masks = batch["source"], batch["target"], batch["target_keypoints"], batch["target_mask"]
            request, true = model.requested_hues(target, masks)  # (B, 2) degrees each
            colours = model.colours(source)  # (B, 2, 3)
            truth, present = garment_colours(source, batch["source_mask"])
            slot_l1.append(float(((colours - truth).abs().mean(-1) * present).sum() / present.sum()))
            recon = model.render(source, kp, colours=colours).float().clamp(-1, 1)
            edit = model.render(source, kp, colours=recolour(colours, request)).float().clamp(-1, 1)
            change.append(float((edit - recon).abs()[(masks > 0)[:, None].expand_as(edit)].mean()))
            for j, metric in enumerate(hue.values()):
                metric.update(edit, masks, request[:, j:j + 1])
            real.update(estimator.estimate(target), kp)
            real_recoloured.update(estimator.estimate(hue_shift(target, masks, request - true)), kp)
    return {"slot_l1": sum(slot_l1) / len(slot_l1), "edit_change": sum(change) / len(change),
            **{f"hue_error_{g}": float(m.compute()) for g, m in hue.items()},
            "estimator_pck_real": float(real.compute()["pck"]),
            "estimator_pck_real_recoloured": float(real_recoloured.compute()["pck"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=None, help="only the first N test batches")
    parser.add_argument("names", nargs="*", default=["pose-attr", "pose-attr-e2e"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.names:
        values = check(name, args.batches)
        print(name, "  ".join(f"{key} {value:.3f}" for key, value in values.items()))


if __name__ == "__main__":
    main()
