"""The networks of PSGAN and SCGAN (Yang et al., "Pose Guided Human Video Generation", ECCV 2018,
arXiv 1807.11152), the pose maps they exchange, and the abnormal poses SCGAN learns to withstand.

Pose maps (:func:`pose_maps`): keypoints (..., 17, 3) in the pixels of an S x S frame rendered by
:func:`crossmedia.data.keypoints.render_pose` at P x P (P = S for SCGAN, P = S/2 for PSGAN), after
mapping pixel centres to pixel centres (x_P = (x_S + ½) P/S − ½). Joints with v = 0 render empty.

PSGAN generator (:class:`PoseSequenceGenerator`), Sec. 3.1 of the paper. Input: the pose maps of
the first frame M_0 (B, 17 + 19, P, P) — joint heatmaps and limb maps —, the action class c (one of
A) and noise z ~ N(0, I) (``noise_dim``)::

    h_k = DownBlock(h_{k-1}), k = 1..4                 (4 stride-2 convolutions, kernel 4, IN, ReLU)
    h   = Res^R(conv1x1([h_4; onehot(c); z]))          (label and noise broadcast over positions)
    g_0 = h[:, :, None]                                (C x P/16 x P/16 -> C x 1 x P/16 x P/16: a time axis)
    g_k = UpBlock3d([g_{k-1}; h_{5-k} repeated over time]),  k = 1..4   (T: 1 -> 16, P/16 -> P)
    F   = conv3d_1x1x1(g_4)                             (B, 3·17, T, P, P): per joint k and frame t, fields
                                                        (Δx, Δy, ν) over the map
    (Δx, Δy, ν)_{k,t} = Σ_p a_k(p) F_{k,t}(p),  a_k = M_0[k] / Σ M_0[k]   (read at joint k's input place)
    x_{k,t} = x_{k,0} + 12 tanh(Δ)_{k,t},   v_{k,t} = σ(ν_{k,t} ± 4)     (+ if k is visible in frame 0)
    Ŷ_{k,t}(p) = v_{k,t} exp(-|p − x_{k,t}|² / 2σ²)   (B, 17, T, P, P) joint heatmaps, σ = 1.25

So the 3-D decoder draws T maps per joint as the paper's does, but they are fields of displacement
read at the joint rather than heatmaps read by arg-max, and the heatmaps D sees are rendered from the
positions. This is ours, measured: a decoder emitting heatmaps directly (σ(F) with or without the
input heatmaps added to its logits) stayed still for 175+ batches — to move a peak it must raise a
far pixel whose gradient is ~e^-20 under the soft-arg-max, D told its blurred maps from real ones by
their background, and the L1 term favours holding the pose when the phase of the motion is unknown.
The skip connections (h_{5-k} repeated over the T frames of level k) are ours too; with the head
initialised to zero G starts by holding the input pose and learns the motion as its change.

SCGAN generator (:class:`FrameGenerator`), Sec. 3.2: two encoders of 4 stride-2 convolutions — one
for the appearance image (B, 3, S, S), one for the target pose maps (B, 36, S, S) —, residual blocks
on their concatenated codes, and a decoder of interpolation + convolution (:class:`UpBlock`)::

    a_k = DownBlock(a_{k-1}),  p_k = DownBlock(p_{k-1}),  k = 1..4
    d_0 = Res^R(conv1x1([a_4; p_4]))
    d_k = UpBlock([d_{k-1}; a_{4-k+1}; p_{4-k+1}]), k = 1..4  (skips from both encoders)
    [r; μ] = conv3x3(d_4),   m = σ(μ)
    x̂   = m ⊙ I_s + (1 − m) ⊙ tanh(r)                   (B, 3, S, S) in [-1, 1]

The skips are ours too (U-Net style, as pix2pix): the pose skips place the body exactly, the
appearance skips carry the static background. So is the copy mask m: most of a target frame is the
background of the source frame (copying the source frame scores an L1 of 0.047 on the puppets'
validation pairs, against 0.11 for an unmasked G after 175 steps), so G renders only where the
person moved; its bias starts at σ(2) ≈ 0.88, close to copying.

Abnormal poses (:func:`abnormal_pose`): the paper trains SCGAN to render the right frame when the
pose it is given is noisy, as poses from PSGAN or from a pose estimator are. We draw, per item,
one of three corruptions: *missing* (each visible joint dropped, v = 0, with probability 0.3),
*scaled* (the pose scaled about its centre by s ∈ [0.75, 0.9] ∪ [1.1, 1.25]) and *jittered*
(every joint moved by N(0, σ²), σ = 2 px).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossmedia.data.keypoints import NUM_JOINTS, NUM_LIMBS, render_pose, soft_argmax
from crossmedia.nn.blocks import DownBlock, ResidualBlock, UpBlock, UpBlock3d

__all__ = ["pose_maps", "gaussian_maps", "rescale_keypoints", "sequence_keypoints", "temporal_filter", "abnormal_pose",
           "ABNORMAL_KINDS", "PoseSequenceGenerator", "FrameGenerator", "FiLM", "POSE_CHANNELS"]

POSE_CHANNELS = NUM_JOINTS + NUM_LIMBS  # 17 joint heatmaps + 19 limb maps
ABNORMAL_KINDS = ("missing", "scaled", "jittered")


# pose maps

def rescale_keypoints(keypoints: Tensor, src: int, dst: int) -> Tensor:
    """(..., 17, 3) keypoints from the pixels of a src x src frame to dst x dst (centres to centres);
    absent joints stay (0, 0, 0)."""
    if src == dst:
        return keypoints
    present = keypoints[..., 2:] > 0
    xy = (keypoints[..., :2] + 0.5) * (dst / src) - 0.5
    return torch.cat([torch.where(present, xy, 0.0), keypoints[..., 2:]], dim=-1)


def pose_maps(keypoints: Tensor, image_size: int, map_size: int, *, limbs: bool = True) -> Tensor:
    """Keypoints (..., 17, 3) in image_size pixels -> pose maps (..., 17 [+ 19], map_size, map_size).

    σ of the joint Gaussians and the limb width scale with the map (1.5 and 1.0 px at 64 x 64), σ at
    least 1.25 map pixels: narrower Gaussians snap the soft-arg-max read-back to the pixel grid
    (0.35 px error at σ = 0.75 against 0.21 px at 1.25, on 32 x 32 maps, β = 20)."""
    scale = map_size / 64.0
    return render_pose(rescale_keypoints(keypoints.float(), image_size, map_size), map_size,
                       sigma=max(1.5 * scale, 1.25), limb_width=max(1.0 * scale, 0.75), limbs=limbs)


def sequence_keypoints(heatmaps: Tensor, image_size: int, *, threshold: float = 0.2, beta: float = 20.0) -> Tensor:
    """Joint heatmaps (..., 17, P, P) -> keypoints (..., 17, 3) in image_size pixels: soft-arg-max
    positions, v = 2 where the map's peak reaches ``threshold`` and (0, 0, 0) elsewhere."""
    size = heatmaps.shape[-1]
    xy = soft_argmax(heatmaps.float(), beta=beta)  # (..., 17, 2) in map pixels
    peak = heatmaps.float().flatten(-2).amax(-1)  # (..., 17)
    present = (peak >= threshold).unsqueeze(-1)
    keypoints = torch.cat([xy, torch.full_like(xy[..., :1], 2.0)], dim=-1) * present
    return rescale_keypoints(keypoints, size, image_size)


