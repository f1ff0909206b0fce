"""Why SCGAN loses a little on clean poses (issue 12, claim 2): numbers the scgan cards quote.

For each entry, on its card's test pairs (the whole test split, 2 fixed pairs per clip):

* PCK@0.1 / keypoint distance (the pose-estimator entry on the generated frame, against the TRUE target
  pose) and SSIM, for the clean target pose and for each abnormal kind alone (missing, scaled,
  jittered; ``models.abnormal_pose`` seeded per batch);
* how much the generated person follows a legitimate change of the pose: the target pose scaled about
  its centre by 1.2 and by 0.85 -> the ratio of the estimated joints' mean distance from their centre
  to that of the clean pose's frame (1.2 / 0.85 = follows fully, 1 = ignores); and each joint moved by
  the "jittered" corruption -> the regression slope of the estimated joints' shift on the requested
  shift (1 = follows, 0 = ignores).

A generator trained to render the TRUE frame from a scaled or jittered pose learns to follow the pose's
geometry less; these numbers measure that (and, with a run trained on missing joints only, that this is not
what costs SCGAN its clean-pose precision: the scgan card).

Run: ``python tools/posevideo_scgan_following.py [--batches N] [names ...]`` (a few minutes on one thread).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

from crossmedia import zoo
from crossmedia.metrics.image import SSIM
from crossmedia.tasks.posevideo.metrics import PCKMetric
from crossmedia.tasks.posevideo.models import ABNORMAL_KINDS, abnormal_pose

SCALES = (1.2, 0.85)
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _posevideo import entry_and_test_batches  # noqa: E402


def _centre(kp: Tensor) -> Tensor:
    v = (kp[..., 2] > 0).float()
    return (kp[..., :2] * v[..., None]).sum(1) / v.sum(1, keepdim=True).clamp_min(1)  # (B, 2)


def _spread(kp: Tensor) -> Tensor:
    v = (kp[..., 2] > 0).float()
    return ((kp[..., :2] - _centre(kp)[:, None]).norm(dim=-1) * v).sum(1) / v.sum(1).clamp_min(1)  # (B,)


def scaled(kp: Tensor, factor: float) -> Tensor:
    """The pose (B, 17, 3) scaled about its visible joints' centre."""
    centre = _centre(kp)[:, None]
    return torch.where(kp[..., 2:] > 0, torch.cat([centre + (kp[..., :2] - centre) * factor, kp[..., 2:]], -1), kp)


def check(name: str, batches: int | None = None, eval_clips: int | None = None) -> dict[str, float]:
    model, test_batches = entry_and_test_batches(name, batches, eval_clips)
    estimator = zoo.load(model.hparams.estimator)
    kinds = ("clean",) + ABNORMAL_KINDS
    pck = {kind: PCKMetric() for kind in kinds}
    ssim = {kind: SSIM(input_range=(-1, 1)) for kind in kinds}
    follow = {s: [] for s in SCALES}
    along = [0.0, 0.0]  # Σ shift·moved, Σ |shift|²
    with torch.no_grad():
        for i, batch in enumerate(test_batches):
            source, target, kp = batch["source"], batch["target"], batch["target_keypoints"]
            poses = {"clean": kp, **{kind: abnormal_pose(kp, torch.Generator().manual_seed(i), kinds=(kind,))
                                     for kind in ABNORMAL_KINDS}}
            found = {}
            for kind, pose in poses.items():
                frame = model.render(source, pose).float().clamp(-1, 1)
                found[kind] = estimator.estimate(frame)
                pck[kind].update(found[kind], kp)
                ssim[kind].update(frame, target)
            seen = (kp[..., 2] > 0) & (found["clean"][..., 2] > 0) & (found["jittered"][..., 2] > 0)
            shift = poses["jittered"][..., :2] - kp[..., :2]
            moved = found["jittered"][..., :2] - found["clean"][..., :2]
            along[0] += float((shift * moved).sum(-1)[seen].sum())
            along[1] += float(shift.pow(2).sum(-1)[seen].sum())
            for s in SCALES:
                frame = model.render(source, scaled(kp, s)).float().clamp(-1, 1)
                follow[s].append(_spread(estimator.estimate(frame)) / _spread(found["clean"]).clamp_min(1e-6))
    out = {}
    for kind in kinds:
        values = pck[kind].compute()
        out[f"pck_{kind}"], out[f"distance_{kind}"] = float(values["pck"]), float(values["distance"])
        out[f"ssim_{kind}"] = float(ssim[kind].compute())
    for s in SCALES:
        out[f"spread_ratio_x{s}"] = float(torch.cat(follow[s]).mean())
    out["jitter_following"] = along[0] / max(along[1], 1e-9)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=None, help="only the first N test batches")
    parser.add_argument("names", nargs="*", default=["scgan", "scgan-nosc"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.names:
        print(name, "  ".join(f"{key} {value:.3f}" for key, value in check(name, args.batches).items()))


if __name__ == "__main__":
    main()
