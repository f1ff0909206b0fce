"""One self-critical n-step (SCNST) training step vs one SCST step, same model, same batch.

Both steps run the module's real ``training_step`` + backward + Adam update on a batch of 50
built-in ``scenes`` images (generated on first use), with the CIDEr-D reward of the training
references, the encoder frozen as in the RL stage:

* SCST: one sampled caption per image (with gradient) + the greedy caption (eval mode, no
  gradient), 100 CIDEr-D rewards.
* SCNST (greedy rollout, n = 5): the sampled caption, one teacher-forced pass to get the state
  after each prefix, then ALL prefixes of the batch (about 50 x 12) completed in one batched
  decoding call without gradient, and CIDEr-D of every completion in one call.

The goal is a ratio <= 3: rollouts batched over prefixes cost about one extra decoding pass, where
a loop over prefixes would cost one per word.

Run: ``python bench/scnst_step.py``; ends with ``ratio: <SCNST step time / SCST step time>``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _timing import best_time, training_step  # noqa: E402

from crossmedia.tasks.caption.data import CaptionDataModule  # noqa: E402
from crossmedia.tasks.caption.reward import CaptionReward  # noqa: E402
from crossmedia.tasks.caption.self_critical import SCNSTModule, SCSTModule  # noqa: E402

BATCH, REPEATS = 50, 5


def make_step(datamodule: CaptionDataModule, method: type, batch: dict):
    torch.manual_seed(0)
    extra = {"rollout": "greedy", "nstep": 5} if method is SCNSTModule else {}
    model = method(vocab=list(datamodule.vocabulary.words), decoder="updown", backbone="resnet18", stage=3,
                   rl_start_epoch=0, **extra)
    model._reward = CaptionReward(datamodule.reward_scorer(), datamodule.reward_references())
    model.log = lambda *args, **kwargs: None  # no Trainer in a benchmark
    model.train()
    model.on_train_epoch_start()               # RL stage: encoder frozen in eval mode
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5)
    return training_step(model, optimizer, batch, seed=1)


def main() -> None:
    datamodule = CaptionDataModule(batch_size=BATCH)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    scst, scnst = make_step(datamodule, SCSTModule, batch), make_step(datamodule, SCNSTModule, batch)
    scst(), scnst()  # warm-up
    _, scst_time = best_time(scst, REPEATS)
    _, scnst_time = best_time(scnst, REPEATS)
    print(f"batch {BATCH} images, Up-Down decoder, {len(datamodule.vocabulary)} words")
    print(f"SCST step:  {scst_time * 1e3:8.1f} ms")
    print(f"SCNST step: {scnst_time * 1e3:8.1f} ms  (greedy rollouts of every prefix, one batched call)")
    print(f"ratio: {scnst_time / scst_time:.2f}")


if __name__ == "__main__":
    main()
