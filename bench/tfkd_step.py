"""One Tf-KD-reg training step vs one plain cross-entropy step, same model, same batch.

Both steps run :class:`~crossmedia.tasks.classify.module.ClassifyModule`'s real ``training_step``
+ backward + AdamW update on the same batch of 128 built-in ``digits`` images at 32x32 (the
classify entries' backbone, timm ``test_resnet``). Tf-KD reg adds only the virtual teacher (a
(B, K) constant built from the labels) and one KL term on the logits: the paper's "without any
extra computation cost" means the ratio should stay close to 1 (goal <= 1.05).

Run: ``python bench/tfkd_step.py``; ends with ``ratio: <Tf-KD-reg step time / CE step time>``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test loads this file by path
from _timing import best_time, training_step  # noqa: E402

from crossmedia.tasks.classify.data import ClassifyDataModule  # noqa: E402
from crossmedia.tasks.classify.module import ClassifyModule  # noqa: E402

BATCH, REPEATS, ROUNDS = 128, 5, 3


def make_step(distillation: str, batch):
    torch.manual_seed(0)
    model = ClassifyModule(num_classes=10, backbone="test_resnet", distillation=distillation)
    model.log = lambda *args, **kwargs: None  # no Trainer in a benchmark
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return training_step(model, optimizer, batch)


def main() -> None:
    datamodule = ClassifyDataModule(dataset="digits", batch_size=BATCH)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    ce, reg = make_step("ce", batch), make_step("tfkd-reg", batch)
    ce(), reg()  # warm-up
    ce_time = reg_time = float("inf")
    for _ in range(ROUNDS):  # interleaved, so a busy machine slows both alike
        ce_time = min(ce_time, best_time(ce, REPEATS)[1])
        reg_time = min(reg_time, best_time(reg, REPEATS)[1])
    print(f"batch {BATCH} digits at 32x32, test_resnet, {torch.get_num_threads()} threads")
    print(f"CE step:       {ce_time * 1e3:8.2f} ms")
    print(f"Tf-KD-reg step: {reg_time * 1e3:8.2f} ms  (virtual teacher + one KL term on the logits)")
    print(f"ratio: {reg_time / ce_time:.3f}")


if __name__ == "__main__":
    main()
