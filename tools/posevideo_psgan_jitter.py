"""Why PSGAN's sequences are jerkier than real ones (issue 12, claim 1): numbers the psgan card quotes.

On the psgan card's test split (first pose, action, the evaluation's noise), for the generated sequences G,
the real ones R and G after ``models.temporal_filter`` ([1, 2, 1] / 4 over time; ``smoothed``):

* the jitter: mean |G − smoothed G| per visible joint and frame (image px);
* smoothness (mean joint acceleration, px / frame²), mean speed (px / frame), RMS displacement from each
  joint's mean place (px): motion of about real size, with frame-to-frame jitter on top;
* action accuracy of the action-classifier entry on G and on smoothed G: the filter removes no action;
* PSGAN's discriminator D: mean probability "real" of R, of R with G's jitter (G − smoothed G) added, of G
  and of smoothed G. If D scores R + jitter like R and smoothed G like G, the adversary cannot see the
  jitter, so nothing in training removes it.

Run: ``python tools/posevideo_psgan_jitter.py [--batches N]`` (under a minute on one CPU thread).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

from crossmedia import zoo
from crossmedia.core.modes import eval_mode
from crossmedia.tasks.posevideo.metrics import smoothness
from crossmedia.tasks.posevideo.models import temporal_filter
from crossmedia.tasks.posevideo.module import item_noise
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _posevideo import entry_and_test_batches  # noqa: E402


def motion(keypoints: Tensor) -> tuple[float, float]:
    """Mean speed and RMS displacement (px) over the joints visible in every frame."""
    xy, seen = keypoints[..., :2], (keypoints[..., 2] > 0).all(1)  # (B, T, 17, 2), (B, 17)
    speed = (xy[:, 1:] - xy[:, :-1]).norm(dim=-1).mean(1)  # (B, 17)
    rms = (xy - xy.mean(1, keepdim=True)).norm(dim=-1).pow(2).mean(1).sqrt()
    return float(speed[seen].mean()), float(rms[seen].mean())


def check(name: str = "psgan", batches: int | None = None, eval_clips: int | None = None) -> dict[str, float]:
    model, test_batches = entry_and_test_batches(name, batches, eval_clips)
    classifier = zoo.load(model.hparams.classifier)
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
        out[f"speed_{key}"], out[f"rms_{key}"] = motion(seq)
    with torch.no_grad(), eval_mode(classifier), eval_mode(model):
        for key, seq in (("generated", fake), ("smoothed", smoothed)):
            out[f"accuracy_{key}"] = float((classifier.logits(seq).argmax(-1) == actions).float().mean())
        for key, seq in (("real", real), ("real_jittered", real_jittered), ("generated", fake), ("smoothed", smoothed)):
            probs = [torch.sigmoid(model.discriminator(model._real_maps(seq[i:i + 64]),
                                                       model._d_cond(actions[i:i + 64]))).mean()
                     * len(seq[i:i + 64]) for i in range(0, len(seq), 64)]
            out[f"d_real_prob_{key}"] = float(sum(probs) / len(seq))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=None, help="only the first N test batches")
    parser.add_argument("name", nargs="?", default="psgan")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for key, value in check(args.name, args.batches).items():
        print(f"{key:26s} {value:.3f}")


if __name__ == "__main__":
    main()