def temporal_filter(keypoints: Tensor) -> Tensor:
    """Pose sequences (..., T, 17, 3) with x and y filtered by [1, 2, 1] / 4 over time.

    A visible joint becomes (x_{t-1} + 2 x_t + x_{t+1}) / 4, where a neighbour that is absent or beyond the
    sequence's ends counts as x_t itself; visibility is unchanged and absent joints stay (0, 0, 0).
    PSGAN's ``smooth=True``: its sequences carry frame-to-frame jitter its discriminator cannot see (the psgan
    card), and this filter removes it without changing the action (measured there)."""
    xy, seen = keypoints[..., :2].float(), keypoints[..., 2:] > 0  # (..., T, 17, 2), (..., T, 17, 1)
    prev = torch.cat([xy[..., :1, :, :], xy[..., :-1, :, :]], -3)
    prev_seen = torch.cat([seen[..., :1, :, :], seen[..., :-1, :, :]], -3)
    nxt = torch.cat([xy[..., 1:, :, :], xy[..., -1:, :, :]], -3)
    nxt_seen = torch.cat([seen[..., 1:, :, :], seen[..., -1:, :, :]], -3)
    smooth = (torch.where(prev_seen, prev, xy) + 2 * xy + torch.where(nxt_seen, nxt, xy)) / 4
    out = torch.cat([smooth, keypoints[..., 2:].float()], -1)
    return torch.where(seen, out, torch.zeros_like(out)).to(keypoints.dtype)


