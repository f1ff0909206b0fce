"""CaptionModule / SCSTModule / SCNSTModule: XE loss falls, SCST and SCNST raise the CIDEr-D reward,
caption() works on PIL images, mismatched inputs fail with messages that say what to change, and the
test loop's CaptionMetric scores what the steps decoded."""
import numpy as np
import pytest
import torch
from PIL import Image

from crossmedia.tasks.caption.cider import CiderD
from crossmedia.tasks.caption.module import CaptionModule
from crossmedia.tasks.caption.reward import CaptionReward
from crossmedia.tasks.caption.self_critical import SCNSTModule, SCSTModule

VOCAB = ["<eos>", "<unk>", "a", "red", "blue", "circle", "square", "big", "small", "shape"]
REFS = [["a red circle", "a red circle shape", "red circle"],
        ["a blue square", "a blue square shape", "blue square"],
        ["a big red square", "a big red square", "big red square"],
        ["a small blue circle", "a small blue circle", "small blue circle"]]


def _batch(with_captions=False):
    feats = torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(0))
    batch = {"feats": feats, "mask": torch.ones(4, 3, dtype=torch.bool), "index": torch.arange(4)}
    if with_captions:
        ids = {w: i for i, w in enumerate(VOCAB)}
        batch["captions"] = torch.tensor([[[ids[w] for w in r.split()] + [0] * (7 - len(r.split())) for r in refs]
                                          for refs in REFS])
    return batch


def _toy_model(cls=CaptionModule, **kwargs):
    torch.manual_seed(0)
    model = cls(vocab=VOCAB, feature_dim=8, dim=32, dropout=0.0, max_len=6, **kwargs)
    model._reward = CaptionReward(CiderD.from_references(REFS), REFS)
    model.log = lambda *args, **kw: None  # no Trainer here
    return model


def _greedy_reward(model, batch) -> float:
    model.eval()
    reward = model.rewards(model.generate(batch), batch["index"]).mean().item()
    model.train()
    return reward


def test_xe_loss_falls(one_thread, descend):
    model, batch = _toy_model(label_smoothing=0.1), _batch(with_captions=True)
    assert not model.in_rl()
    losses = descend(lambda step: model.training_step(batch, step), torch.optim.Adam(model.parameters(), lr=1e-2), 40)
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    assert [model.vocabulary.decode(s) for s in model.generate(batch).tolist()][0].startswith(("a red", "red"))


@pytest.mark.parametrize("cls", [SCSTModule, SCNSTModule])
def test_rl_raises_the_reward(cls, one_thread):
    model, batch = _toy_model(cls, rl_start_epoch=0, samples_per_image=4), _batch()
    assert model.in_rl()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = _greedy_reward(model, batch)
    for step in range(200):
        loss = model.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _greedy_reward(model, batch)
    assert after > before + 0.5 and after > 2 * before


def test_scst_mean_baseline_needs_several_samples():
    with pytest.raises(ValueError, match="samples_per_image >= 2"):
        SCSTModule(vocab=VOCAB, feature_dim=8, baseline="mean", samples_per_image=1)


def test_caption_takes_pil_images_and_tensors(one_thread):
    torch.manual_seed(0)
    model = CaptionModule(vocab=VOCAB, backbone="resnet10t", stage=2, dim=32, image_size=32)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(2)]
    captions = model.caption(images, beam_size=2)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert all(word in VOCAB for c in captions for word in c.split())
    assert len(model.caption(images[0])) == 1
    tensor = torch.zeros(2, 3, 32, 32)
    assert model.caption(tensor, beam_size=1) == model.caption(tensor, beam_size=1)
    assert model.training  # caption() decodes in eval mode and gives the mode back
    with pytest.raises(TypeError, match="PIL images"):
        model.caption(["not an image"])


def test_features_and_images_mismatch_explains_the_fix():
    image_model = CaptionModule(vocab=VOCAB, backbone="resnet10t", dim=32)
    with pytest.raises(ValueError, match="feature_dim=D"):
        image_model.features(_batch())
    feature_model = _toy_model()
    with pytest.raises(ValueError, match="features=PATH"):
        feature_model.features({"images": torch.zeros(1, 3, 32, 32), "index": torch.zeros(1, dtype=torch.long)})


