"""Video summarisation data: eccv16 h5 files + a split file, all splits served at once.

The standard protocol trains one model per split (5 random 80/20 splits) and averages the
test F-score over the splits. :class:`SummarizationDataModule` serves every video once per epoch
with two boolean masks, ``train_in`` (S,) and ``test_in`` (S,): the video's membership of each
split's training and test set. A module holding one network per split trains network ``s``
only on videos with ``train_in[s]`` and evaluates it only on videos with ``test_in[s]``, so the
whole 5-split protocol is one run, one checkpoint and one zoo entry.
"""
from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from crossmedia.core.paths import data_root
from crossmedia.core.task import TaskDataModule
from crossmedia.data.eccv16 import Eccv16Dataset, parse_key
from crossmedia.data.folder import read_meta
from crossmedia.data.registry import ensure
from crossmedia.data.splits import make_splits, read_splits

__all__ = ["SummarizationDataModule"]


def _own_splits_file(folder: Path) -> Path | None:
    """The one ``*splits*.json|yml|yaml`` beside a folder's h5 files, if there is exactly one."""
    found = sorted(p for p in folder.glob("*splits*") if p.suffix in (".json", ".yml", ".yaml"))
    if len(found) > 1:
        raise ValueError(f"{folder} holds several split files ({', '.join(p.name for p in found)}): pass "
                         f"splits_file= the one to use")
    return found[0] if found else None


class _MaskedVideos(Dataset):
    """The videos of ``keys`` with their per-split train/test membership masks."""

    def __init__(self, videos: Eccv16Dataset, keys: list[str], train_in: torch.Tensor, test_in: torch.Tensor):
        self.videos, self.keys = videos, keys
        self.index = {key: i for i, key in enumerate(videos.keys)}
        self.train_in, self.test_in = train_in, test_in  # (V, S) bool each, rows in ``keys`` order

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        item = self.videos[self.index[self.keys[i]]]
        item["train_in"], item["test_in"] = self.train_in[i], self.test_in[i]
        return item


def _single(batch: list[dict]) -> dict:
    """Videos differ in length: one video per batch, kept as a dict (features get a batch axis)."""
    if len(batch) != 1:
        raise ValueError("summarisation batches hold one video; use batch_size=1")
    item = dict(batch[0])
    item["features"] = item["features"][None]  # (1, T, D)
    item["gtscore"] = item["gtscore"][None]  # (1, T)
    return item


