"""Diagnostics behind the posevideo cards' notes: the numbers they quote beyond their metrics (issue 12).

Each function loads a zoo entry and its card's test data and returns named numbers; ``python -m
crossmedia.tasks.posevideo.diagnostics {psgan-jitter,scgan-following,attr-check} [names] [--batches N]
[--eval-clips N]`` prints them (a minute or a few on one CPU thread; ``--batches`` / ``--eval-clips`` for a quick
look). What each measures:

* :func:`psgan_jitter` (the psgan card: why its sequences are jerkier than real ones). On the test split
  (first pose, action, the evaluation's noise), for the generated sequences G, the real ones R and G after
  :func:`~crossmedia.tasks.posevideo.models.temporal_filter` ("smoothed"): the jitter (mean |G − smoothed G|
  per visible joint and frame, image px); smoothness (mean joint acceleration), mean speed and RMS
  displacement of each; the action classifier's accuracy on G and smoothed G; and PSGAN's discriminator's
  mean probability "real" for R, R with G's jitter added, G and smoothed G. If D scores R + jitter like R
  and smoothed G like G, the adversary cannot see the jitter.
* :func:`scgan_following` (the scgan cards: where the clean-pose cost comes from). PCK@0.1 / distance (the
  pose estimator on the frame, against the TRUE target pose) and SSIM for the clean target pose and for each
  abnormal kind alone; how much the generated person follows a legitimate change of the pose: the pose
  scaled about its centre by 1.2 and 0.85 (ratio of the estimated joints' mean distance from their centre
  to that of the clean pose's frame; 1 = ignores) and the "jittered" shift (regression slope of the
  estimated joints' shift on the requested one; 1 = follows, 0 = ignores).
* :func:`attr_check` (the pose-attr cards): the colour slots' L1 to the source garments' mean colours, the
  edit's mean pixel change inside the clothes masks, the recoloured frame's hue error per garment, and the
  pose estimator's PCK on the REAL target frames as they are and with their clothes hue-shifted to the same
  requests (what recolouring costs the estimator itself, not the generator).
"""
from __future__ import annotations

import argparse
from itertools import islice

import torch
from torch import Tensor

from crossmedia.core.modes import eval_mode
from crossmedia.core.registry import card, load
from crossmedia.metrics.image import SSIM
from crossmedia.tasks.posevideo.attr import GARMENTS, garment_colours, hue_shift, recolour
from crossmedia.tasks.posevideo.data import PoseVideoDataModule
from crossmedia.tasks.posevideo.metrics import HueError, PCKMetric, smoothness
from crossmedia.tasks.posevideo.models import ABNORMAL_KINDS, abnormal_pose, temporal_filter
from crossmedia.tasks.posevideo.module import item_noise

__all__ = ["psgan_jitter", "scgan_following", "attr_check"]


# helpers

def _entry_and_test_batches(name: str, batches: int | None = None, eval_clips: int | None = None):
    """The zoo entry ``name`` (eval mode, verified) and an iterator over its card's test batches (the first
    ``batches``; ``eval_clips``: only that many test clips)."""
    model = load(name)
    args = card(name).config["data"]["init_args"]
    data = PoseVideoDataModule(**{**args, "eval_clips": eval_clips or args.get("eval_clips")})
    data.prepare_data()  # the built-in puppets are generated on first use
    data.setup("test")
    return model, islice(data.test_dataloader(), batches)  # batches=None: all of them


def _motion(keypoints: Tensor) -> tuple[float, float]:
    """Mean speed and RMS displacement (px) over the joints visible in every frame."""
    xy, seen = keypoints[..., :2], (keypoints[..., 2] > 0).all(1)  # (B, T, 17, 2), (B, 17)
    speed = (xy[:, 1:] - xy[:, :-1]).norm(dim=-1).mean(1)  # (B, 17)
    rms = (xy - xy.mean(1, keepdim=True)).norm(dim=-1).pow(2).mean(1).sqrt()
    return float(speed[seen].mean()), float(rms[seen].mean())


SCALES = (1.2, 0.85)  # the legitimate pose scalings scgan_following asks for


def _centre(kp: Tensor) -> Tensor:
    v = (kp[..., 2] > 0).float()
    return (kp[..., :2] * v[..., None]).sum(1) / v.sum(1, keepdim=True).clamp_min(1)  # (B, 2)


