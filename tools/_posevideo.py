"""What the posevideo diagnostic scripts share: a zoo entry with its card's test data."""
from __future__ import annotations

from collections.abc import Iterator

from crossmedia import zoo
from crossmedia.tasks.posevideo.data import PoseVideoDataModule


def entry_and_test_batches(name: str, batches: int | None = None, eval_clips: int | None = None):
    """The zoo entry ``name`` (eval mode, verified) and an iterator over its card's test batches (the first
    ``batches`` of them; ``eval_clips``: only that many test clips, for quick checks)."""
    model = zoo.load(name)
    args = zoo.card(name).config["data"]["init_args"]
    data = PoseVideoDataModule(**{**args, "eval_clips": eval_clips or args.get("eval_clips")})
    data.setup("test")

    def take() -> Iterator[dict]:
        for i, batch in enumerate(data.test_dataloader()):
            if batches is not None and i >= batches:
                return
            yield batch

    return model, take()
