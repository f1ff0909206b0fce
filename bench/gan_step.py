"""One GAN-INT-CLS training step through Lightning (manual optimisation) vs the same step by hand.

Both sides train a :class:`~crossmedia.tasks.t2i.module.GANINTCLS` at its real default sizes
(64 x 64 images, generator and discriminator base 48, CA to 128 dims, z of 100 dims; text
encoder ``"random"``: an untrained GRU over a given vocabulary, so no zoo entry is needed) on the
same batch of 64 captioned images, from identical initial weights, with the same Adam optimisers
(lr 2e-4, betas (0.5, 0.999)) and the same losses (Reed et al. 2016, Algorithm 1 + GAN-INT, with
StackGAN's conditioning augmentation):

* D: the matching-aware loss of (real, right text), (real, wrong text = the next item's) and
  (fake, right text), the real images encoded once;
* G: −log σ(D(G(z, ĉ), φ)) + λ KL, plus the GAN-INT term −log σ(D(G(z', ĉ_int), φ_int)) + λ KL_int
  at φ_int = ½ φ + ½ φ_wrong (λ = 2), with D frozen.

* Lightning: a real ``pl.Trainer`` fits the module (``training_step`` -> ``core.manual.manual_step``:
  toggle, ``manual_backward``, step, zero_grad, untoggle; ``log_dict``) on a DataLoader that yields
  the batch. A callback times each loop iteration: from ``on_train_batch_start`` to
  ``on_train_batch_end``, plus the loop's own time between that end and the next batch's start
  (fetching, hooks, bookkeeping), so Trainer start-up is excluded and everything per step is in.
* Plain PyTorch: the same ops written out (``requires_grad_(False)`` on D for the G step), on a
  copy of the module taken before training, one step run from the callback next to each Lightning
  step (after it on even batches, before it on odd ones), so the two are interleaved, see the same
  machine load, and neither always runs second.

Every step k of both sides is seeded with the same seed, so the first step's losses must agree
and so must the weights after all steps (both printed, and asserted small): the comparison is of
the same computation. Medians are taken over the steps after warm-up; one thread, for stability.
Both wall time and this process's CPU time are printed; the ratio is of CPU time, since on a shared
machine (the 2-core development box, with a training run beside it) wall time swings by 2x from
step to step with the other processes' load, while CPU time is what the step itself costs (one
process, one thread, no waiting: the data loader runs in the process).

Goal: ratio <= 1.10 (the training loop costs nothing over hand-written code).

Run: ``python bench/gan_step.py``; ends with ``ratio: <Lightning step time / plain step time>``.
"""
from __future__ import annotations

import copy
import logging
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from crossmedia.data.karpathy import Vocabulary
from crossmedia.nn.conditioning import kl_to_standard_normal
from crossmedia.nn.gan_losses import bce_g_loss, matching_aware_d_loss
from crossmedia.tasks.t2i.module import GANINTCLS, encode_word_lists

BATCH, SIZE, WARMUP, STEPS = 64, 64, 3, 15  # STEPS timed per side after WARMUP (about 1.5 s a step on one thread)
BATCHES = WARMUP + STEPS + 1  # + 1: the loop's time after the last timed step is seen at the next batch's start
COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0), "yellow": (1.0, 1.0, -1.0)}
SHAPES, PLACES = ["square", "circle", "triangle", "star"], ["left", "right", "top", "bottom"]
WORDS = ["a", "on", "the", *COLOURS, *SHAPES, *PLACES]


