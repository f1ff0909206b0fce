"""ST-XlanV's pre-training corruptions (Huang et al., "Semantic Tag Augmented XlanV Model for Video
Captioning", ACM MM 2021): pure functions that build the inputs and targets of two of its three
pre-training tasks (the third, VCAP, is plain captioning).

* **TAP**, tag alignment prediction (:func:`tap_replace`): with probability ``p`` a video's tags are
  replaced by another video's tags; a two-way head on the cross-modal ``[CLS]`` output predicts
  ``y_i = 1`` (replaced) or 0 (the video's own tags), trained with
  ``L_TAP = -1/B sum_i log p(y_i | video_i, tags'_i)``. The paper's code keeps two such heads (one
  for the action tag, one for the content tag); the issue asks for one over the tag pair.
* **MLM**, masked language modelling as in BERT (:func:`mlm_mask`): 15% of the caption tokens are
  selected; a selected token becomes ``[MASK]`` with probability 0.8, a random token with 0.1 and
  stays with 0.1; the model predicts the original tokens of the selected positions only,
  ``L_MLM = -1/|S| sum_{(i,t) in S} log p(w_it | masked caption_i, video_i)``.

Both take an optional ``torch.Generator`` and draw nothing else, so a seeded call is reproducible.
"""
from __future__ import annotations

import torch

__all__ = ["IGNORE_INDEX", "tap_replace", "mlm_mask"]

IGNORE_INDEX = -100
"""The target of tokens MLM did not select (``torch.nn.functional.cross_entropy``'s default ignore_index)."""


def tap_replace(tags: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each row's tags by another row's with probability ``p`` (TAP's negatives).

    ``tags`` (B, N) long: the N tag ids of each of the B videos of a batch. Each row is drawn for
    replacement with probability ``p``; a drawn row takes the tags of a row chosen uniformly among
    the rows whose tags differ from its own, so a replaced row never keeps (or gets back) its own
    tags. A drawn row with no such row in the batch (B = 1, or every row has the same tags) is left
    as it is and labelled 0.

    Returns ``(new_tags (B, N) long, labels (B,) long)``, ``labels[i] = 1`` exactly where row i was
    replaced. Raises ``ValueError`` for ``tags`` not 2-D or ``p`` outside [0, 1].
    """
    if tags.dim() != 2:
        raise ValueError(f"tap_replace: tags must be (B, N) tag ids, got shape {tuple(tags.shape)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"tap_replace: p must be in [0, 1], got {p}")
    batch = tags.shape[0]
    drawn = torch.rand(batch, generator=generator, device=tags.device if generator is None else generator.device)
    drawn = drawn.to(tags.device) < p                                            # (B,)
    differs = (tags[:, None, :] != tags[None, :, :]).any(-1)                     # (B, B): row j's tags differ from row i's
    possible = drawn & differs.any(1)
    # a uniform choice among the differing rows: the argmax of uniform noise over the allowed columns
    noise = torch.rand(batch, batch, generator=generator, device=drawn.device if generator is None else generator.device)
    noise = noise.to(tags.device).masked_fill(~differs, -1.0)
    donor = noise.argmax(1)                                                      # (B,)
    new_tags = torch.where(possible[:, None], tags[donor], tags)
    return new_tags, possible.long()


def mlm_mask(tokens: torch.Tensor, vocab_size: int, mask_id: int, pad_id: int = 0,
             generator: torch.Generator | None = None, select: float = 0.15, mask: float = 0.8, random: float = 0.1,
             *, random_from: int = 0, protected: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of caption tokens for masked language modelling.

    ``tokens`` (B, L) long. Each token that is not ``pad_id`` (nor ``protected``, an optional
    (B, L) bool of positions never chosen, e.g. ``[CLS]``/``[SEP]``) is selected with probability
    ``select``; of the selected tokens a fraction ``mask`` becomes ``mask_id``, a fraction
    ``random`` a token drawn uniformly from ``[random_from, vocab_size)``, and the rest
    (``1 - mask - random``) stays as it is.

    Returns ``(inputs (B, L), targets (B, L))``: ``targets`` holds the original token at the
    selected positions and :data:`IGNORE_INDEX` (-100) everywhere else. Raises ``ValueError`` for
    probabilities outside [0, 1] or ``mask + random > 1``.
    """
    for name, value in (("select", select), ("mask", mask), ("random", random)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"mlm_mask: {name} must be in [0, 1], got {value}")
    if mask + random > 1.0 + 1e-9:
        raise ValueError(f"mlm_mask: mask ({mask}) + random ({random}) must not exceed 1")
    if not 0 <= random_from < vocab_size:
        raise ValueError(f"mlm_mask: random_from ({random_from}) must lie in [0, vocab_size={vocab_size})")
    device = tokens.device if generator is None else generator.device
    eligible = tokens != pad_id
    if protected is not None:
        eligible &= ~protected
    chosen = (torch.rand(tokens.shape, generator=generator, device=device).to(tokens.device) < select) & eligible
    kind = torch.rand(tokens.shape, generator=generator, device=device).to(tokens.device)
    to_mask = chosen & (kind < mask)
    to_random = chosen & (kind >= mask) & (kind < mask + random)
    drawn = torch.randint(random_from, vocab_size, tokens.shape, generator=generator, device=device).to(tokens.device)
    inputs = torch.where(to_mask, torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(to_random, drawn, inputs)
    targets = torch.where(chosen, tokens, torch.full_like(tokens, IGNORE_INDEX))
    return inputs, targets
