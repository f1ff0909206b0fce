"""gather_by_index keeps one row per dataset position, in position order, across processes."""
from types import SimpleNamespace

import torch

from crossmedia.metrics.gather import gather_by_index


class _Module:
    """A stand-in LightningModule: ``_trainer`` and ``all_gather`` of W simulated processes."""

    def __init__(self, per_process: list[dict[str, torch.Tensor]] | None = None):
        self.per_process = per_process
        self._trainer = None if per_process is None else SimpleNamespace(world_size=len(per_process))

    def all_gather(self, tensor):  # what Lightning returns: (W, B, ...) stacked over ranks
        key = "values" if tensor.is_floating_point() else "index"
        return torch.stack([p[key] for p in self.per_process])


def test_single_process_sorts_by_position_and_keeps_first_duplicate():
    values = torch.tensor([[3.0], [1.0], [2.0], [9.0]])
    rows, positions = gather_by_index(_Module(), values, torch.tensor([7, 2, 5, 2]))
    assert positions == [2, 5, 7]
    assert rows.squeeze(1).tolist() == [1.0, 2.0, 3.0]


def test_two_processes_with_sampler_padding():
    # 5 items over 2 ranks: DistributedSampler gives rank 0 positions 0, 2, 4 and rank 1 positions
    # 1, 3 and a padding repeat of 0
    rank0 = {"values": torch.tensor([[0.0], [20.0], [40.0]]), "index": torch.tensor([0, 2, 4])}
    rank1 = {"values": torch.tensor([[10.0], [30.0], [-1.0]]), "index": torch.tensor([1, 3, 0])}
    module = _Module([rank0, rank1])
    rows, positions = gather_by_index(module, rank0["values"], rank0["index"])
    assert positions == [0, 1, 2, 3, 4]
    assert rows.squeeze(1).tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]  # the repeat (-1) is dropped
