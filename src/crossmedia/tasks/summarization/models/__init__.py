"""Neural methods of video summarisation: SUM-GDA (Li et al. 2021) and Cycle-SUM (Yuan et al. 2019).

Every model takes frame features ``x`` (B, T, D) and an optional bool ``mask`` (B, T), True on
real frames and False on padding, and scores each frame's importance in [0, 1] (B, T).
"""
from .cycle_sum import (
    VAELSTM,
    CycleOutputs,
    CycleSUM,
    FrameSelector,
    LSTMDiscriminator,
    discriminator_losses,
    generator_losses,
)
from .sum_gda import (
    SumGDA,
    diverse_attention,
    log_diversity,
    sum_gda_supervised_loss,
    sum_gda_unsupervised_loss,
)

__all__ = [
    "SumGDA", "log_diversity", "diverse_attention", "sum_gda_supervised_loss",
    "sum_gda_unsupervised_loss",
    "FrameSelector", "VAELSTM", "LSTMDiscriminator", "CycleSUM", "CycleOutputs",
    "generator_losses", "discriminator_losses",
]
