"""Text-to-image modules on tiny data: losses move the right way, generate() gives PIL images, GAN steps
update both sides under manual optimisation."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from crossmedia.data.karpathy import Vocabulary
from crossmedia.tasks.t2i.module import ConditionalGAN, GANINTCLS, JointEncoder, encode_word_lists

WORDS = ["a", "red", "blue", "green", "circle", "square", "star", "on", "the", "left", "right"]
VOCAB = [Vocabulary.EOS, Vocabulary.UNK, *WORDS]


def _gan(cls=GANINTCLS, **kwargs):
    torch.manual_seed(0)
    args = dict(text_encoder="random", vocabulary=VOCAB, text_dim=32, word_dim=16, hidden=16, cond_dim=16,
                noise_dim=8, g_base=8, d_base=8, image_size=16, evaluator=None, scorer=None)
    return cls(**{**args, **kwargs})


def _batch(n=8, size=16, seed=0):
    """n images whose colour is named by their caption: red, blue or green squares on white."""
    g = torch.Generator().manual_seed(seed)
    colours = {"red": (1, -1, -1), "blue": (-1, -1, 1), "green": (-1, 1, -1)}
    names = [list(colours)[i % 3] for i in range(n)]
    images = torch.ones(n, 3, size, size)
    for i, name in enumerate(names):
        images[i, :, 4:12, 4:12] = torch.tensor(colours[name], dtype=torch.float)[:, None, None]
    images += 0.05 * torch.randn(images.shape, generator=g)
    words = [["a", name, "square"] for name in names]
    return {"images": images.clamp(-1, 1), "words": words, "texts": [" ".join(w) for w in words],
            "index": torch.arange(n), "caption": torch.zeros(n, dtype=torch.long)}


def test_word_lists_encode_to_padded_ids_and_lengths():
    ids, lengths = encode_word_lists(Vocabulary(VOCAB), [["a", "red", "circle"], ["blue", "zebra"]], max_len=24)
    assert ids.tolist() == [[2, 3, 6], [4, 1, 0]] and lengths.tolist() == [3, 2]  # unknown -> <unk> = 1, pad 0


def test_generate_returns_pil_images_n_per_text_deterministic_with_seed():
    gan = _gan().eval()
    images = gan.generate(["a red square", "a blue circle"], n=3, seed=1)
    assert len(images) == 6 and all(isinstance(im, Image.Image) and im.size == (16, 16) for im in images)
    again = gan.generate(["a red square", "a blue circle"], n=3, seed=1)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(images, again))
    with pytest.raises(TypeError, match="non-empty list of non-empty strings"):
        gan.generate([""])


def _d_loss(gan, batch):
    from crossmedia.nn.gan_losses import matching_aware_d_loss

    phi = gan.text_embedding(batch["words"], batch["texts"])
    with torch.no_grad():
        fake, _ = gan._generate(phi, torch.randn(len(phi), gan.hparams.noise_dim))
    d = gan.discriminator
    return matching_aware_d_loss(d(batch["images"], phi), d(batch["images"], phi.roll(1, 0)), d(fake, phi))


def test_matching_aware_discriminator_learns_to_reject_wrong_texts(descend, one_thread):
    gan, batch = _gan(), _batch()
    opt = torch.optim.Adam(gan.discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    losses = descend(lambda step: _d_loss(gan, batch), opt, 60)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    phi = gan.text_embedding(batch["words"], batch["texts"])
    with torch.no_grad():
        right = gan.discriminator(batch["images"], phi)
        wrong = gan.discriminator(batch["images"], phi.roll(1, 0))  # every rolled caption names another colour
    assert (right > wrong).float().mean() >= 0.75


def test_generator_loss_falls_against_a_fixed_discriminator(descend, one_thread):
    from crossmedia.nn.gan_losses import bce_g_loss

    gan, batch = _gan(), _batch()
    phi = gan.text_embedding(batch["words"], batch["texts"])
    gan.discriminator.requires_grad_(False)
    noise = torch.randn(len(phi), gan.hparams.noise_dim)
    params = list(gan.generator.parameters()) + list(gan.condition.parameters())
    opt = torch.optim.Adam(params, lr=2e-3, betas=(0.5, 0.999))
    losses = descend(lambda step: bce_g_loss(gan.discriminator(gan._generate(phi, noise)[0], phi)), opt, 30)
    assert losses[-1] < losses[0]


def test_ca_adds_the_kl_term_and_the_plain_compression_does_not():
    batch = _batch()
    with_ca, without = _gan(ca=True), _gan(ca=False)
    phi = with_ca.text_embedding(batch["words"], batch["texts"])
    assert with_ca._condition(phi)[1].item() > 0
    assert without._condition(phi)[1].item() == 0


def test_baseline_defaults_differ_only_in_the_paper_switches():
    cls, plain = _gan(GANINTCLS).hparams, _gan(ConditionalGAN).hparams
    assert (cls.matching_aware, cls.interpolate, cls.ca) == (True, 0.5, True)
    assert (plain.matching_aware, plain.interpolate, plain.ca) == (False, 0.0, True)


def test_a_training_step_updates_generator_and_discriminator(tmp_path):
    import pytorch_lightning as pl

    class OneBatch(pl.LightningDataModule):
        def train_dataloader(self):
            return torch.utils.data.DataLoader([_batch()] * 2, batch_size=None)

    gan = _gan()
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(gan, datamodule=OneBatch())
    after = gan.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"generator", "discriminator", "condition"} <= changed
    assert "text_encoder" not in changed  # frozen: φ(t) is the pre-trained encoder's


def test_joint_encoder_contrastive_loss_falls(descend, one_thread):
    torch.manual_seed(0)
    model = JointEncoder(vocabulary=VOCAB, embed_dim=16, word_dim=8, hidden=16, image_base=8)
    batch = _batch(9)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = descend(lambda step: model.training_step(batch, step), opt, 40)
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        sims = model.embed_images(batch["images"]) @ model.embed_words(batch["words"]).T
    assert (sims.argmax(1) % 3 == torch.arange(9) % 3).all()  # each image is closest to a caption of its colour


def test_minilm_conditions_a_gan_by_name_and_stays_out_of_its_weights(one_thread):
    gan = GANINTCLS(text_encoder="minilm", cond_dim=16, noise_dim=8, g_base=8, d_base=8, image_size=16,
                    evaluator=None, scorer=None).eval()
    phi = gan.text_embedding([], ["a red circle on the left", "a red disc at the left", "three green stars"])
    assert phi.shape == (3, 384) and torch.allclose(phi.norm(dim=1), torch.ones(3), atol=1e-4)
    assert (phi[0] @ phi[1]) > (phi[0] @ phi[2])  # a paraphrase is closer than another scene
    assert len(gan.generate(["a red circle"], n=2, seed=0)) == 2
    assert not any("minilm" in key or "bert" in key for key in gan.state_dict())
