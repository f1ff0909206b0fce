"""Captioning end to end through the real ``crossmedia`` command, on a 48-image slice of ``scenes``:
fit runs the XE epoch then an SCNST epoch, the vocabulary built from the data lands in the
checkpoint and in the exported card, and the zoo entry loads and captions a PIL image. The same
run on precomputed features (an ``.npz`` of grid features) trains without opening an image."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

pytestmark = pytest.mark.slow

CONFIG = """\
seed_everything: 0
model:
  class_path: crossmedia.tasks.caption.self_critical.SCNSTModule
  init_args: {{decoder: {decoder}, backbone: resnet10t, stage: 2, dim: 32, image_size: 32, rl_start_epoch: 1,
               rollout: mc, rollout_samples: 2, nstep: 3, test_beam: 2{extra}}}
data:
  class_path: crossmedia.tasks.caption.data.CaptionDataModule
  init_args: {{dataset: scenes, root: {root}, image_size: 32, batch_size: 20, eval_batch_size: 8, min_count: 2{data}}}
trainer: {{max_epochs: 2, enable_progress_bar: false, enable_model_summary: false, logger: false}}
"""


@pytest.fixture(scope="module")
def mini_scenes(tmp_path_factory) -> Path:
    from crossmedia.data.builtin.scenes import make_scenes

    return make_scenes(tmp_path_factory.mktemp("scenes") / "scenes", num_images=48, progress=False)


def _fit(tmp_path: Path, config: str, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(config)
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "crossmedia", "fit", "-c", str(path), "--run_name", name],
                          cwd=tmp_path, env=env, timeout=600, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return tmp_path / "runs" / name


def _export(run: Path, tmp_path: Path, name: str):
    from crossmedia import zoo
    from crossmedia.core.cards import read_card
    from crossmedia.core.export import export_run

    card = read_card(export_run(run, name=name, zoo_dir=tmp_path / "zoo", checkpoints_dir=tmp_path / "ckpt",
                                progress=False))
    return card, zoo.load(card, weights=tmp_path / "ckpt" / f"{name}.safetensors")


def test_fit_xe_then_scnst_export_and_caption(tmp_path, mini_scenes):
    from crossmedia.data.karpathy import Vocabulary, read_caption_folder

    run = _fit(tmp_path, CONFIG.format(decoder="updown", root=mini_scenes, extra="", data=""), "cap")
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 1  # epoch 0 was cross-entropy, epoch 1 SCNST (rl_start_epoch: 1)
    train = [c for r in read_caption_folder(mini_scenes) if r.split == "train" for c in r.captions]
    expected = list(Vocabulary.build(train, min_count=2).words)
    assert checkpoint["hyper_parameters"]["vocab"] == expected
    # samples for people: a picture and a text file per validation epoch
    assert (run / "samples" / "samples_captions_epoch001.png").is_file()
    lines = (run / "samples" / "captions_epoch001.txt").read_text().splitlines()
    assert len(lines) == 4 and all("model: " in line and "reference: " in line for line in lines)
    card, model = _export(run, tmp_path, "cap-mini")
    assert card.init_args()["vocab"] == expected
    assert [m["key"] for m in card.metrics] == ["test/BLEU-4", "test/METEOR", "test/ROUGE-L", "test/CIDEr",
                                                "test/colour_precision", "test/shape_precision",
                                                "test/object_errors", "test/object_recall"]
    assert not any("optional" in m for m in card.metrics)  # measured here, so required from now on
    assert all(0.0 <= m["value"] for m in card.metrics)
    image = Image.open(mini_scenes / "images" / "00047.png")
    [caption] = model.caption(image, beam_size=2)
    assert all(word in expected for word in caption.split())


def test_fit_on_precomputed_grid_features(tmp_path, mini_scenes):
    from crossmedia.data.karpathy import read_caption_folder

    records = read_caption_folder(mini_scenes)
    rng = np.random.default_rng(0)
    ids = np.array([r.image_id for r in records])
    np.savez(tmp_path / "grid.npz", features=rng.standard_normal((len(ids), 2, 2, 16)).astype(np.float32), image_ids=ids)
    for record in records:  # prove the images are never opened
        record.path.rename(record.path.with_suffix(".gone"))
    try:
        run = _fit(tmp_path, CONFIG.format(decoder="xlan", root=mini_scenes, extra=", feature_dim: 16",
                                           data=f", features: {tmp_path / 'grid.npz'}"), "feat")
    finally:
        for record in records:
            record.path.with_suffix(".gone").rename(record.path)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["init_args"]["feature_dim"] == 16
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_ddp_two_cpu_processes_with_bf16_gather_every_validation_caption(tmp_path_factory, tmp_path):
    """2 gloo processes, bf16-mixed: each rank captions its share of the 5 validation images (the
    DistributedSampler pads one rank with a repeat); the logged CIDEr-D is over all 5, each once,
    and equals what one process computes from the saved weights."""
    import socket

    from crossmedia.data.builtin.scenes import make_scenes
    from crossmedia.tasks.caption.cider import corpus_cider
    from crossmedia.tasks.caption.data import CaptionDataModule
    from crossmedia.tasks.caption.self_critical import SCNSTModule

    scenes = make_scenes(tmp_path_factory.mktemp("scenes60") / "scenes", num_images=60, progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = CONFIG.format(decoder="updown", root=scenes, extra=", val_beam: 1", data="").replace(
        "logger: false", "logger: {class_path: pytorch_lightning.loggers.CSVLogger, init_args: {save_dir: csv}}")
    path = tmp_path / "ddp.yaml"
    path.write_text(config)
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    proc = subprocess.run([sys.executable, "-m", "crossmedia", "fit", "-c", str(path), "--run_name", "ddp",
                           "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp_find_unused_parameters_true",
                           "--trainer.precision=bf16-mixed"],
                          cwd=tmp_path, env=env, timeout=600, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stdout
    [metrics] = list((tmp_path / "csv").rglob("metrics.csv"))
    rows = [line.split(",") for line in metrics.read_text().splitlines()]
    column = rows[0].index("val/CIDEr")
    logged = [float(r[column]) for r in rows[1:] if len(r) > column and r[column]][-1]

    checkpoint = torch.load(tmp_path / "runs" / "ddp" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=True)
    hparams = dict(checkpoint["hyper_parameters"])
    model = SCNSTModule(**{k: v for k, v in hparams.items() if not k.startswith("_")})
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    data = CaptionDataModule(dataset="scenes", root=str(scenes), image_size=32, min_count=2, eval_batch_size=8)
    data.setup("validate")
    batch = next(iter(data.val_dataloader()))
    assert len(batch["index"]) == 5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        captions = [model.vocabulary.decode(s) for s in model.generate(batch).tolist()]
    refs = data.token_references("val")
    expected, _ = corpus_cider(captions, [refs[i] for i in batch["index"].tolist()])
    assert abs(logged - expected) < 1e-6, (logged, expected)
