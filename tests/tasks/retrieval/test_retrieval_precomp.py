"""Retrieval on VSE++'s precomputed image features (``{split}_ims.npy`` + ``{split}_caps.txt``):
the DataModule reads such a folder in place, a CNN model fitted on it swaps its CNN for VSE++'s
precomputed-feature encoder (one line), learns, exports what it learned into its hyperparameters,
and mismatched data is refused by name."""
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from crossmedia.tasks.retrieval.data import RetrievalDataModule
from crossmedia.tasks.retrieval.module import VSEPP

COLOURS, SHAPES = ["red", "green", "blue", "yellow"], ["circle", "square", "triangle"]
D_F = 12


def write_precomp(root, *, images=(24, 6, 6), seed=0, per_caption=False, dims=None):
    """A precomputed folder: image j of a split shows class c = (colour, shape); its features are
    the class's fixed random centre plus noise; its 5 captions name colour and shape in 5 wordings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(COLOURS) * len(SHAPES), 2 * D_F)).astype(np.float32)
    root.mkdir(parents=True, exist_ok=True)
    for split, count, dim in zip(("train", "dev", "test"), images, dims or (D_F,) * 3):
        classes = rng.integers(len(centres), size=count)
        feats = centres[classes, :dim] + 0.1 * rng.normal(size=(count, dim)).astype(np.float32)
        lines = []
        for c in classes:
            colour, shape = COLOURS[c // len(SHAPES)], SHAPES[c % len(SHAPES)]
            lines += [f"a {colour} {shape}.", f"one {colour} {shape}", f"the {shape} is {colour}",
                      f"a {shape} coloured {colour}", f"{colour} {shape} on its own"]
        np.save(root / f"{split}_ims.npy", np.repeat(feats, 5, axis=0) if per_caption else feats)
        (root / f"{split}_caps.txt").write_text("\n".join(lines) + "\n")
    return root


def test_the_datamodule_reads_a_precomputed_folder_in_place(tmp_path):
    root = write_precomp(tmp_path / "mine", per_caption=True)  # one row per caption: every fifth is the image
    before = sorted((p.name, p.stat().st_mtime_ns) for p in root.iterdir())
    dm = RetrievalDataModule(root=str(root), batch_size=8, min_count=1)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.precomputed and dm.feature_dim == D_F
    assert {len(dm.datasets[s]) for s in ("val", "test")} == {6} and len(dm.datasets["train"]) == 24
    assert {"red", "circle", "coloured", "<unk>"} <= set(dm.vocabulary.words)
    train = next(iter(dm.train_dataloader()))
    assert train["feats"].shape == (8, D_F) and train["captions"].shape[0] == 8 and train["lengths"].shape == (8,)
    test = next(iter(dm.test_dataloader()))
    assert test["feats"].shape == (6, D_F) and test["captions"].shape[:2] == (6, 5) and test["lengths"].shape == (6, 5)
    rows = np.load(root / "test_ims.npy")
    assert torch.equal(test["feats"][2], torch.from_numpy(rows[10]))  # image 2 = row 5 x 2
    assert sorted((p.name, p.stat().st_mtime_ns) for p in root.iterdir()) == before  # nothing written


def test_bad_precomputed_folders_are_refused_naming_the_file(tmp_path):
    root = write_precomp(tmp_path / "dims", dims=(D_F, D_F, D_F + 1))
    with pytest.raises(ValueError, match=r"differ in width .*'test': 13"):
        RetrievalDataModule(root=str(root), min_count=1).setup("fit")
    root = write_precomp(tmp_path / "empty")
    lines = (root / "dev_caps.txt").read_text().splitlines()
    (root / "dev_caps.txt").write_text("\n".join(["..."] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"dev_caps.txt: line 1 \('...'\) has no word"):
        RetrievalDataModule(root=str(root), min_count=1).setup("fit")
    root = write_precomp(tmp_path / "notest")
    (root / "test_ims.npy").unlink()
    with pytest.raises(ValueError, match=r"no test_ims.npy for split 'test'"):
        RetrievalDataModule(root=str(root), min_count=1, format="vse-precomp").setup("fit")


def _fit(model, dm, tmp_path, epochs):
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    return trainer


def test_a_cnn_model_fitted_on_features_swaps_its_encoder_and_learns(tmp_path, one_thread, caplog):
    pl.seed_everything(0)
    root = write_precomp(tmp_path / "mine", images=(96, 12, 12))
    dm = RetrievalDataModule(root=str(root), batch_size=16, min_count=1)
    model = VSEPP(backbone="test_resnet", pretrained=False, dim=32, word_dim=16, lr=2e-3)
    assert model.image_backbone is not None
    with caplog.at_level("INFO"):
        trainer = _fit(model, dm, tmp_path, 15)
    assert "gives precomputed image features (12-d): the image CNN (test_resnet) is replaced" in caplog.text
    assert model.image_backbone is None and model.hparams.image_features == D_F
    assert not any(name.startswith("image_backbone") for name in model.state_dict())
    [results] = trainer.test(model, dm, verbose=False)
    assert results["test/i2t_r5"] > 80 and results["test/t2i_r5"] > 80  # 12 classes, 12 test images: chance ~40
    # what export keeps (hparams + weights) rebuilds the same model without the data
    again = VSEPP(**{k: v for k, v in model.hparams.items() if k != "_instantiator"})
    again.load_state_dict(model.state_dict(), strict=True)
    feats = torch.from_numpy(np.load(root / "test_ims.npy"))
    assert torch.allclose(again.encode_image(feats), model.encode_image(feats))
    [(index, _score), *_] = model.search("a red circle", feats, k=3)
    assert 0 <= index < len(feats)
    with pytest.raises(TypeError, match=r"trained on precomputed image features: pass them as a \(N, 12\) tensor"):
        model.encode_image([object()])


def test_evaluation_refuses_other_input_and_fit_rebuilds_the_image_encoder(tmp_path, mini_scenes, stub_trainer,
                                                                           caplog):
    images = RetrievalDataModule(root=str(mini_scenes), image_size=32, min_count=1)
    images.setup("fit")
    wide = RetrievalDataModule(root=str(write_precomp(tmp_path / "w", dims=(D_F + 4,) * 3)), min_count=1)
    wide.setup("fit")
    vocab = list(images.vocabulary.words)
    model = VSEPP(vocab=vocab, image_features=D_F, backbone="test_resnet", pretrained=False, dim=32, word_dim=16)
    for data, gives in ((images, "gives images"), (wide, "gives image features of width 16")):
        model.trainer = stub_trainer("test", datamodule=data)
        with pytest.raises(ValueError, match=rf"trained on precomputed image features of width 12, but .* {gives}"):
            model.configure_model()
    cnn = VSEPP(vocab=vocab, backbone="test_resnet", pretrained=False, dim=32, word_dim=16)
    cnn.trainer = stub_trainer("validate", datamodule=wide)
    with pytest.raises(ValueError, match=r"trained on images \(CNN test_resnet\), but .* width 16"):
        cnn.configure_model()
    with caplog.at_level("INFO"):
        model.trainer = stub_trainer("fit", datamodule=wide)  # other words and a wider feature: both rebuilt
        model.configure_model()
        assert model.hparams.image_features == 16 and model.image_fc.in_features == 16
        assert model.vocabulary.words == wide.vocabulary.words
        model.trainer = stub_trainer("fit", datamodule=images)  # images: the CNN is built
        model.configure_model()
    assert model.image_backbone is not None and model.hparams.image_features is None
    assert model.embed_images(torch.zeros(2, 3, 32, 32)).shape == (2, 32)
    assert "a new linear layer 16 -> 32 replaces it" in caplog.text and "the text encoder is built anew" in caplog.text
    assert "replaced by the image CNN test_resnet" in caplog.text