class SummarizationDataModule(TaskDataModule):
    """Videos of one eccv16 dataset (built-in or prepared) and its split file.

    ``dataset`` is a registered name (``tvsum-builtin``, ``summe-builtin``, ``summe``, ``tvsum``…)
    prepared under ``root`` (default ``data/<dataset>``); ``splits_file`` defaults to the split file
    in that folder. ``reduction`` is the protocol's: ``max`` over users for SumMe, ``avg`` for TVSum
    (derived from the name unless given). ``extra_datasets`` are other prepared datasets whose
    videos the split file may name for training: the augmented and transfer settings
    (``crossmedia.data.splits.make_splits``).

    A batch is one video (``batch_size=1``; videos differ in length), a dict:

    ===================  ==================  ==================================================
    ``features``         (1, T, D) float32   GoogLeNet pool5 (or built-in) features, 2 fps steps
    ``gtscore``          (1, T) float32      annotators' mean importance per step, in [0, 1]
    ``gtsummary``        (T,) float32        the file's 0/1 reference summary per step
    ``change_points``    (n_seg, 2) int64    shots as inclusive frame ranges
    ``n_frame_per_seg``  (n_seg,) int64      frames per shot
    ``picks``            (T,) int64          frame index of each step
    ``n_frames``         int                 frames of the video
    ``n_steps``          int                 T
    ``user_summary``     (U, n_frames)       each user's 0/1 keyframes (absent for OVP/YouTube)
    ``train_in``         (S,) bool           the video is in split s's training set
    ``test_in``          (S,) bool           the video is in split s's test set
    ``key``              str                 ``<h5 stem>/<video group>``
    ===================  ==================  ==================================================

    Interface the summarisation modules read (besides the batches): ``reduction`` ("max" or
    "avg"), the F-score reduction of this dataset, set at construction.
    """

    def __init__(self, *, dataset: str = "tvsum-builtin", root: str | None = None, splits_file: str | None = None,
                 num_splits: int = 5, reduction: str | None = None, extra_datasets: list[str] | None = None,
                 num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()
        if reduction is None:
            reduction = "max" if "summe" in dataset else "avg" if "tvsum" in dataset else None
        if reduction not in ("max", "avg"):
            raise ValueError(f"cannot tell the F-score reduction for dataset {dataset!r}: pass reduction='max' "
                             "(SumMe-style keyshot annotations) or 'avg' (TVSum-style ratings)")
        self.reduction = reduction
        self.num_splits = num_splits

    def _folder(self, dataset: str | None = None) -> Path:
        root = (Path(self.hparams.root) if self.hparams.root and dataset is None
                else data_root() / (dataset or self.hparams.dataset))
        return ensure(dataset or self.hparams.dataset, root)  # generates a built-in; explains how to prepare a real one

    def prepare_data(self) -> None:
        for dataset in [None, *(self.hparams.extra_datasets or [])]:
            self._folder(dataset)

    def setup(self, stage: str | None = None) -> None:
        folder = self._folder()
        meta = read_meta(folder) or {}
        extra = [f for d in self.hparams.extra_datasets or [] for f in sorted(self._folder(d).glob("*.h5"))]
        own_files = sorted(folder.glob("*.h5"))
        h5_files = own_files + extra
        if not h5_files:
            raise FileNotFoundError(f"no .h5 file in {folder}: prepare it with `crossmedia data prepare "
                                    f"{self.hparams.dataset}`")
        splits_path = Path(self.hparams.splits_file) if self.hparams.splits_file else (
            folder / meta["splits_file"] if meta.get("splits_file") else _own_splits_file(folder))
        if splits_path is not None and not splits_path.is_file():
            raise FileNotFoundError(f"no split file for {self.hparams.dataset!r} at {splits_path}; pass "
                                    "splits_file= a JSON/YAML list of {train_keys, test_keys}")
        # other datasets may lack user summaries (OVP, YouTube): they are only trained on
        videos = Eccv16Dataset(h5_files, require_user_summary=False)
        if splits_path is None:  # a user's folder of h5 files alone: the papers' protocol, drawn here
            splits_path = folder / "(5 random 80/20 splits, seed 0)"
            own = {f.stem for f in own_files}  # not the extra datasets' videos
            splits = make_splits([k for k in videos.keys if parse_key(k)[0] in own], num_splits=self.num_splits, seed=0)
            rank_zero_info(f"summarization: {folder} has no split file: using {self.num_splits} random 80/20 "
                           f"splits of its videos (seed 0), the protocol of the SumMe/TVSum papers; pass "
                           f"splits_file= to fix your own")
        else:
            splits = read_splits(splits_path, known_keys=videos.keys)[: self.num_splits]
        if len(splits) < self.num_splits:
            raise ValueError(f"{splits_path} has {len(splits)} splits, num_splits={self.num_splits}")
        canonical = {parse_key(k): k for k in videos.keys}
        single = len({stem for stem, _ in canonical}) == 1

        def full(key: str) -> str:
            stem, video = parse_key(key)
            return next(k for (s, v), k in canonical.items() if v == video and (s == stem or (stem is None and single)))

        train_sets = [{full(k) for k in s.train_keys} for s in splits]
        test_sets = [{full(k) for k in s.test_keys} for s in splits]
        keys = list(videos.keys)
        train_in = torch.tensor([[k in t for t in train_sets] for k in keys])  # (V, S)
        test_in = torch.tensor([[k in t for t in test_sets] for k in keys])  # (V, S)
        self.in_dim = int(videos.records[0].features.shape[1])
        for key, record, tested in zip(keys, videos.records, test_in.any(dim=1).tolist()):
            if tested and record.user_summary is None:
                raise ValueError(f"{splits_path}: test video {key!r} has no user_summary in its h5 file, so it "
                                 "cannot be scored; test only on SumMe/TVSum-style files")
        train_rows = train_in.any(dim=1).nonzero().flatten().tolist()
        test_rows = test_in.any(dim=1).nonzero().flatten().tolist()
        self.train_set = _MaskedVideos(videos, [keys[i] for i in train_rows], train_in[train_rows], test_in[train_rows])
        self.test_set = _MaskedVideos(videos, [keys[i] for i in test_rows], train_in[test_rows], test_in[test_rows])

    def _loader(self, data: Dataset, *, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(torch.initial_seed() % 2**63) if shuffle else None
        return DataLoader(data, batch_size=1, shuffle=shuffle, generator=generator, collate_fn=_single,
                          num_workers=self.hparams.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
