"""RetrievalSamples: one PNG per validation epoch with a row per query, the caption's own image
first on an easy case (embeddings that name their image), candidates merged over two processes,
nothing written off rank 0, a W&B table row per (query, rank), and a real fit writes the file."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from crossmedia.tasks.retrieval.callbacks import RetrievalSamples
from crossmedia.tasks.retrieval.module import VSE0, dot_similarity

N = 10  # validation images of the fake split
GREEN, RED = (0, 128, 0), (255, 0, 0)


# helpers

def _dataset(folder: Path) -> SimpleNamespace:
    """A RetrievalDataset look-alike: image i's 5 captions all start with word id i + 2."""
    records, encoded = [], []
    for i in range(N):
        path = folder / f"{i}.png"
        Image.new("RGB", (16, 16), (20 * i, 100, 200 - 10 * i)).save(path)
        records.append(SimpleNamespace(path=path, raw=[f"caption {i} of image {i}"] * 5))
        ids = torch.zeros(5, 4, dtype=torch.long)
        ids[:, 0] = i + 2
        encoded.append((ids, torch.ones(5, dtype=torch.long)))
    return _Split(records, encoded)


class _Split:
    def __init__(self, records: list, encoded: list):
        self.records, self.encoded = records, encoded

    def __len__(self) -> int:
        return len(self.records)


class _Module:
    """Embeddings that name their image: caption of image i -> e_i, image i -> e_i + small noise."""

    device = torch.device("cpu")
    similarity = staticmethod(dot_similarity)

    def embed_texts(self, ids, lengths):
        return torch.nn.functional.one_hot(ids[:, 0] - 2, N).float()  # (Q, N)

    def images(self, index):
        noise = 0.1 * torch.rand(len(index), N, generator=torch.Generator().manual_seed(int(index[0])))
        return {"images": torch.nn.functional.one_hot(index, N).float() + noise}  # (B, N)


class _Logger:
    def __init__(self):
        self.tables = []

    def log_table(self, *, key, columns, data, step):
        self.tables.append((key, columns, data, step))


def _trainer(tmp_path, dataset, *, rank=0, world_size=1, gather=None, epoch=0, loggers=()):
    strategy = SimpleNamespace(all_gather=gather)
    return SimpleNamespace(sanity_checking=False, is_global_zero=rank == 0, global_rank=rank, world_size=world_size,
                           val_dataloaders=SimpleNamespace(dataset=dataset), default_root_dir=str(tmp_path),
                           current_epoch=epoch, global_step=7, loggers=list(loggers), strategy=strategy)


def _epoch(callback, trainer, module, batches):
    callback.on_validation_epoch_start(trainer, module)
    for b, index in enumerate(batches):
        index = torch.tensor(index)
        callback.on_validation_batch_end(trainer, module, module.images(index), {"index": index}, b)
    callback.on_validation_epoch_end(trainer, module)


def _frames(path: Path, callback: RetrievalSamples, columns: int = 5, text_width: int = 220) -> list[list[tuple]]:
    """The frame colours of the grid's cells, one list per row, read from the PNG's pixels."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    step = callback.size + 2 * 3 + 6  # image, two borders, pad
    left = pixels[:, text_width + 1]  # (H, 3) down the first cell's frame
    framed = [tuple(p) in (GREEN, RED) for p in left]
    starts = [y for y in range(len(framed)) if framed[y] and (y == 0 or not framed[y - 1])]  # a row's top
    return [[tuple(pixels[y + 1, text_width + col * step + 1]) for col in range(columns)] for y in starts]


# tests

def test_a_png_per_epoch_with_a_row_per_query_and_the_true_image_first(tmp_path):
    dataset, module, logger = _dataset(tmp_path), _Module(), _Logger()
    callback = RetrievalSamples(num_queries=4, size=24)
    for epoch in range(2):
        trainer = _trainer(tmp_path / "run", dataset, epoch=epoch, loggers=[logger])
        _epoch(callback, trainer, module, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    written = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert written == ["samples_retrieval_epoch000.png", "samples_retrieval_epoch001.png"]
    rows = _frames(tmp_path / "run" / "samples" / written[-1], callback)
    assert len(rows) == 4  # one row per query
    assert all(colours == [GREEN] + [RED] * 4 for colours in rows)  # the caption's image first, 4 others after

    key, columns, data, step = logger.tables[-1]
    assert key == "samples/retrieval_table" and step == 7
    assert columns == ["query", "rank", "image", "score", "true"] and len(data) == 4 * 5
    assert [row[:2] for row in data[:5]] == [["caption 0 of image 0", rank] for rank in range(1, 6)]
    assert [row[4] for row in data] == [True, False, False, False, False] * 4
    assert all(a[3] >= b[3] for a, b in zip(data, data[1:]) if a[0] == b[0])  # scores fall along a query's ranks


def test_two_processes_merge_their_candidates_and_only_rank_0_writes(tmp_path):
    """Rank 1 sees images 1, 3, 5, 7, 9 and 0 (a DistributedSampler's padding repeats image 0)."""
    dataset, module = _dataset(tmp_path), _Module()
    sent = []

    def gather_from_rank_1(x):
        sent.append(x.clone())
        return torch.stack([x, x])

    rank1 = RetrievalSamples(num_queries=3, size=24)
    _epoch(rank1, _trainer(tmp_path / "run", dataset, rank=1, world_size=2, gather=gather_from_rank_1), module,
           [[1, 3, 5], [7, 9, 0]])
    assert not (tmp_path / "run").exists() and len(sent) == 2  # took part in the gather, wrote nothing

    received = iter(sent)
    rank0 = RetrievalSamples(num_queries=3, size=24)
    _epoch(rank0, _trainer(tmp_path / "run", dataset, rank=0, world_size=2,
                           gather=lambda x: torch.stack([x, next(received)])), module, [[0, 2, 4], [6, 8, 0]])
    [png] = (tmp_path / "run" / "samples").iterdir()
    rows = _frames(png, rank0)
    assert rows == [[GREEN] + [RED] * 4] * 3  # image 1 (rank 1's) first for query 1, no image shown twice


def test_sanity_check_and_other_data_write_nothing(tmp_path):
    dataset, module = _dataset(tmp_path), _Module()
    callback = RetrievalSamples()
    trainer = _trainer(tmp_path / "run", dataset)
    trainer.sanity_checking = True
    _epoch(callback, trainer, module, [[0, 1]])
    trainer = _trainer(tmp_path / "run", SimpleNamespace())  # not a retrieval split: no queries
    _epoch(callback, trainer, module, [[0, 1]])
    assert not (tmp_path / "run").exists()


def test_a_fit_writes_the_samples_of_its_validation_epoch(mini_scenes, tmp_path, one_thread):
    from crossmedia.tasks.retrieval.data import RetrievalDataModule

    pl.seed_everything(0)
    dm = RetrievalDataModule(root=str(mini_scenes), image_size=32, batch_size=20, min_count=1)
    model = VSE0(backbone="test_resnet", pretrained=False, dim=32, word_dim=16, image_size=32)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, dm)
    [callback] = [c for c in trainer.callbacks if isinstance(c, RetrievalSamples)]  # attached by the module
    png = tmp_path / "samples" / "samples_retrieval_epoch000.png"
    rows = _frames(png, callback, columns=4)  # 4 val images: 4 queries, each with all 4 images ranked
    assert len(rows) == 4 and all(sorted(colours) == sorted([GREEN] + [RED] * 3) for colours in rows)
    assert Image.open(png).width == 220 + 4 * (96 + 12) + 6  # no fifth column
