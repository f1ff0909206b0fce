"""The two-stage attribute generator (``pose-attr``): the hue metric by hand, the colour augmentation stays
inside the clothes masks, both stages' losses fall, and a colour request moves the generated hue."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from crossmedia.tasks.posevideo.attr import PoseAttr, colour_hue, garment_colours, hue_shift, recolour
from crossmedia.tasks.posevideo.data import PoseVideoDataModule
from crossmedia.tasks.posevideo.metrics import HueError, garment_hue, hue_distance


def _dm(root, **kw):
    dm = PoseVideoDataModule(dataset="puppets", root=str(root), mode="frames", masks=True, batch_size=8,
                             eval_batch_size=16, **kw)
    dm.setup()
    return dm


def test_hue_error_by_hand():
    # top (label 1): pure red (hue 0°) and pure magenta (hue 300°), chroma 1 each -> circular mean 330°;
    # a grey top pixel has no chroma and does not count. Bottom (label 2): pure green (120°).
    rgb = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]], [[0.5, 0.5, 0.5], [0.0, 1.0, 0.0]]])  # (H, W, 3)
    image = (rgb.permute(2, 0, 1) * 2 - 1)[None]  # (1, 3, 2, 2) in [-1, 1]
    masks = torch.tensor([[[1, 1], [1, 2]]], dtype=torch.uint8)
    hue, ok = garment_hue(image, masks, 1)
    assert ok.item() and hue.item() == pytest.approx(330.0, abs=1e-3)
    metric = HueError()
    metric.update(image, masks, torch.tensor([[10.0, 60.0]]))  # |330 - 10| circular = 40; |120 - 60| = 60
    assert metric.compute().item() == pytest.approx(50.0, abs=1e-3)
    assert hue_distance(torch.tensor(350.0), torch.tensor(10.0)).item() == pytest.approx(20.0)
    empty = HueError()
    empty.update(image, torch.zeros_like(masks), torch.tensor([[0.0, 0.0]]))  # no garment pixels: not counted
    assert torch.isnan(empty.compute())


def test_colour_augmentation_changes_only_the_clothes(tiny_puppets):
    dm = _dm(tiny_puppets)
    batch = next(iter(dm.train_dataloader()))
    frames, masks = batch["source"], batch["source_mask"]
    shifted = hue_shift(frames, masks, torch.tensor([[120.0, 240.0]]).expand(len(frames), -1))
    changed = (shifted - frames).abs().amax(1) > 1e-6  # (B, S, S)
    clothes = (masks == 1) | (masks == 2)
    assert clothes.any() and not changed[~clothes].any()  # outside the masks: bit for bit the same
    assert changed[clothes].float().mean() > 0.9  # inside: (almost) every pixel recoloured (grey ones cannot be)
    before = torch.stack([garment_hue(frames, masks, label)[0] for label in (1, 2)], 1)
    after = torch.stack([garment_hue(shifted, masks, label)[0] for label in (1, 2)], 1)
    assert hue_distance(after, (before + torch.tensor([120.0, 240.0])) % 360).max() < 1.0
    # and the mean colours move with them: recolour() of the slots agrees with the pixels
    slots, present = garment_colours(frames, masks)
    assert present.all()
    moved, _ = garment_colours(shifted, masks)
    assert (recolour(slots, after) - moved).abs().max() < 0.15  # the mean of a texture is not a single pixel


def _fit(model, dm, steps: int) -> None:
    pl.seed_everything(0)
    trainer = pl.Trainer(max_steps=steps, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[], accelerator="cpu")
    trainer.fit(model, datamodule=dm)


def test_both_stages_losses_fall(tiny_puppets):
    torch.manual_seed(0)
    dm = _dm(tiny_puppets)
    batch = {key: value[:4] for key, value in next(iter(dm.train_dataloader())).items()}
    model = PoseAttr(base=8, colour_base=8, estimator=None, psgan=None, lr=3e-3)
    opt = model.configure_optimizers()
    real, _ = garment_colours(batch["source"], batch["source_mask"])
    colour, l1 = [], []
    for _ in range(10):  # stage 1: the colour slots
        loss = (model.colours(batch["source"]) - real).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        colour.append(float(loss.detach()))
    assert colour[-1] < 0.7 * colour[0], colour  # 0.55 -> 0.32
    model.colour_net.requires_grad_(False)
    before = [p.detach().clone() for p in model.colour_net.parameters()]
    for _ in range(10):  # stage 2: the generator, the encoder frozen
        fake = model.render(batch["source"], batch["target_keypoints"])
        loss = (fake - batch["target"]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        l1.append(float(loss.detach()))
    assert l1[-1] < 0.8 * l1[0], l1
    assert all(torch.equal(b, p) for b, p in zip(before, model.colour_net.parameters()))


def _flat(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in net.parameters()])


def test_trainer_stage_one_trains_only_the_encoder_and_stage_two_only_the_generator(tiny_puppets):
    dm = _dm(tiny_puppets)  # 9 training clips, batches of 8: 2 steps per epoch; one step each here
    first = PoseAttr(base=8, colour_base=8, estimator=None, psgan=None, encoder_epochs=1)
    g0, e0 = _flat(first.generator), _flat(first.colour_net)
    _fit(first, dm, 1)  # epoch 0: stage 1
    assert torch.equal(g0, _flat(first.generator)) and not torch.equal(e0, _flat(first.colour_net))
    second = PoseAttr(base=8, colour_base=8, estimator=None, psgan=None, encoder_epochs=0)  # stage 2 at once
    g0, e0 = _flat(second.generator), _flat(second.colour_net)
    _fit(second, dm, 1)
    assert not torch.equal(g0, _flat(second.generator)) and torch.equal(e0, _flat(second.colour_net))
    e2e = PoseAttr(base=8, colour_base=8, estimator=None, psgan=None, two_stage=False, colour_augment=False)
    g0, e0 = _flat(e2e.generator), _flat(e2e.colour_net)
    _fit(e2e, dm, 1)  # the baseline trains both at once
    assert not torch.equal(g0, _flat(e2e.generator)) and not torch.equal(e0, _flat(e2e.colour_net))


def test_attributes_request_moves_the_hue(tiny_puppets):
    """The trained zoo entry: recolouring the top to the colour farthest from its own hue moves the generated
    top's hue toward the request, at the true pose (masks known) and through generate()."""
    from PIL import Image

    from crossmedia import zoo

    model = zoo.load("pose-attr")
    dm = _dm(tiny_puppets)
    batch = next(iter(dm.test_dataloader()))
    source, target, kp, masks = batch["source"][:8], batch["target"][:8], batch["target_keypoints"][:8], \
        batch["target_mask"][:8]
    request, _ = model.requested_hues(target, masks)
    with torch.no_grad():
        plain = model.render(source, kp).clamp(-1, 1)
        edited = model.render(source, kp, colours=recolour(model.colours(source), request)).clamp(-1, 1)
    before, after = HueError(), HueError()
    before.update(plain, masks, request)
    after.update(edited, masks, request)
    assert after.compute() < 0.5 * before.compute()
    image = Image.open(dm.clips["test"][0].frames[0])
    first_mask = dm.datasets["test"].masks[0, 0][None]
    blue = colour_hue("blue")
    video = model.generate(image, action="wave", frames=4, attributes={"top": "blue"})
    still = model.generate(image, action="wave", frames=4)
    assert video.shape == (4, 3, 64, 64) and 0 <= video.min() and video.max() <= 1
    err = [hue_distance(garment_hue(v[:1] * 2 - 1, first_mask, 1)[0], blue).item() for v in (video, still)]
    assert err[0] < err[1] or err[1] < 20  # toward the request (unless the top was already blue)
