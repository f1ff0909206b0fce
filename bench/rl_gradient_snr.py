"""How noisy is each RL gradient? SCST vs self-critical n-step, from the same model on the same batch.

Starting from the zoo's ``caption-xe`` (Up-Down after cross-entropy), each estimator's policy
gradient of the decoder is computed ``DRAWS`` times on each of ``BATCHES`` fixed batches of 50
``scenes`` training images, each time with fresh samples (seeds 0..DRAWS-1), the module in the RL stage's train mode. For each
method the signal-to-noise ratio is ``|E g|^2 / E|g - E g|^2``, both estimated without bias from
the draws (the squared mean of N noisy draws holds 1/N of the noise, which is taken out), and the
mean pairwise cosine between draws says how often two steps agree on a direction; both are
averaged over the batches.

This is the measurement behind the caption cards' note on the earlier caption-xe (encoder trained
from scratch): with one sample per image and the same learning rate, SCST's whole-caption
advantage was a much noisier gradient than SCNST's per-token advantages (ratio about 1.5-4), so 5
epochs of SCST barely moved the beam-search captions while SCNST improved them. On the current
caption-xe (encoder from scene-tagger) the ratio is about 4 too, yet both now improve on XE
(test CIDEr 1.060 -> SCST 1.396, SCNST 1.510 with the repetition-aware reward; 1.374 and 1.491 with
plain CIDEr-D): SCNST's advantage is still the steadier gradient. The estimators here use the plain
CIDEr-D reward (``repetition_penalty`` 0), as measured.

Run: ``python bench/rl_gradient_snr.py``; ends with ``ratio: <SCNST SNR / SCST SNR>``.
"""
from __future__ import annotations

import torch

from crossmedia import zoo
from crossmedia.tasks.caption.data import CaptionDataModule
from crossmedia.tasks.caption.reward import CaptionReward
from crossmedia.tasks.caption.self_critical import SCNSTModule, SCSTModule

DRAWS, BATCH, BATCHES = 12, 50, 3


def gradients(model, batch: dict) -> torch.Tensor:
    draws = []
    for seed in range(DRAWS):
        torch.manual_seed(seed)
        model.zero_grad()
        model.training_step(batch, 0).backward()
        draws.append(torch.cat([p.grad.flatten() for p in model.decoder.parameters() if p.grad is not None]))
    return torch.stack(draws)


def summary(g: torch.Tensor) -> tuple[float, float]:
    mean = g.mean(0)
    noise = (g - mean).square().sum(1).sum() / (len(g) - 1)   # E|g - E g|^2, unbiased
    signal = mean.square().sum() - noise / len(g)              # |E g|^2, unbiased
    snr = float(signal / noise)
    unit = torch.nn.functional.normalize(g, dim=1)
    cosine = unit @ unit.T
    pairs = cosine[~torch.eye(len(g), dtype=torch.bool)].mean()
    return snr, float(pairs)


def main() -> None:
    datamodule = CaptionDataModule(batch_size=BATCH)
    datamodule.setup("fit")
    torch.manual_seed(0)
    loader = iter(datamodule.train_dataloader())
    batches = [next(loader) for _ in range(BATCHES)]
    xe = zoo.load("caption-xe")
    results = {}
    for rl, method, extra in (("scst", SCSTModule, {}), ("scnst", SCNSTModule, {"rollout": "greedy", "nstep": 5})):
        args = {k: v for k, v in xe.hparams.items() if not k.startswith("_")}
        model = method(**args, rl_start_epoch=0, samples_per_image=1, **extra)
        model.load_state_dict(xe.state_dict(), strict=True)  # both estimators from the same XE weights
        model._reward = CaptionReward(datamodule.reward_scorer(), datamodule.reward_references())
        model.log = lambda *args, **kwargs: None  # no Trainer in a benchmark
        model.train()
        model.on_train_epoch_start()  # RL stage: encoder frozen in eval mode
        per_batch = [summary(gradients(model, batch)) for batch in batches]
        results[rl] = tuple(sum(values) / len(values) for values in zip(*per_batch))
    for rl, (snr, cosine) in results.items():
        print(f"{rl:6s} gradient SNR {snr:.4f}   mean cosine between draws {cosine:+.3f}")
    print(f"ratio: {results['scnst'][0] / results['scst'][0]:.2f}")


if __name__ == "__main__":
    main()
