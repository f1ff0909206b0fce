"""How often a training batch holds a false negative: the number the retrieval cards' notes quote (issue 14).

For batches of ``--batch`` training images with one random caption each (as the retrieval data module draws
them), the share of items whose caption also describes ANOTHER image of the batch word for word (it is among
that image's 5 captions), and the share whose caption is the very caption drawn for another item. For VSE++'s
hardest-negative loss such an item's hardest negative can be a true match.

Run: ``python -m crossmedia.tasks.retrieval.diagnostics [--batch 128] [--batches 200]`` (seconds; the built-in
scenes).
"""
from __future__ import annotations

import argparse

import numpy as np

from crossmedia.tasks.retrieval.data import RetrievalDataModule

__all__ = ["duplicate_shares"]


def duplicate_shares(captions: list[list[str]], batch: int = 128, batches: int = 200,
                     seed: int = 0) -> tuple[float, float]:
    """(share describing another image of the batch, share drawn twice) over ``batches`` random batches of
    ``batch`` images; ``captions[i]``: image i's captions (strings)."""
    rng = np.random.default_rng(seed)
    described = drawn_twice = total = 0
    for _ in range(batches):
        items = rng.choice(len(captions), batch, replace=False)
        drawn = [captions[i][rng.integers(len(captions[i]))] for i in items]
        owners: dict[str, set[int]] = {}
        for position, i in enumerate(items):
            for caption in captions[i]:
                owners.setdefault(caption, set()).add(position)
        for position, caption in enumerate(drawn):
            total += 1
            described += bool(owners[caption] - {position})
            drawn_twice += drawn.count(caption) > 1
    return described / total, drawn_twice / total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args(argv)
    data = RetrievalDataModule()
    data.prepare_data()
    data.setup("fit")
    captions = [[" ".join(words) for words in record.captions] for record in data.datasets["train"].records]
    described, twice = duplicate_shares(captions, args.batch, args.batches)
    print(f"{len(captions)} training images; batches of {args.batch}: {described:.1%} of the positive captions also "
          f"describe another image of the batch, {twice:.1%} are the caption drawn for another item")


if __name__ == "__main__":
    main()