def make_batch() -> dict:
    """BATCH noisy 64 x 64 images, each a coloured block placed as its caption says (T2IDataModule's keys)."""
    g = torch.Generator().manual_seed(0)
    images, words = torch.ones(BATCH, 3, SIZE, SIZE), []
    half, quarter = SIZE // 2, SIZE // 4
    corners = {"left": (quarter, 0), "right": (quarter, half), "top": (0, quarter), "bottom": (half, quarter)}
    for i in range(BATCH):
        colour, shape, place = list(COLOURS)[i % 4], SHAPES[(i // 4) % 4], PLACES[(i // 16) % 4]
        y, x = corners[place]
        images[i, :, y: y + half, x: x + half] = torch.tensor(COLOURS[colour])[:, None, None]
        words.append(["a", colour, shape, "on", "the", place])
    images = (images + 0.05 * torch.randn(images.shape, generator=g)).clamp(-1, 1)
    return {"images": images, "words": words, "texts": [" ".join(w) for w in words],
            "index": torch.arange(BATCH), "caption": torch.zeros(BATCH, dtype=torch.long)}


def make_plain_step(gan: GANINTCLS):
    """A hand-written GAN-INT-CLS step over ``gan``'s networks (its own optimisers); returns losses."""
    hp = gan.hparams
    text_encoder, condition = gan.text_encoder, gan.condition
    generator, discriminator = gan.generator, gan.discriminator
    betas = (hp.beta1, 0.999)
    opt_g = torch.optim.Adam(list(generator.parameters()) + list(condition.parameters()), lr=hp.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=hp.lr, betas=betas)
    gan.train()
    text_encoder.eval()

    def generate(phi, noise):
        c, mu, logvar = condition(phi)
        return generator(c, noise), kl_to_standard_normal(mu, logvar)

    def step(batch: dict) -> dict:
        real = batch["images"]
        with torch.no_grad():
            ids, lengths = encode_word_lists(gan.vocabulary, batch["words"], hp.max_len)
            phi = text_encoder(ids, lengths).float()  # (B, E), frozen
        wrong = phi.roll(1, dims=0)
        fake, kl = generate(phi, torch.randn(len(phi), hp.noise_dim))
        # discriminator
        fake_logits = discriminator(fake.detach(), phi)
        real_map = discriminator.feature_map(real)
        d_loss = matching_aware_d_loss(discriminator.score(real_map, phi), discriminator.score(real_map, wrong),
                                       fake_logits)
        d_loss.backward()
        opt_d.step()
        opt_d.zero_grad()
        # generator (+ CA), D frozen
        discriminator.requires_grad_(False)
        adv = bce_g_loss(discriminator(fake, phi))
        mixed = hp.interpolate * phi + (1 - hp.interpolate) * wrong
        fake_int, kl_int = generate(mixed, torch.randn(len(phi), hp.noise_dim))
        adv_int = bce_g_loss(discriminator(fake_int, mixed))
        g_loss = adv + hp.kl_weight * kl + adv_int + hp.kl_weight * kl_int
        g_loss.backward()
        opt_g.step()
        opt_g.zero_grad()
        discriminator.requires_grad_(True)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "g_adv": adv.detach(), "g_kl": kl.detach(),
                "g_adv_int": adv_int.detach()}

    return step


class Interleaved(pl.Callback):
    """Times each Lightning loop iteration and runs (and times) one plain step after each."""

    def __init__(self, plain_step, batch: dict, seed: int = 1000):
        self.plain_step, self.seed = plain_step, seed
        self.plain_batches = iter(DataLoader([batch] * BATCHES, batch_size=None))
        self.lightning, self.plain, self.gaps = [], [], []  # wall seconds per step
        self.lightning_cpu, self.plain_cpu, self.gaps_cpu = [], [], []  # CPU seconds of this process
        self.first: dict = {}
        self._start = self._resume = None

    def _plain(self, batch_idx: int) -> None:
        torch.manual_seed(self.seed + batch_idx)
        start, cpu = time.perf_counter(), time.process_time()
        losses = self.plain_step(next(self.plain_batches))
        self.plain.append(time.perf_counter() - start)
        self.plain_cpu.append(time.process_time() - cpu)
        if batch_idx == 0:
            self.first["plain"] = losses

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if self._resume is not None:
            self.gaps.append(now - self._resume)  # the loop between the last batch's end and this start
            self.gaps_cpu.append(cpu - self._resume_cpu)
        if batch_idx % 2:  # odd batches: the plain step first, so neither side always runs second
            self._plain(batch_idx)
        torch.manual_seed(self.seed + batch_idx)
        self._start, self._start_cpu = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.lightning.append(time.perf_counter() - self._start)
        self.lightning_cpu.append(time.process_time() - self._start_cpu)
        if batch_idx == 0:
            self.first["lightning"] = {k.removeprefix("train/"): v.detach().clone()
                                       for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        if batch_idx % 2 == 0:
            self._plain(batch_idx)
        self._resume, self._resume_cpu = time.perf_counter(), time.process_time()


def main() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    batch = make_batch()
    torch.manual_seed(0)
    gan = GANINTCLS(text_encoder="random", vocabulary=[Vocabulary.EOS, Vocabulary.UNK, *WORDS], text_dim=256,
                    evaluator=None, scorer=None)
    twin = copy.deepcopy(gan)  # identical initial weights for the plain loop
    timer = Interleaved(make_plain_step(twin), batch)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=[timer], accelerator="cpu", devices=1)
    trainer.fit(gan, train_dataloaders=DataLoader([batch] * BATCHES, batch_size=None))

    lightning, plain = timer.first["lightning"], timer.first["plain"]
    loss_diff = max(abs(float(lightning[k]) - float(plain[k])) for k in plain)
    weights = twin.state_dict()
    weight_diff = max((v.float() - weights[k].float()).abs().max().item() for k, v in gan.state_dict().items())
    n = min(len(timer.gaps), len(timer.plain))  # iterations whose loop gap was seen
    medians = {}
    for clock, (light, gaps, hand) in {"wall": (timer.lightning, timer.gaps, timer.plain),
                                       "CPU": (timer.lightning_cpu, timer.gaps_cpu, timer.plain_cpu)}.items():
        steps = [light[i] + gaps[i] for i in range(WARMUP, n)]  # a whole loop iteration
        medians[clock] = (statistics.median(steps), statistics.median(hand[WARMUP:n]),
                          statistics.median(gaps[WARMUP:n]))
    g_size, d_size = (sum(p.numel() for p in net.parameters()) / 1e6 for net in (gan.generator, gan.discriminator))
    print(f"GAN-INT-CLS + CA, batch {BATCH} at {SIZE}x{SIZE}, G {g_size:.2f} M + D {d_size:.2f} M parameters, "
          f"{n - WARMUP} interleaved steps after {WARMUP} warm-up, {torch.get_num_threads()} thread")
    print("first step losses (Lightning / plain): " + ", ".join(
        f"{k} {float(lightning[k]):.6f}/{float(plain[k]):.6f}" for k in plain))
    print(f"max |loss difference| at step 1: {loss_diff:.2e}; max |weight difference| after "
          f"{len(timer.plain)} steps: {weight_diff:.2e}")
    for clock, (light, hand, gap) in medians.items():
        print(f"{clock:>4} time, median: Lightning step {light * 1e3:7.1f} ms (loop between batches {gap * 1e3:.2f} ms)"
              f", plain step {hand * 1e3:7.1f} ms, ratio {light / hand:.3f}")
    assert loss_diff < 1e-5, f"the two steps compute different losses (max difference {loss_diff:.2e})"
    assert weight_diff < 1e-4, f"the two loops end with different weights (max difference {weight_diff:.2e})"
    light, hand, _ = medians["CPU"]
    print(f"ratio: {light / hand:.3f}")


if __name__ == "__main__":
    main()
