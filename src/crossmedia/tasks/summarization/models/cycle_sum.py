"""Cycle-SUM: cycle-consistent adversarial LSTM networks for unsupervised video summarisation.

Yuan, Tay, Li, Zhou and Feng, "Cycle-SUM: Cycle-consistent Adversarial LSTM Networks for
Unsupervised Video Summarization", AAAI 2019 (arXiv 1904.08265).

Notation of the paper → ours: the original video o = {o_t} is our ``x`` (B, T, D); the
selector's importance scores x_t ∈ [0, 1] are our ``scores`` (B, T); the summary is the
score-weighted video s = x ⊙ o, s_t = x_t · o_t (``summary``).

- Selector S: a bi-directional LSTM → sigmoid, one score per frame.
- Evaluator, two GANs whose generators are VAE-LSTMs (LSTM encoder → μ, log σ² → z →
  LSTM decoder → a feature sequence, as in SUM-GAN, Mahasseni et al. 2017) and whose
  discriminators are LSTMs whose last hidden state φ(·) feeds a real/fake logit:
    forward GAN:  G_f reconstructs the video from the summary, ô = G_f(s); D_f tells o from ô.
    backward GAN: G_b maps the video to a summary, ŝ = G_b(o); D_b tells s from ŝ.
  Cycle consistency, s → G_f(s) → G_b(G_f(s)) ≈ s and o → G_b(o) → G_f(G_b(o)) ≈ o, is the
  paper's information-preserving measure, which it relates to maximising the mutual
  information between o and s.

The terms (numbers are this module's; each names the paper's loss it implements), with
BCE(ℓ, y) the logistic loss of logit ℓ against label y and ‖·‖² the mean squared difference:

    L_adv^f  = BCE(D_f(G_f(s)), 1)                 forward GAN, generator side            (1)
    L_adv^b  = BCE(D_b(G_b(o)), 1)                 backward GAN, generator side           (2)
    L_rec    = ‖φ_f(G_f(s)) − φ_f(o)‖²             reconstruction in D_f's feature space  (3)
    L_cyc^f  = ‖φ_b(G_b(G_f(s))) − φ_b(s)‖²        forward cycle consistency              (4)
    L_cyc^b  = ‖φ_f(G_f(G_b(o))) − φ_f(o)‖²        backward cycle consistency             (5)
    L_KL     = KL(q(z|s) ‖ N(0, I)) + KL(q(z|o) ‖ N(0, I))   VAE prior of G_f and G_b     (6)
    L_spar   = | (1/T) Σ_t x_t − σ |               sparsity / summary length, σ = 0.15    (7)
    L_D^f    = BCE(D_f(o), 1) + BCE(D_f(ô), 0)     forward GAN, discriminator side        (8)
    L_D^b    = BCE(D_b(s), 1) + BCE(D_b(ŝ), 0)     backward GAN, discriminator side       (9)
    L_rep    = (1/T) Σ_t E_Y[ min_{j∈Y} δ_tj ]     per-frame reconstruction from the kept
                                                   frames (not in the paper, see below)   (10)
    L_div    = Σ_{i≠j} x_i x_j (1 − δ_ij) / Σ_{i≠j} x_i x_j   repelling (not in the paper) (11)

Selector + generators minimise λ_adv (1 + 2) + λ_rec (3) + λ_cyc (4 + 5) + λ_KL (6) + λ_spar (7)
+ λ_rep (10) + λ_div (11) (:func:`generator_losses`); the discriminators minimise (8) + (9)
(:func:`discriminator_losses`), with separate optimisers and alternating updates. λ_rep = λ_div
= 0 (the defaults) is the paper's objective.

Deviation: the per-frame evaluator terms (10) and (11). With the paper's objective alone the
selector collapses on the built-in data to nearly constant scores (std 0.02–0.03 around the
15 % budget, correlation with the annotators' gtscore 0.06–0.11) and scores below the random
baseline (F 0.30 vs 0.39 on tvsum-builtin, 0.40 vs 0.43 on summe-builtin, 5 splits): a whole
video reconstructed through one latent z rewards keeping its frequent content, while what
annotators keep is rare. (10) reconstructs every frame from the selected set instead: Y holds
frame j independently with probability x_j, δ_tj is the cosine distance between the input
features of frames t and j, and each frame t costs its distance to the nearest kept frame
(the hard-attention limit of reconstructing t by attention over Y), so an unkept rare event
costs its whole distance. (11) is SUM-GAN's repelling regulariser (Mahasseni et al. 2017) in
score-weighted form. Both are the terms of unsupervised SUM-GDA, computed by the same
function (:func:`~.sum_gda.selection_terms`). They reach the selector only; the GAN and cycle
terms stay as they are.

Choices and simplifications, stated once here:

- The GAN terms use the non-saturating logistic form (the generator maximises log D(fake)
  instead of minimising log(1 − D(fake))), the standard way the minimax of the paper is trained.
- Consistency and reconstruction are measured in the discriminators' last hidden layer φ — the
  "learnable information preserving metric" of the paper, the feature-matching loss SUM-GAN
  inherits from VAE/GAN (Larsen et al. 2016). (3) is SUM-GAN's reconstruction term kept for the
  forward generator (set its weight to 0 for the cycle and GAN terms alone).
- One latent z per video (the encoder's last hidden state): a bottleneck, so G_f must rely on the
  frames the selector keeps. The decoder receives z at every step and starts from a state
  computed from z. KL (6) is averaged over latent dimensions (the usual sum / latent size) so
  that its weight does not depend on the latent size.
- (7) is the SUM-GAN sparsity term the paper keeps, with σ set to the 15 % budget of the
  evaluation protocol (``budget``).
- The selector receives gradients from (1), (3), (4), (7), (10), (11) and the q(z|s) half of
  (6); (2) and (5) reach the generators only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from einops import repeat
from torch import Tensor, nn

from crossmedia.nn.masking import masked_mean

from ._sequence import check_mask, run_lstm
from .sum_gda import selection_terms

__all__ = ["FrameSelector", "VAELSTM", "LSTMDiscriminator", "CycleSUM", "CycleOutputs",
           "generator_losses", "discriminator_losses"]


# classes

class FrameSelector(nn.Module):
    """The selector S: bi-LSTM over the frame features → linear → sigmoid importance (B, T)."""

    def __init__(self, *, in_dim: int, hidden: int = 128, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = check_mask(x, mask)
        states, _ = run_lstm(self.lstm, x, mask)  # (B, T, 2·hidden)
        return self.head(states).squeeze(-1).sigmoid().masked_fill(~mask, 0.0)  # (B, T)


class VAELSTM(nn.Module):
    """A VAE-LSTM generator: a feature sequence → one latent z per video → a feature sequence.

    Encoder LSTM, last hidden state h → (μ, log σ²); z = μ + σ ⊙ ε (ε ~ N(0, I)) when sampling,
    z = μ otherwise; decoder LSTM fed z at every step from initial state tanh(W z) → linear →
    (B, T, D). Returns the sequence (0 on padding), μ and log σ².
    """

    def __init__(self, *, in_dim: int, hidden: int = 128, latent: int = 64):
        super().__init__()
        self.encoder = nn.LSTM(in_dim, hidden, batch_first=True)
        self.to_mu = nn.Linear(hidden, latent)
        self.to_logvar = nn.Linear(hidden, latent)
        self.to_state = nn.Linear(latent, hidden)
        self.decoder = nn.LSTM(latent, hidden, batch_first=True)
        self.to_features = nn.Linear(hidden, in_dim)

    def encode(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        _, h_n = run_lstm(self.encoder, x, mask)  # (1, B, hidden)
        h = h_n[-1]  # (B, hidden) state at each video's last real frame
        return self.to_mu(h), self.to_logvar(h).clamp(-10.0, 10.0)  # 2 × (B, latent)

    def decode(self, z: Tensor, mask: Tensor) -> Tensor:
        steps = repeat(z, "b l -> b t l", t=mask.shape[1])  # (B, T, latent)
        h0 = torch.tanh(self.to_state(z)).unsqueeze(0)  # (1, B, hidden)
        states, _ = self.decoder(steps, (h0, torch.zeros_like(h0)))  # (B, T, hidden), causal
        return self.to_features(states) * mask.unsqueeze(-1)  # (B, T, D)

    def forward(self, x: Tensor, mask: Tensor | None = None, *, sample: bool | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        mask = check_mask(x, mask)
        mu, logvar = self.encode(x, mask)
        sample = self.training if sample is None else sample
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu  # (B, latent)
        return self.decode(z, mask), mu, logvar


class LSTMDiscriminator(nn.Module):
    """An LSTM discriminator: last hidden state φ (B, hidden) → real/fake logit (B,).

    ``sigmoid(logit)`` is the probability of "real"; φ is the feature space of the
    reconstruction and cycle-consistency losses.
    """

    def __init__(self, *, in_dim: int, hidden: int = 128):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mask = check_mask(x, mask)
        _, h_n = run_lstm(self.lstm, x, mask)  # (1, B, hidden)
        feature = h_n[-1]  # (B, hidden) φ(x)
        return self.head(feature).squeeze(-1), feature


@dataclass
class CycleOutputs:
    """Everything one Cycle-SUM pass computes (all (B, T, D) unless noted)."""

    mask: Tensor            # (B, T) bool, True on real frames
    scores: Tensor          # (B, T) selector output x_t
    summary: Tensor         # s = x ⊙ o
    video_hat: Tensor       # ô = G_f(s)
    summary_hat: Tensor     # ŝ = G_b(o)
    summary_cycle: Tensor   # G_b(G_f(s)), should match s
    video_cycle: Tensor     # G_f(G_b(o)), should match o
    posterior_forward: tuple[Tensor, Tensor]   # (μ, log σ²) of G_f on s, (B, latent) each
    posterior_backward: tuple[Tensor, Tensor]  # (μ, log σ²) of G_b on o


class CycleSUM(nn.Module):
    """Selector + forward GAN (G_f, D_f) + backward GAN (G_b, D_b).

    ``forward(x, mask)`` returns the selector's scores (B, T) — all inference needs;
    :meth:`cycle` runs the whole evaluator for training. Optimise
    :meth:`generator_parameters` with :func:`generator_losses` and
    :meth:`discriminator_parameters` with :func:`discriminator_losses`.

    Args:
        in_dim: frame feature size D.
        hidden: LSTM width of every part (small by default so that CPU training is practical).
        latent: size of the VAE latent z.
        selector_layers: bi-LSTM layers of the selector.
    """

    def __init__(self, *, in_dim: int, hidden: int = 128, latent: int = 64,
                 selector_layers: int = 1):
        super().__init__()
        self.selector = FrameSelector(in_dim=in_dim, hidden=hidden, layers=selector_layers)
        self.gen_forward = VAELSTM(in_dim=in_dim, hidden=hidden, latent=latent)      # G_f: s → o
        self.gen_backward = VAELSTM(in_dim=in_dim, hidden=hidden, latent=latent)     # G_b: o → s
        self.disc_forward = LSTMDiscriminator(in_dim=in_dim, hidden=hidden)          # D_f: o vs ô
        self.disc_backward = LSTMDiscriminator(in_dim=in_dim, hidden=hidden)         # D_b: s vs ŝ

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.selector(x, mask)

    def cycle(self, x: Tensor, mask: Tensor | None = None) -> CycleOutputs:
        mask = check_mask(x, mask)
        scores = self.selector(x, mask)  # (B, T)
        summary = scores.unsqueeze(-1) * x  # (B, T, D) s = x ⊙ o
        video_hat, mu_f, logvar_f = self.gen_forward(summary, mask)  # ô = G_f(s)
        summary_hat, mu_b, logvar_b = self.gen_backward(x, mask)  # ŝ = G_b(o)
        summary_cycle, _, _ = self.gen_backward(video_hat, mask)  # G_b(G_f(s))
        video_cycle, _, _ = self.gen_forward(summary_hat, mask)  # G_f(G_b(o))
        return CycleOutputs(mask=mask, scores=scores, summary=summary, video_hat=video_hat,
                            summary_hat=summary_hat, summary_cycle=summary_cycle,
                            video_cycle=video_cycle, posterior_forward=(mu_f, logvar_f),
                            posterior_backward=(mu_b, logvar_b))

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the selector and both generators (the first optimiser)."""
        for part in (self.selector, self.gen_forward, self.gen_backward):
            yield from part.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of both discriminators (the second optimiser)."""
        for part in (self.disc_forward, self.disc_backward):
            yield from part.parameters()


# helpers

def _discriminate(disc: LSTMDiscriminator, sequences: list[Tensor], mask: Tensor
                  ) -> list[tuple[Tensor, Tensor]]:
    """Run ``disc`` on several (B, T, D) batches in one LSTM pass; (logit, φ) per batch."""
    b = mask.shape[0]
    logits, features = disc(torch.cat(sequences), mask.repeat(len(sequences), 1))  # (nB,), (nB, H)
    return list(zip(logits.split(b), features.split(b)))


def _bce(logits: Tensor, real: bool) -> Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def _kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)), averaged over latent dimensions and batch."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).mean()


# losses

def generator_losses(model: CycleSUM, x: Tensor, mask: Tensor | None = None, *,
                     outputs: CycleOutputs | None = None, budget: float = 0.15,
                     adversarial_weight: float = 1.0, reconstruction_weight: float = 1.0,
                     cycle_weight: float = 1.0, kl_weight: float = 1.0,
                     sparsity_weight: float = 1.0, representativeness_weight: float = 0.0,
                     repelling_weight: float = 0.0) -> dict[str, Tensor]:
    """Losses (1)–(7) (and (10), (11) when weighted) of the selector and generators, and their ``total``.

    Args:
        model: the :class:`CycleSUM`.
        x: (B, T, D) frame features o.
        mask: optional bool (B, T) prefix mask, True on real frames.
        outputs: a :meth:`CycleSUM.cycle` result for ``x`` to reuse; computed when None.
        budget: σ of (7), the target mean score.
        adversarial_weight, reconstruction_weight, cycle_weight, kl_weight, sparsity_weight:
            λ_adv, λ_rec, λ_cyc, λ_KL, λ_spar.
        representativeness_weight, repelling_weight: λ_rep, λ_div of the per-frame terms (10),
            (11), a deviation from the paper (module docstring); 0 leaves them out.

    Returns:
        ``{"adv_forward", "adv_backward", "reconstruction", "cycle_forward", "cycle_backward",
        "kl", "sparsity", "total"}`` scalar tensors, plus ``"representativeness"`` and
        ``"repelling"`` when their weights are not 0; back-propagate ``total``.
    """
    out = model.cycle(x, mask) if outputs is None else outputs
    mask = out.mask
    (fake_f, phi_fake_f), (_, phi_real_f), (_, phi_cycle_f) = _discriminate(
        model.disc_forward, [out.video_hat, x, out.video_cycle], mask)
    (fake_b, _), (_, phi_cycle_b), (_, phi_real_b) = _discriminate(
        model.disc_backward, [out.summary_hat, out.summary_cycle, out.summary], mask)
    terms = {
        "adv_forward": _bce(fake_f, real=True),  # (1)
        "adv_backward": _bce(fake_b, real=True),  # (2)
        "reconstruction": F.mse_loss(phi_fake_f, phi_real_f),  # (3)
        "cycle_forward": F.mse_loss(phi_cycle_b, phi_real_b),  # (4)
        "cycle_backward": F.mse_loss(phi_cycle_f, phi_real_f),  # (5)
        "kl": _kl_standard_normal(*out.posterior_forward)
              + _kl_standard_normal(*out.posterior_backward),  # (6)
        "sparsity": (masked_mean(out.scores, mask, dim=1) - budget).abs().mean(),  # (7)
    }
    if representativeness_weight or repelling_weight:
        repelling, representativeness = selection_terms(out.scores, x, mask)
        if representativeness_weight:
            terms["representativeness"] = representativeness.mean()  # (10)
        if repelling_weight:
            terms["repelling"] = repelling.mean()  # (11)
    terms["total"] = (adversarial_weight * (terms["adv_forward"] + terms["adv_backward"])
                      + reconstruction_weight * terms["reconstruction"]
                      + cycle_weight * (terms["cycle_forward"] + terms["cycle_backward"])
                      + kl_weight * terms["kl"] + sparsity_weight * terms["sparsity"]
                      + representativeness_weight * terms.get("representativeness", 0.0)
                      + repelling_weight * terms.get("repelling", 0.0))
    return terms


def discriminator_losses(model: CycleSUM, x: Tensor, mask: Tensor | None = None, *,
                         outputs: CycleOutputs | None = None) -> dict[str, Tensor]:
    """Losses (8)–(9) of the discriminators; fakes and the summary are detached.

    Reuse the generator step's ``outputs`` when there is one; otherwise the generators run
    without gradients here.

    Returns:
        ``{"forward_real", "forward_fake", "backward_real", "backward_fake", "total"}``.
    """
    if outputs is None:
        with torch.no_grad():
            outputs = model.cycle(x, mask)
    mask = outputs.mask
    (real_f, _), (fake_f, _) = _discriminate(
        model.disc_forward, [x, outputs.video_hat.detach()], mask)
    (real_b, _), (fake_b, _) = _discriminate(
        model.disc_backward, [outputs.summary.detach(), outputs.summary_hat.detach()], mask)
    terms = {
        "forward_real": _bce(real_f, real=True),  # (8)
        "forward_fake": _bce(fake_f, real=False),
        "backward_real": _bce(real_b, real=True),  # (9)
        "backward_fake": _bce(fake_b, real=False),
    }
    terms["total"] = sum(terms.values())
    return terms
