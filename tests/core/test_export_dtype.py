"""Export in half precision: smaller file, weights cast back on load, card measured on them."""
import pytorch_lightning as pl
import pytest
import torch
import yaml
from safetensors import safe_open

from crossmedia import zoo
from crossmedia.core.cards import read_card
from crossmedia.core.evaluate import evaluate
from crossmedia.core.export import export_run


@pytest.mark.slow
def test_float16_export_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMEDIA_DATA", str(tmp_path / "data"))
    from crossmedia.tasks.hashing.data import HashingDataModule
    from crossmedia.tasks.hashing.module import CSQModule

    model_args = {"num_classes": 10, "bits": 16, "backbone": "test_resnet", "hidden": 32}
    data_args = {"dataset": "digits", "batch_size": 64}
    run = tmp_path / "run"
    pl.seed_everything(0)
    model = CSQModule(**model_args)
    trainer = pl.Trainer(max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=run)
    trainer.fit(model, datamodule=HashingDataModule(**data_args))
    trainer.save_checkpoint(run / "checkpoints" / "last.ckpt")
    config = {"seed_everything": 0, "trainer": {"max_steps": 2},
              "model": {"class_path": "crossmedia.tasks.hashing.module.CSQModule", "init_args": model_args},
              "data": {"class_path": "crossmedia.tasks.hashing.data.HashingDataModule", "init_args": data_args}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))

    sizes = {}
    for dtype in ("float32", "float16"):
        card_path = export_run(run, name=f"tiny-{dtype}", zoo_dir=tmp_path / "zoo",
                               checkpoints_dir=tmp_path / "ckpt", dtype=dtype, progress=False)
        card = read_card(card_path)
        weights = tmp_path / "ckpt" / card.weights["file"]
        sizes[dtype] = weights.stat().st_size
        with safe_open(str(weights), "pt") as handle:
            stored = handle.get_tensor("net.head.layers.0.weight")
        assert stored.dtype == getattr(torch, dtype) and card.weights["dtype"] == dtype
        loaded = zoo.load(card, weights=weights)
        assert loaded.net.head.layers[0].weight.dtype == torch.float32  # cast back on load
        assert torch.equal(loaded.net.head.layers[0].weight, stored.float())
        check = evaluate(card, weights=weights, progress=False)[0]
        assert check.measured == pytest.approx(card.metrics[0]["value"], abs=1e-6)
    assert sizes["float16"] < 0.6 * sizes["float32"]
    with pytest.raises(ValueError, match="floating torch dtype"):
        export_run(run, name="bad", zoo_dir=tmp_path / "zoo", checkpoints_dir=tmp_path / "ckpt", dtype="int8")