def _spread(kp: Tensor) -> Tensor:
    v = (kp[..., 2] > 0).float()
    return ((kp[..., :2] - _centre(kp)[:, None]).norm(dim=-1) * v).sum(1) / v.sum(1).clamp_min(1)  # (B,)


def _scaled(kp: Tensor, factor: float) -> Tensor:
    """The pose (B, 17, 3) scaled about its visible joints' centre."""
    centre = _centre(kp)[:, None]
    return torch.where(kp[..., 2:] > 0, torch.cat([centre + (kp[..., :2] - centre) * factor, kp[..., 2:]], -1), kp)


# functions

def psgan_jitter(name: str = "psgan", batches: int | None = None, eval_clips: int | None = None) -> dict[str, float]:
    """Why PSGAN is jerky: the numbers the psgan card quotes (module docstring)."""
    model, test_batches = _entry_and_test_batches(name, batches, eval_clips)
    classifier = load(model.hparams.classifier)
    real, fake, actions = [], [], []
    with torch.no_grad():
        for batch in test_batches:
            kp = batch["keypoints"][:, : model.frames]
            fake.append(model.sequence(kp[:, 0], batch["action"], item_noise(batch["index"], 0, model.hparams.noise_dim)))
            real.append(kp)
            actions.append(batch["action"])
    real, fake, actions = torch.cat(real).float(), torch.cat(fake), torch.cat(actions)
    smoothed = temporal_filter(fake)
    jitter = torch.where(fake[..., 2:] > 0, fake - smoothed, 0.0)
    real_jittered = torch.where(real[..., 2:] > 0, torch.cat([real[..., :2] + jitter[..., :2], real[..., 2:]], -1), 0.0)
    seen = fake[..., 2] > 0
    out = {"jitter_mean_px": float(jitter[..., :2].norm(dim=-1)[seen].mean())}  # |generated - filtered|, image px
    for key, seq in (("real", real), ("generated", fake), ("smoothed", smoothed)):
        out[f"smoothness_{key}"] = float(smoothness(seq))
        out[f"speed_{key}"], out[f"rms_{key}"] = _motion(seq)
    with torch.no_grad(), eval_mode(classifier), eval_mode(model):
        for key, seq in (("generated", fake), ("smoothed", smoothed)):
            out[f"accuracy_{key}"] = float((classifier.logits(seq).argmax(-1) == actions).float().mean())
        for key, seq in (("real", real), ("real_jittered", real_jittered), ("generated", fake), ("smoothed", smoothed)):
            probs = [torch.sigmoid(model.discriminator(model._real_maps(seq[i:i + 64]),
                                                       model._d_cond(actions[i:i + 64]))).mean()
                     * len(seq[i:i + 64]) for i in range(0, len(seq), 64)]
            out[f"d_real_prob_{key}"] = float(sum(probs) / len(seq))
    return out


def scgan_following(name: str = "scgan", batches: int | None = None, eval_clips: int | None = None) -> dict[str, float]:
    """How SCGAN renders each abnormal kind and follows the pose: the numbers the scgan card quotes."""
    model, test_batches = _entry_and_test_batches(name, batches, eval_clips)
    estimator = load(model.hparams.estimator)
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
                frame = model.render(source, _scaled(kp, s)).float().clamp(-1, 1)
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


def attr_check(name: str = "pose-attr", batches: int | None = None, eval_clips: int | None = None) -> dict[str, float]:
    """The numbers the pose-attr cards quote beyond their metrics, for one entry (module docstring)."""
    model, test_batches = _entry_and_test_batches(name, batches, eval_clips)
    estimator = load(model.hparams.estimator)
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


DIAGNOSTICS = {"psgan-jitter": (psgan_jitter, ["psgan"]), "scgan-following": (scgan_following, ["scgan", "scgan-nosc"]),
               "attr-check": (attr_check, ["pose-attr", "pose-attr-e2e"])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("diagnostic", choices=sorted(DIAGNOSTICS))
    parser.add_argument("names", nargs="*", help="zoo entries (default: the cards that quote it)")
    parser.add_argument("--batches", type=int, default=None, help="only the first N test batches")
    parser.add_argument("--eval-clips", type=int, default=None, help="only the first N test clips")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    function, names = DIAGNOSTICS[args.diagnostic]
    for name in args.names or names:
        values = function(name, args.batches, args.eval_clips)
        print(name, "  ".join(f"{key} {value:.3f}" for key, value in values.items()))


if __name__ == "__main__":
    main()