def test_init_from_safetensors_and_checkpoint(tmp_path):
    from crossmedia.core.checkpoint_io import save_weights

    source = _toy_model()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    save_weights(state, tmp_path / "xe.safetensors")
    torch.save({"state_dict": state, "hyper_parameters": {"vocab": VOCAB}}, tmp_path / "xe.ckpt")

    torch.manual_seed(1)  # a different random init, then replaced by the file's weights
    from_weights = CaptionModule(vocab=VOCAB, feature_dim=8, dim=32, dropout=0.0, max_len=6,
                                 init_from=str(tmp_path / "xe.safetensors"))
    from_ckpt = CaptionModule(feature_dim=8, dim=32, dropout=0.0, max_len=6, init_from=str(tmp_path / "xe.ckpt"))
    assert from_ckpt.decoder is None  # the vocabulary comes with the checkpoint
    for model in (from_weights, from_ckpt):
        model.configure_model()
        assert list(model.vocabulary.words) == VOCAB
        for key, value in state.items():
            assert torch.equal(model.state_dict()[key], value), key
    missing = CaptionModule(vocab=VOCAB, feature_dim=8, init_from=str(tmp_path / "nope.ckpt"))
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        missing.configure_model()


def test_init_from_is_only_applied_when_fitting(tmp_path, stub_trainer):
    """A trained RL entry keeps its own weights when evaluated: init_from names where fit starts."""
    from crossmedia.core.checkpoint_io import save_weights

    save_weights({k: v.clone() for k, v in _toy_model().state_dict().items()}, tmp_path / "xe.safetensors")
    torch.manual_seed(1)
    trained = CaptionModule(vocab=VOCAB, feature_dim=8, dim=32, dropout=0.0, max_len=6,
                            init_from=str(tmp_path / "xe.safetensors"))
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    trained._trainer = stub_trainer("test")
    trained.configure_model()
    assert all(torch.equal(trained.state_dict()[k], v) for k, v in before.items())
    trained._trainer.state.fn = "fit"
    trained.configure_model()
    assert not all(torch.equal(trained.state_dict()[k], v) for k, v in before.items())


def test_scheduled_sampling_schedule_and_xe_step_with_it(stub_trainer):
    model = _toy_model(ss_start=2, ss_every=3, ss_increase=0.1, ss_max=0.25, label_smoothing=0.1)
    expected = {0: 0.0, 1: 0.0, 2: 0.1, 4: 0.1, 5: 0.2, 7: 0.2, 8: 0.25, 30: 0.25}
    for epoch, prob in expected.items():
        model._trainer = stub_trainer("fit", current_epoch=epoch)
        assert model.scheduled_sampling_prob() == pytest.approx(prob), epoch
    torch.manual_seed(0)
    loss = model.xe_loss(_batch(with_captions=True))  # at ss = 0.25 some inputs are the model's own samples
    assert torch.isfinite(loss) and loss.item() > 0


def test_ddp_stage_switch_with_a_frozen_encoder_asks_for_unused_parameter_detection(stub_trainer):
    import types

    model = SCNSTModule(vocab=VOCAB, backbone="resnet10t", dim=32, rl_start_epoch=3)
    strategy = types.SimpleNamespace(_ddp_kwargs={})
    model._trainer = stub_trainer("fit", world_size=2, strategy=strategy)
    with pytest.raises(ValueError, match="ddp_find_unused_parameters_true"):
        model.setup("fit")
    strategy._ddp_kwargs["find_unused_parameters"] = True
    model.setup("fit")  # accepted
    rl_only = SCNSTModule(vocab=VOCAB, backbone="resnet10t", dim=32, rl_start_epoch=0)
    rl_only._trainer = model._trainer
    rl_only.configure_model()
    assert not any(p.requires_grad for p in rl_only.encoder.parameters())  # frozen before DDP wraps it
    assert all(p.requires_grad for p in rl_only.decoder.parameters())