def abnormal_pose(keypoints: Tensor, generator: torch.Generator | None = None, *, kinds: tuple[str, ...] = ABNORMAL_KINDS,
                  drop: float = 0.3, jitter: float = 2.0) -> Tensor:
    """A corrupted copy of keypoints (B, 17, 3): per item one of ``kinds`` (module docstring).

    ``generator`` (CPU) makes the draw repeatable (evaluation passes one seeded per batch)."""
    bad = [k for k in kinds if k not in ABNORMAL_KINDS]
    if bad or not kinds:
        raise ValueError(f"abnormal pose kinds must be among {ABNORMAL_KINDS}, got {kinds}")
    kp = keypoints.detach().float().cpu().clone()
    batch = kp.shape[0]
    present = kp[..., 2] > 0  # (B, 17)
    which = torch.randint(len(kinds), (batch,), generator=generator)
    u = torch.rand(batch, NUM_JOINTS, generator=generator)
    scale = torch.rand(batch, generator=generator) * 0.15 + 0.1  # |s - 1| in [0.1, 0.25]
    sign = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
    noise = torch.randn(batch, NUM_JOINTS, 2, generator=generator) * jitter
    for i in range(batch):
        kind = kinds[int(which[i])]
        if kind == "missing":
            keep = present[i] & (u[i] >= drop)
            if present[i].any() and not keep.any():  # at least one joint survives
                keep[int(present[i].nonzero()[0])] = True
            kp[i, ~keep] = 0.0
        elif kind == "scaled" and present[i].any():
            centre = kp[i, present[i], :2].mean(0)
            kp[i, present[i], :2] = centre + (kp[i, present[i], :2] - centre) * (1.0 + sign[i] * scale[i])
        elif kind == "jittered":
            kp[i, present[i], :2] += noise[i, present[i]]
    return kp.to(keypoints.device, keypoints.dtype)


# networks