class _SceneData:
    """A CaptionData stand-in: two test images with ground-truth objects and their references."""

    vocabulary = None

    def reward_references(self):
        return REFS

    def reward_scorer(self):
        return CiderD.from_references(REFS)

    def raw_references(self, split):
        return [["A red circle."], ["A blue square."]]

    def token_references(self, split):
        return [["a red circle"], ["a blue square"]]

    def scene_objects(self, split):
        return [[{"colour": "red", "shape": "circle"}], [{"colour": "blue", "shape": "square"}]]


def test_test_loop_logs_the_scene_checks(stub_trainer, monkeypatch):
    """What the test steps decoded is scored once per image: coco metrics, word precision, object errors and recall."""
    model = _toy_model()
    logged = {}
    model.log = lambda name, value, **kw: logged.__setitem__(name, value)
    model._trainer = stub_trainer("test", _SceneData())
    model.setup("test")
    ids = {w: i for i, w in enumerate(VOCAB)}
    decoded = iter([torch.tensor([[ids["a"], ids["red"], ids["circle"], ids["a"], ids["red"], ids["circle"], 0]]),
                    torch.tensor([[ids["a"], ids["blue"], ids["square"], 0, 0, 0, 0]])])
    monkeypatch.setattr(model, "generate", lambda batch, beam_size: next(decoded))
    model.test_step({"index": torch.tensor([0])}, 0)
    model.test_step({"index": torch.tensor([1])}, 1)
    model.on_test_epoch_end()
    # image 0: "a red circle a red circle" names its one red circle twice: 1 error; image 1 is right
    assert logged["test/object_errors"] == pytest.approx(1 / 2)
    assert logged["test/object_error_rate"] == pytest.approx(1 / 2)
    assert logged["test/object_recall"] == pytest.approx(1.0)
    assert logged["test/colour_precision"] == 1.0 and logged["test/shape_precision"] == 1.0
    assert {"test/BLEU-4", "test/METEOR", "test/ROUGE-L", "test/CIDEr"} <= set(logged)


def test_evaluating_without_caption_data_says_what_is_needed(stub_trainer):
    model = _toy_model()
    model._trainer = stub_trainer("validate")  # dataloaders only: no references to score against
    model.setup("validate")
    with pytest.raises(RuntimeError, match="CaptionData"):
        model.validation_step(_batch(), 0)


def test_fine_tuning_on_data_with_other_words_rebuilds_the_word_rows_and_keeps_the_rest(tmp_path, stub_trainer, caplog):
    """Issue 18: fine-tuning a captioner on a user's data no longer stops at 'the vocabulary differs'."""
    import logging
    import types

    from crossmedia.core.checkpoint_io import save_weights
    from crossmedia.data.karpathy import Vocabulary

    source = _toy_model()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    save_weights(state, tmp_path / "xe.safetensors")
    theirs = ["<eos>", "<unk>", "a", "green", "red", "triangle", "circle"]  # 'a', 'red', 'circle' shared
    unused = lambda *args: None  # noqa: E731 - the CaptionData methods this test does not reach
    data = types.SimpleNamespace(vocabulary=Vocabulary(theirs), reward_references=unused, reward_scorer=unused,
                                 raw_references=unused, token_references=unused, scene_objects=unused)
    model = CaptionModule(vocab=VOCAB, feature_dim=8, dim=32, dropout=0.0, max_len=6,
                          init_from=str(tmp_path / "xe.safetensors"))
    model._trainer = stub_trainer("test", datamodule=data)
    with pytest.raises(ValueError, match="fine-tune it on this data first"):
        model.configure_model()  # evaluation never rebuilds a trained decoder
    model._trainer.state.fn = "fit"
    with caplog.at_level(logging.INFO):
        model.configure_model()
    assert "5 shared words keep their rows" in caplog.text  # <eos>, <unk>, a, red, circle
    assert list(model.vocabulary.words) == theirs and model.hparams.vocab == theirs
    new = model.state_dict()
    rows = [key for key, value in state.items() if value.dim() and value.shape[0] == len(VOCAB)]
    assert rows, "the toy decoder has word rows"
    for key, value in state.items():
        if key in rows:
            assert new[key].shape[0] == len(theirs)
            for word in ("<eos>", "a", "red", "circle"):
                assert torch.equal(new[key][theirs.index(word)], value[VOCAB.index(word)]), (key, word)
        else:
            assert torch.equal(new[key], value), key