class PoseSequenceGenerator(nn.Module):
    """PSGAN's G: (first-frame keypoints (B, 17, 3), action (B,), noise (B, Z)) -> T = 16 poses.

    :meth:`forward` returns the joint heatmaps (B, 17, T, P, P) (what D judges) and the keypoints
    (B, T, 17, 3) in map pixels they are drawn from (module docstring: offset fields).

    Args:
        num_actions: A, the classes of the one-hot label.
        map_size: P (a multiple of 16).
        base: channels of the first encoder convolution (doubling per level, capped at 8 x base).
        noise_dim: Z; 0 makes the generator deterministic.
        res_blocks: residual blocks at the bottleneck.
        sigma: σ of the rendered heatmaps, in map pixels.
        max_offset: the largest displacement of a joint from its input place, in map pixels (tanh range).
    """

    frames = 16  # four temporal doublings of the time axis added at the bottleneck

    def __init__(self, num_actions: int, *, map_size: int = 32, base: int = 32, noise_dim: int = 16,
                 res_blocks: int = 2, sigma: float = 1.25, max_offset: float = 12.0) -> None:
        super().__init__()
        if map_size % 16:
            raise ValueError(f"PSGAN's map_size must be a multiple of 16 (4 stride-2 levels), got {map_size}")
        self.num_actions, self.noise_dim, self.map_size = num_actions, noise_dim, map_size
        self.sigma, self.max_offset = sigma, max_offset
        widths = [min(base * 2**k, 8 * base) for k in range(4)]  # h_1..h_4
        ins = [POSE_CHANNELS] + widths[:-1]
        self.encoder = nn.ModuleList(DownBlock(i, o, norm=k > 0) for k, (i, o) in enumerate(zip(ins, widths)))
        self.fuse = nn.Sequential(nn.Conv2d(widths[-1] + num_actions + noise_dim, widths[-1], 1), nn.ReLU(inplace=True),
                                  *[ResidualBlock(widths[-1]) for _ in range(res_blocks)])
        dec_out = [widths[2], widths[1], widths[0], base // 2]
        dec_in = [widths[3] + widths[3], dec_out[0] + widths[2], dec_out[1] + widths[1], dec_out[2] + widths[0]]
        self.decoder = nn.ModuleList(UpBlock3d(i, o) for i, o in zip(dec_in, dec_out))
        self.head = nn.Conv3d(dec_out[-1], 3 * NUM_JOINTS, 1)  # per joint: offset x, offset y, visibility logit
        nn.init.zeros_(self.head.weight)  # G starts by holding the input pose
        nn.init.zeros_(self.head.bias)

    def fields(self, maps: Tensor, action: Tensor, noise: Tensor | None = None) -> Tensor:
        """The decoder's output (B, 3·17, T, P, P): offset and visibility fields of every joint."""
        skips = []
        h = maps
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        label = F.one_hot(action, self.num_actions).to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])
        parts = [h, label]
        if self.noise_dim:
            if noise is None:
                noise = torch.randn(h.shape[0], self.noise_dim, device=h.device)
            parts.append(noise.to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:]))
        g = self.fuse(torch.cat(parts, 1))[:, :, None]  # (B, C, 1, P/16, P/16)
        for block, skip in zip(self.decoder, reversed(skips)):
            g = block(torch.cat([g, skip[:, :, None].expand(-1, -1, g.shape[2], -1, -1)], 1))
        return self.head(g)

    def forward(self, first: Tensor, action: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """first: keypoints (B, 17, 3) in map pixels -> (heatmaps (B, 17, T, P, P), keypoints (B, T, 17, 3))."""
        size = self.map_size
        first = first.float()
        maps = render_pose(first, size, sigma=self.sigma, limb_width=max(self.sigma * 0.6, 0.75))  # (B, 36, P, P)
        out = self.fields(maps, action, noise).float()  # (B, 51, T, P, P)
        b, _, t = out.shape[:3]
        out = out.reshape(b, NUM_JOINTS, 3, t, size, size)
        present = first[..., 2] > 0  # (B, 17)
        attend = maps[:, :NUM_JOINTS].flatten(-2)  # (B, 17, P²) each joint's own input heatmap ...
        drawn = present & (attend.sum(-1) > 0)  # a present joint far off the map draws nothing on it
        attend = torch.where(drawn[..., None], attend, torch.ones_like(attend))  # ... or everywhere if absent
        attend = attend / attend.sum(-1, keepdim=True)
        read = torch.einsum("bjctp,bjp->btjc", out.flatten(-2), attend)  # (B, T, 17, 3): fields at the joint
        offset = self.max_offset * torch.tanh(read[..., :2])
        xy = torch.where(present[:, None, :, None], first[:, None, :, :2], (size - 1) / 2) + offset
        visible = torch.sigmoid(read[..., 2] + torch.where(present, 4.0, -4.0)[:, None])  # (B, T, 17)
        heatmaps = gaussian_maps(xy, size, self.sigma) * visible[..., None, None]  # (B, T, 17, P, P)
        keypoints = torch.cat([xy, visible[..., None]], -1)
        return heatmaps.transpose(1, 2), keypoints


def gaussian_maps(xy: Tensor, size: int, sigma: float) -> Tensor:
    """Differentiable joint heatmaps (..., J, size, size) of positions (..., J, 2): exp(-|p - xy|² / 2σ²),
    the same maps :func:`~crossmedia.data.keypoints.render_pose` draws, with gradients to xy."""
    grid = torch.arange(size, dtype=xy.dtype, device=xy.device)
    gx = torch.exp(-(grid - xy[..., :1]) ** 2 / (2 * sigma**2))  # (..., J, W)
    gy = torch.exp(-(grid - xy[..., 1:]) ** 2 / (2 * sigma**2))  # (..., J, H)
    return gy[..., :, None] * gx[..., None, :]


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al., AAAI 2018, arXiv 1709.07871) of (B, C, H, W) features by a
    code (B, K): x · (1 + γ(z)) + β(z), γ and β linear in z and zero at initialisation. A code broadcast as
    input channels would not do here: the instance norm after each convolution removes any per-image constant."""

    def __init__(self, code_dim: int, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(code_dim, 2 * channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        gamma, beta = self.linear(code.to(x.dtype)).chunk(2, dim=1)
        return x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class FrameGenerator(nn.Module):
    """SCGAN's G: (appearance image (B, 3, S, S) in [-1, 1], target pose maps (B, 36, S, S)) -> frame (B, 3, S, S).

    Args:
        base: channels of the first encoder convolution (doubling per level, capped at 8 x base).
        res_blocks: residual blocks on the concatenated codes.
        code_dim: K > 0 adds an attribute code z (B, K) (the two-stage attribute generator,
            :mod:`crossmedia.tasks.posevideo.attr`): FiLM of the bottleneck and of each decoder level by z, and z
            broadcast into the head; 0 (SCGAN) leaves the network and its weights exactly as they were.
    """

    def __init__(self, *, base: int = 32, res_blocks: int = 3, code_dim: int = 0) -> None:
        super().__init__()
        widths = [min(base * 2**k, 8 * base) for k in range(4)]
        self.code_dim = code_dim
        self.image_encoder = nn.ModuleList(DownBlock(i, o, norm=k > 0)
                                           for k, (i, o) in enumerate(zip([3] + widths[:-1], widths)))
        self.pose_encoder = nn.ModuleList(DownBlock(i, o, norm=k > 0)
                                          for k, (i, o) in enumerate(zip([POSE_CHANNELS] + widths[:-1], widths)))
        self.fuse = nn.Sequential(nn.Conv2d(2 * widths[-1], widths[-1], 1), nn.ReLU(inplace=True),
                                  *[ResidualBlock(widths[-1]) for _ in range(res_blocks)])
        dec_out = [widths[2], widths[1], widths[0], base]
        dec_in = [widths[3] * 3, dec_out[0] + 2 * widths[2], dec_out[1] + 2 * widths[1], dec_out[2] + 2 * widths[0]]
        self.decoder = nn.ModuleList(UpBlock(i, o) for i, o in zip(dec_in, dec_out))
        if code_dim:  # FiLM of the bottleneck and of every decoder level by the code, and the code at the head
            self.films = nn.ModuleList(FiLM(code_dim, c) for c in [widths[-1]] + dec_out)
        self.head = nn.Conv2d(base + code_dim, 4, 3, 1, 1)  # RGB and the logit of the copy mask
        nn.init.constant_(self.head.bias[3], 2.0)  # σ(2) ≈ 0.88: G starts close to copying the source frame

    def forward(self, image: Tensor, maps: Tensor, code: Tensor | None = None) -> Tensor:
        """``code`` (B, code_dim): the attribute code of a generator built with ``code_dim`` (else None)."""
        if (code is None) != (not self.code_dim):
            raise ValueError(f"this FrameGenerator has code_dim={self.code_dim}: pass a (B, {self.code_dim}) code "
                             "exactly when code_dim > 0")
        a_skips, p_skips = [], []
        a, p = image, maps.to(image.dtype)
        for enc_a, enc_p in zip(self.image_encoder, self.pose_encoder):
            a, p = enc_a(a), enc_p(p)
            a_skips.append(a)
            p_skips.append(p)
        d = self.fuse(torch.cat([a, p], 1))
        films = iter(self.films) if self.code_dim else None
        if films is not None:
            d = next(films)(d, code)
        for block, a_skip, p_skip in zip(self.decoder, reversed(a_skips), reversed(p_skips)):
            d = block(torch.cat([d, a_skip, p_skip], 1))
            if films is not None:
                d = next(films)(d, code)
        if self.code_dim:
            d = torch.cat([d, code.to(d.dtype)[:, :, None, None].expand(-1, -1, *d.shape[2:])], 1)
        out = self.head(d)
        mask = torch.sigmoid(out[:, 3:])
        return mask * image + (1 - mask) * torch.tanh(out[:, :3])
