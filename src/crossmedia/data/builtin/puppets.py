"""Built-in ``puppets``: generated videos of articulated 2-D people performing actions, with COCO-17 poses.

The built-in data of pose-guided human video generation (issue 12; Yang et al., "Pose Guided Human
Video Generation", ECCV 2018, arXiv 1807.11152): a clip shows one figure, front-facing like a
paper puppet, whose joints move in the image plane.

The figure. A head (ellipse with two eye dots), a neck, a torso (trapezoid), a pelvis block and
thick rounded segments for the upper and lower arms and legs, with hands and shoes. An *identity*
fixes the bone lengths (head radius, spine, upper arm, forearm, thigh, shin, shoulder and hip
width, in units of the standing height), the build (limb thickness), the skin tone, the hair (5
colours x short / long / bun / buzz) and the clothes: a top (long or short sleeves) and a bottom
(trousers or shorts), each in one of the 8 colours of :data:`PUPPET_COLOURS` (identity j wears
top colour j mod 8, so the colours are balanced in every split; the bottom is one of the 7
others) and one of the textures of :data:`PUPPET_TEXTURES` (plain; horizontal stripes or a dot
grid in a darker shade of the same colour, :data:`SHADE` x its RGB, so a garment has one hue).
The texture moves with the body (anchored at the neck for the top, at the pelvis for the bottom).

The actions (:data:`PUPPET_ACTIONS`), each a program of joint angles (or of hand / foot targets
reached by two-bone inverse kinematics) over the phase φ_t = 2π f t + φ_0 of the clip:
``wave`` (one arm raised, the forearm swinging), ``clap`` (hands meet in front of the chest),
``walk`` and ``run`` (legs and counter-swinging arms in the image plane, the body drifting
sideways; ``run`` faster, leaning, elbows bent), ``jump`` (crouch, flight with arms up), ``squat``
(pelvis down, feet planted, knees out, arms up to the sides), ``punch`` (alternating side punches
from a guard), ``kick`` (one leg chambers and extends sideways, the torso leans away, arms out) and
``bend`` (the torso bends sideways, the far arm arcs over the head). Per clip: frequency f (a
per-action range of cycles per 16 frames), amplitude (x 0.8-1.15), phase φ_0, a mirror (left or
right arm / leg / direction) and camera jitter (a smooth per-frame translation of ±1 px and scale
of ±3 %). The figure's scale and place are chosen so that its whole motion fits in the frame.

Background: a plain desaturated tone, a vertical or horizontal gradient between two, or a tone
with light static noise. Everything is drawn at 4x and box-downsampled (smooth edges).

Masks. A per-frame label image: 0 background, 1 top, 2 bottom, 3 rest of the body (skin, hair,
eyes, shoes). The parts are drawn once, as part ids, into the 4x image; the colours come from the
ids, and the label of an output pixel is the label of most of its 16 sub-pixels (ties go to the
lower label), so a mask covers exactly the clothes drawn at the output resolution; pixels where
a garment covers under half of the area blend with their neighbours, as any anti-aliased edge.

Keypoints: COCO-17 (:data:`crossmedia.data.keypoints.COCO17`) in the pixel convention of
:mod:`crossmedia.data.keypoints` (pixel (row i, column j) has its centre at x = j, y = i). Eyes,
ears and nose follow from the head (eyes at 0.35 r sideways, ears at 0.8 r, nose 0.2 r below the
centre). A joint whose rounded position falls outside the frame is written as COCO's (0, 0, 0);
every other joint has v = 2 (the figure is front-facing; limbs in front of the torso do not hide
its joints from a pose estimator's point of view).

Splits and identities. Clip ``i`` performs action ``i % A`` (A = 9 actions) and, with
``k = i // A``, is ``val`` when ``k % 10 == 1``, ``test`` when ``k % 10 == 2`` and ``train``
otherwise: 80/10/10 stratified by action, and a few clips (3 x A) already give every split every
action. Identities are disjoint between splits, so val and test measure unseen people: 300
identities, 240 for train, 30 each for val and test; a clip draws its identity from its split's
pool, so an identity performs many actions (about 10 clips each at the default size). Clip ``i``
is drawn from ``default_rng([seed, i])`` and identity ``j`` from ``default_rng([seed, j, 1])``, so
a smaller ``num_clips`` gives the first clips of the full set.

Layout (PoseTrack-style COCO keypoints, with a ``videos`` list as in YouTube-VIS)::

    frames/<clip:05d>/<frame:03d>.png    RGB frames
    masks/<clip:05d>/<frame:03d>.png     palette PNGs whose pixel values are the labels 0-3
    annotations.json                     images, annotations, categories, videos (below)
    meta.json                            written last (:class:`~crossmedia.data.folder.DatasetFolder`)

``images``: ``id`` (= clip x frames + frame), ``file_name``, ``mask_file``, ``vid_id``, ``frame_id``,
``nframes``, ``width``, ``height``, ``is_labeled``. ``annotations`` (one per image): ``id``,
``image_id``, ``track_id`` 0, ``category_id`` 1, ``keypoints`` (17 x (x, y, v) = 51 numbers),
``num_keypoints``, ``bbox`` (x, y, w, h of the figure's pixels), ``area``, ``iscrowd`` 0.
``categories``: COCO's ``person`` with its keypoint names and 1-based skeleton. ``videos``: ``id``,
``action``, ``action_id``, ``split``, ``identity``, ``top_colour``, ``bottom_colour``,
``top_texture``, ``bottom_texture``, ``top_style``, ``bottom_style``, ``top_rgb``,
``bottom_rgb``, ``skin_rgb``, ``hair_colour``, ``hair_style``, ``background``, ``cycles``
(per clip), ``amplitude``, ``phase``, ``mirrored``, ``nframes``, ``frame_dir``, ``mask_dir``.

Default: 3,240 clips (360 per action) of 16 frames at 64 x 64: 87-152 s on one core of a busy 2-core
machine (~18 ms of drawing per clip, the rest is PNG writing), 286 MB in 103,682 files (frames 195 MB,
masks 62 MB, ``annotations.json`` 30 MB; ~570 MB on a 4 KiB-block file system).
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from crossmedia.data.folder import DatasetFolder, count_entries
from crossmedia.data.keypoints import COCO17, COCO17_LIMBS
from crossmedia.data.registry import register_dataset

__all__ = ["PUPPET_ACTIONS", "PUPPET_COLOURS", "PUPPET_TEXTURES", "MASK_LABELS", "PuppetIdentity", "PuppetClip",
           "sample_identity", "clip_split", "draw_puppet_clip", "make_puppets", "puppets_complete", "puppets_ready",
           "NUM_CLIPS", "NUM_IDENTITIES", "FRAMES", "IMAGE_SIZE", "JSON_NAME", "GENERATOR_VERSION", "SHADE"]

PUPPET_ACTIONS: tuple[str, ...] = ("wave", "clap", "walk", "run", "jump", "squat", "punch", "kick", "bend")
PUPPET_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40), "orange": (240, 135, 25), "yellow": (235, 210, 35), "green": (40, 160, 60),
    "cyan": (30, 190, 200), "blue": (45, 80, 215), "purple": (135, 55, 190), "pink": (240, 110, 180),
}
PUPPET_TEXTURES: tuple[str, ...] = ("plain", "stripes", "dots")
MASK_LABELS: dict[int, str] = {0: "background", 1: "top", 2: "bottom", 3: "body"}
NUM_CLIPS = 3240
NUM_IDENTITIES = 300  # 240 train, 30 val, 30 test
FRAMES, IMAGE_SIZE = 16, 64
GENERATOR_VERSION = 1
JSON_NAME = "annotations.json"
SHADE = 0.55  # texture colour = SHADE x garment colour (same hue)

_SUPERSAMPLE = 4
_SKIN_TONES = ((255, 224, 196), (241, 194, 150), (224, 172, 125), (198, 134, 86), (141, 85, 54), (92, 58, 38))
_HAIR_COLOURS = {"black": (25, 22, 22), "brown": (95, 60, 30), "blonde": (225, 190, 110), "auburn": (150, 60, 30),
                 "grey": (165, 165, 160)}
_HAIR_STYLES = ("short", "long", "bun", "buzz")
_SHOE_COLOURS = ((35, 35, 40), (90, 55, 30), (235, 235, 235))
# cycles per 16 frames, per action
_CYCLES = {"wave": (1.5, 2.5), "clap": (2.0, 3.0), "walk": (0.8, 1.3), "run": (1.3, 2.0), "jump": (0.8, 1.3),
           "squat": (0.6, 1.0), "punch": (1.0, 1.6), "kick": (0.6, 1.0), "bend": (0.6, 1.0)}
# part ids drawn into the supersampled image; their mask labels
_BG, _TOP, _BOTTOM, _SKIN, _HAIR, _SHOE, _EYE, _TOP_ALT, _BOTTOM_ALT = range(9)
_PART_LABEL = np.array([0, 1, 2, 3, 3, 3, 3, 1, 2], dtype=np.uint8)
_MASK_PALETTE = [0, 0, 0, 220, 60, 60, 60, 90, 220, 200, 200, 200] + [0, 0, 0] * 252
_SPLIT_IDENTITIES = {"train": (0, 240), "val": (240, 270), "test": (270, 300)}


@dataclass(frozen=True)
class PuppetIdentity:
    """A person: bone lengths in units of the standing height (pelvis to head top + pelvis to sole ≈ 1), looks."""

    index: int
    height: float  # relative pixel height, 0.9-1.08
    head_r: float
    neck: float
    spine: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    shoulder: float  # half width
    hip: float  # half width
    build: float  # limb thickness factor
    skin: tuple[int, int, int]
    hair_colour: str
    hair_style: str
    top_colour: str
    bottom_colour: str
    top_texture: str
    bottom_texture: str
    top_style: str  # "long" | "short" sleeves
    bottom_style: str  # "trousers" | "shorts"
    shoes: tuple[int, int, int]


@dataclass(frozen=True)
class PuppetClip:
    """One generated clip: frames (T, H, W, 3) uint8, masks (T, H, W) uint8 labels, keypoints (T, 17, 3) float64
    (x, y, v) in pixels, and its description (the ``videos`` entry without ids and paths)."""

    frames: np.ndarray
    masks: np.ndarray
    keypoints: np.ndarray
    info: dict


# helpers: geometry (angles θ give the direction (sin θ, cos θ) in image coordinates: 0 down, π/2 right)


def _dir(theta: np.ndarray) -> np.ndarray:
    return np.stack([np.sin(theta), np.cos(theta)], axis=-1)


def _ik(root: np.ndarray, target: np.ndarray, l1: float, l2: float, bend: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-bone inverse kinematics, per frame: (middle joint, end joint), each (T, 2). The end reaches ``target``
    when it can (else the closest point on the line to it); ``bend`` > 0 turns the first bone towards larger θ."""
    delta = target - root
    dist = np.clip(np.linalg.norm(delta, axis=-1), abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4)
    base = np.arctan2(delta[:, 0], delta[:, 1])
    alpha = np.arccos(np.clip((l1 ** 2 + dist ** 2 - l2 ** 2) / (2 * l1 * dist), -1.0, 1.0))
    middle = root + l1 * _dir(base + np.sign(bend) * alpha)
    end = root + dist[:, None] * _dir(base)
    return middle, end


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth random signal over frames ``t``: two sinusoids of random frequency and phase, peak ≈ ``amplitude``."""
    f = rng.uniform(0.02, 0.12, size=2)
    p = rng.uniform(0, 2 * np.pi, size=2)
    return amplitude * 0.5 * (np.sin(2 * np.pi * f[0] * t + p[0]) + np.sin(2 * np.pi * f[1] * t + p[1]))


# helpers: the actions


def _action_pose(action: str, ph: np.ndarray, amp: float, b: PuppetIdentity,
                 t: np.ndarray) -> dict[str, np.ndarray]:
    """The skeleton of one action over phases ``ph`` (T,), in figure units, pelvis at the origin when standing.

    Returns joint positions (T, 2): pelvis, neck, head, shoulder/elbow/wrist/hip/knee/ankle _l/_r (the person's
    left is image right, x > 0), before mirroring.
    """
    n = len(ph)
    s, c = np.sin(ph), np.cos(ph)
    zero = np.zeros(n)
    dx, dy, lean, lean_pelvis = zero.copy(), zero.copy(), zero.copy(), zero.copy()
    # arms relative to the torso's down direction, legs absolute; None = given by IK below
    arm = {"l": [0.12 + zero, 0.2 + zero], "r": [-0.12 + zero, -0.2 + zero]}
    leg = {"l": [0.05 + zero, 0.03 + zero], "r": [-0.05 + zero, -0.03 + zero]}
    hand_targets: dict[str, np.ndarray] = {}
    foot_targets: dict[str, np.ndarray] = {}
    leg_len = b.thigh + b.shin
    if action == "wave":
        arm["l"] = [2.25 + 0.08 * amp * s, np.pi + 0.55 * amp * s]
        arm["r"] = [-0.12 - 0.04 * s, -0.2 - 0.04 * s]
        lean = 0.03 * s
    elif action == "clap":
        gap = amp * 0.14 * (0.5 + 0.5 * c)
        y = -b.spine + 0.1 + 0.015 * s
        for side, sign in (("l", 1), ("r", -1)):
            hand_targets[side] = np.stack([sign * (0.035 + gap), y], axis=-1)
    elif action in ("walk", "run"):
        run = action == "run"
        swing, knee, arm_swing = (0.6, 1.1, 0.6) if run else (0.4, 0.6, 0.35)
        leg["l"] = [swing * amp * s, swing * amp * s - knee * amp * np.maximum(0, c) - (0.3 if run else 0.05)]
        leg["r"] = [-swing * amp * s, -swing * amp * s - knee * amp * np.maximum(0, -c) - (0.3 if run else 0.05)]
        elbow = 1.4 if run else 0.3
        arm["l"] = [0.12 - arm_swing * amp * s, 0.12 - arm_swing * amp * s + elbow]
        arm["r"] = [-0.12 + arm_swing * amp * s, -0.12 + arm_swing * amp * s + elbow]
        lean = (0.15 if run else 0.03) + zero
        dy = (0.035 if run else 0.02) * amp * (s ** 2 if not run else -np.abs(c))
        cycles = (ph[-1] - ph[0]) / (2 * np.pi) if n > 1 else 0.0
        stride = 4 * leg_len * np.sin(swing * amp)  # per cycle, feet planted
        drift = min(0.7 if run else 0.5, 0.35 * stride * cycles)
        dx = drift * (t / max(n - 1, 1) - 0.5)
    elif action == "jump":
        air, crouch = np.maximum(0, s), np.maximum(0, -s)
        dy = -0.16 * amp * air + 0.1 * crouch
        for side, sign in (("l", 1), ("r", -1)):
            foot_targets[side] = np.stack([sign * (b.hip + 0.02) + zero, leg_len - 0.01 - 0.13 * amp * air], axis=-1)
            arm[side] = [sign * (0.15 + 2.4 * air - 0.1 * crouch), sign * (0.3 + 2.4 * air)]
    elif action == "squat":
        depth = amp * 0.5 * (1 - c)
        dy = 0.2 * depth
        for side, sign in (("l", 1), ("r", -1)):
            foot_targets[side] = np.stack([sign * (b.hip + 0.04) + zero, leg_len - 0.01 + zero], axis=-1)
            arm[side] = [sign * (0.15 + 1.35 * depth), sign * (0.15 + 1.35 * depth)]
    elif action == "punch":
        leg["l"], leg["r"] = [0.16 + zero, 0.16 + zero], [-0.16 + zero, -0.16 + zero]
        dy = (leg_len * (1 - np.cos(0.16))) + zero
        reach = 0.97 * (b.upper_arm + b.forearm)
        extend = {"l": np.minimum(1, amp * np.maximum(0, s) ** 2), "r": np.minimum(1, amp * np.maximum(0, -s) ** 2)}
        lean = 0.08 * (extend["l"] - extend["r"])
        for side, sign in (("l", 1), ("r", -1)):
            guard = np.array([sign * 0.06, -b.spine + 0.06])
            punch = np.array([sign * (b.shoulder + reach), -b.spine + 0.03])
            e = extend[side][:, None]
            hand_targets[side] = (1 - e) * guard + e * punch
    elif action == "kick":
        k = amp * np.maximum(0, s) ** 1.5
        kn = np.clip(k / max(amp, 1e-6), 0, 1)
        leg["l"] = [1.25 * k, 1.25 * k - 1.1 * np.sin(np.pi * kn) * (1 - kn * 0.3)]
        leg["r"] = [-0.05 - 0.1 * k, -0.05 - 0.1 * k]
        lean = -0.25 * k
        dx = -0.04 * k
        arm["l"] = [0.4 + 0.6 * k, 0.9 + 0.6 * k]
        arm["r"] = [-(0.4 + 0.9 * k), -(0.9 + 0.9 * k)]
    elif action == "bend":
        lean = amp * 0.45 * s
        lean_pelvis = 0.15 * lean
        dx = -0.05 * amp * s
        over_l, over_r = np.maximum(0, -s), np.maximum(0, s)
        arm["l"] = [0.12 + 2.4 * over_l, 0.2 + 2.6 * over_l]
        arm["r"] = [-0.12 - 2.4 * over_r, -0.2 - 2.6 * over_r]
    else:
        raise ValueError(f"unknown puppet action {action!r}; expected one of {', '.join(PUPPET_ACTIONS)}")

    pelvis = np.stack([dx, dy], axis=-1)
    up = np.stack([np.sin(lean), -np.cos(lean)], axis=-1)  # the spine, leaning to +x for lean > 0
    side_vec = np.stack([np.cos(lean), np.sin(lean)], axis=-1)  # the person's left (image right)
    pelvis_side = np.stack([np.cos(lean_pelvis), np.sin(lean_pelvis)], axis=-1)
    neck = pelvis + b.spine * up
    head = neck + (b.neck + b.head_r) * up
    j = {"pelvis": pelvis, "neck": neck, "head": head}
    for side, sign in (("l", 1), ("r", -1)):
        shoulder = neck + sign * b.shoulder * side_vec - 0.02 * up
        if side in hand_targets:
            target = hand_targets[side]
            target = pelvis + target[:, :1] * side_vec - target[:, 1:] * up  # body frame -> figure frame
            elbow, wrist = _ik(shoulder, target, b.upper_arm, b.forearm, sign)
        else:
            upper, fore = arm[side]
            elbow = shoulder + b.upper_arm * _dir(upper - lean)
            wrist = elbow + b.forearm * _dir(fore - lean)
        hip = pelvis + sign * b.hip * pelvis_side
        if side in foot_targets:
            target = foot_targets[side] + np.stack([dx, zero], axis=-1)
            knee, ankle = _ik(hip, target, b.thigh, b.shin, sign)
        else:
            thigh, shin = leg[side]
            knee = hip + b.thigh * _dir(thigh)
            ankle = knee + b.shin * _dir(shin)
        j.update({f"shoulder_{side}": shoulder, f"elbow_{side}": elbow, f"wrist_{side}": wrist,
                  f"hip_{side}": hip, f"knee_{side}": knee, f"ankle_{side}": ankle})
    return j


# helpers: drawing


def _capsule(draw: ImageDraw.ImageDraw, p: np.ndarray, q: np.ndarray, width: float, part: int) -> None:
    r = width / 2
    draw.line([(p[0], p[1]), (q[0], q[1])], fill=part, width=max(1, round(width)))
    for x, y in (p, q):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=part)


def _disc(draw: ImageDraw.ImageDraw, p: np.ndarray, r: float, part: int, ry: float | None = None) -> None:
    ry = r if ry is None else ry
    draw.ellipse((p[0] - r, p[1] - ry, p[0] + r, p[1] + ry), fill=part)


def _draw_figure(j: dict[str, np.ndarray], b: PuppetIdentity, scale: float, big: int) -> np.ndarray:
    """One frame's part ids (big, big) uint8 from joint positions ``j`` (each (2,), supersampled pixels)."""
    image = Image.new("L", (big, big), _BG)
    draw = ImageDraw.Draw(image)
    arm_w, leg_w = 0.065 * b.build * scale, 0.08 * b.build * scale
    head_r = b.head_r * scale
    up = (j["head"] - j["neck"]) / max(float(np.linalg.norm(j["head"] - j["neck"])), 1e-6)
    side = np.array([-up[1], up[0]])  # image right when upright
    if b.hair_style == "long":  # hair behind the head, down to the shoulders
        _capsule(draw, j["head"], j["neck"] - 0.03 * scale * up, 2.1 * head_r, _HAIR)
    for s in ("r", "l"):  # legs, then shoes
        hip, knee, ankle = j[f"hip_{s}"], j[f"knee_{s}"], j[f"ankle_{s}"]
        _capsule(draw, hip, knee, leg_w, _SKIN)
        _capsule(draw, knee, ankle, leg_w * 0.9, _SKIN)
        if b.bottom_style == "trousers":
            _capsule(draw, hip, knee, leg_w * 1.12, _BOTTOM)
            _capsule(draw, knee, ankle, leg_w * 1.0, _BOTTOM)
        else:
            _capsule(draw, hip, hip + 0.65 * (knee - hip), leg_w * 1.15, _BOTTOM)
        _disc(draw, ankle + np.array([0.0, 0.3 * leg_w]), 0.75 * leg_w, _SHOE, ry=0.5 * leg_w)
    pelvis_top = j["pelvis"] + 0.05 * scale * up
    hip_l, hip_r = j["hip_l"], j["hip_r"]
    bottom_w = leg_w * 0.56
    draw.polygon([tuple(pelvis_top + (hip_l - j["pelvis"]) + bottom_w * side),
                  tuple(hip_l + bottom_w * side + 0.3 * leg_w * -up),
                  tuple(hip_r - bottom_w * side + 0.3 * leg_w * -up),
                  tuple(pelvis_top + (hip_r - j["pelvis"]) - bottom_w * side)], fill=_BOTTOM)
    _capsule(draw, j["neck"], j["head"], 0.45 * head_r, _SKIN)
    shoulder_l, shoulder_r = j["shoulder_l"], j["shoulder_r"]
    hem = j["pelvis"] + 0.03 * scale * up
    waist = (b.hip + 0.03 * b.build) * scale
    top_w = 0.35 * arm_w
    draw.polygon([tuple(shoulder_l + top_w * side - 0.3 * arm_w * up), tuple(hem + waist * side),
                  tuple(hem - waist * side), tuple(shoulder_r - top_w * side - 0.3 * arm_w * up)], fill=_TOP)
    _capsule(draw, shoulder_l, shoulder_r, 0.9 * arm_w, _TOP)
    _disc(draw, j["head"], head_r * 0.92, _SKIN, ry=head_r)
    angle = math.degrees(math.atan2(up[0], -up[1]))  # clockwise tilt of the head
    cover = {"short": 20, "long": 20, "bun": 15, "buzz": -10}[b.hair_style]  # degrees below the head's equator
    r = head_r * (1.0 if b.hair_style == "buzz" else 1.08)
    head = j["head"]
    draw.chord((head[0] - r, head[1] - r, head[0] + r, head[1] + r), start=180 - cover + angle,
               end=360 + cover + angle, fill=_HAIR)
    if b.hair_style == "bun":
        _disc(draw, head + 1.05 * head_r * up, 0.45 * head_r, _HAIR)
    _disc(draw, head - 0.2 * head_r * up, head_r * 0.7, _SKIN)  # the face below the hairline
    eye_r = max(0.13 * head_r, 0.7)
    for sign in (1, -1):
        _disc(draw, head + sign * 0.35 * head_r * side + 0.05 * head_r * up, eye_r, _EYE)
    for s in ("r", "l"):  # arms in front
        shoulder, elbow, wrist = j[f"shoulder_{s}"], j[f"elbow_{s}"], j[f"wrist_{s}"]
        _capsule(draw, shoulder, elbow, arm_w, _SKIN)
        _capsule(draw, elbow, wrist, arm_w * 0.9, _SKIN)
        forearm = wrist - elbow
        hand = wrist + 0.25 * arm_w * forearm / max(float(np.linalg.norm(forearm)), 1e-6)
        _disc(draw, hand, 0.7 * arm_w, _SKIN)
        if b.top_style == "long":
            _capsule(draw, shoulder, elbow, arm_w * 1.12, _TOP)
            _capsule(draw, elbow, wrist, arm_w, _TOP)
        else:
            _capsule(draw, shoulder, shoulder + 0.55 * (elbow - shoulder), arm_w * 1.15, _TOP)
    return np.asarray(image)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A desaturated background (size, size, 3) float and its kind: plain, gradient or noise."""
    def tone() -> np.ndarray:
        return np.clip(rng.uniform(50, 225) + rng.uniform(-12, 12, size=3), 0, 255)

    kind = ("plain", "gradient", "noise")[int(rng.integers(3))]
    first = tone()
    if kind == "plain":
        return np.broadcast_to(first, (size, size, 3)).astype(np.float64), kind
    if kind == "gradient":
        ramp = np.linspace(0.0, 1.0, size)[:, None, None]  # rows
        ramp = ramp if rng.random() < 0.5 else ramp.transpose(1, 0, 2)  # vertical or horizontal
        return np.broadcast_to(first + ramp * (tone() - first), (size, size, 3)).astype(np.float64), kind
    noise = rng.normal(0.0, rng.uniform(4.0, 9.0), size=(size, size, 3))
    return np.clip(first + noise, 0, 255), kind


def _texture_tile(rng: np.random.Generator, texture: str, big: int) -> tuple[np.ndarray | None, int]:
    """A periodic texture mask (big + period, big + period) bool at the supersampled resolution, and its period."""
    if texture == "plain":
        return None, 1
    n = _SUPERSAMPLE
    u = np.arange(big + 8 * n)
    if texture == "stripes":
        period = int(round(n * rng.uniform(3.0, 4.5)))
        rows = (u[:big + period] % period) < period / 2
        return np.broadcast_to(rows[:, None], (big + period, big + period)), period
    period = int(round(n * rng.uniform(3.5, 5.0)))
    radius = n * rng.uniform(0.7, 1.0)
    w = (u[:big + period] % period) - (period - 1) / 2
    return (w[:, None] ** 2 + w[None, :] ** 2) < radius ** 2, period


def _windows(tile: np.ndarray, period: int, anchors: np.ndarray, big: int) -> np.ndarray:
    """The texture of each frame (T, big, big), shifted so that it moves with ``anchors`` (T, 2) (x, y)."""
    offsets = (-np.round(anchors).astype(np.int64)) % period
    return np.stack([tile[oy:oy + big, ox:ox + big] for ox, oy in offsets])


_COCO_FROM_LIMBS = {"left_shoulder": "shoulder_l", "right_shoulder": "shoulder_r", "left_elbow": "elbow_l",
                    "right_elbow": "elbow_r", "left_wrist": "wrist_l", "right_wrist": "wrist_r", "left_hip": "hip_l",
                    "right_hip": "hip_r", "left_knee": "knee_l", "right_knee": "knee_r", "left_ankle": "ankle_l",
                    "right_ankle": "ankle_r"}


def _coco_keypoints(j: dict[str, np.ndarray], head_r: np.ndarray, size: int) -> np.ndarray:
    """COCO-17 (T, 17, 3) from the joints (T, 2) in output pixels; head radius (T,) in pixels; v = 0 off-frame."""
    up = j["head"] - j["neck"]
    up = up / np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-6)
    side = np.stack([-up[:, 1], up[:, 0]], axis=-1)
    r = head_r[:, None]
    face = {"nose": j["head"] - 0.2 * r * up,
            "left_eye": j["head"] + 0.35 * r * side + 0.05 * r * up,
            "right_eye": j["head"] - 0.35 * r * side + 0.05 * r * up,
            "left_ear": j["head"] + 0.8 * r * side, "right_ear": j["head"] - 0.8 * r * side}
    xy = np.stack([face[name] if name in face else j[_COCO_FROM_LIMBS[name]] for name in COCO17], axis=1)
    inside = np.all((np.round(xy) >= 0) & (np.round(xy) <= size - 1), axis=-1)  # (T, 17)
    return np.concatenate([xy * inside[..., None], 2.0 * inside[..., None]], axis=-1)


# functions


def clip_split(index: int) -> tuple[int, str]:
    """Clip ``index``'s action index and split: action ``index % A``; 80/10/10 train/val/test within each action."""
    k, slot = divmod(index, len(PUPPET_ACTIONS))[0] % 10, index % len(PUPPET_ACTIONS)
    return slot, "val" if k == 1 else "test" if k == 2 else "train"


def sample_identity(seed: int, index: int) -> PuppetIdentity:
    """Identity ``index`` of seed ``seed``: bone lengths, build, skin, hair and clothes.

    Drawn from ``default_rng([seed, index, 1])``, so it is the same in every clip that shows it.
    """
    rng = np.random.default_rng([seed, index, 1])
    colours = list(PUPPET_COLOURS)
    top = index % len(colours)  # balanced: every colour on 1/8 of the identities of each split
    bottom = (top + 1 + (index // len(colours)) % (len(colours) - 1)) % len(colours)  # the 7 others in turn
    skin = np.clip(np.array(_SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]) + rng.integers(-8, 9, size=3), 0, 255)
    return PuppetIdentity(
        index=index, height=float(rng.uniform(0.9, 1.08)), head_r=float(rng.uniform(0.08, 0.095)),
        neck=0.03, spine=float(rng.uniform(0.27, 0.31)), upper_arm=float(rng.uniform(0.15, 0.18)),
        forearm=float(rng.uniform(0.13, 0.16)), thigh=float(rng.uniform(0.21, 0.25)),
        shin=float(rng.uniform(0.2, 0.24)), shoulder=float(rng.uniform(0.085, 0.11)),
        hip=float(rng.uniform(0.05, 0.065)), build=float(rng.uniform(0.85, 1.2)),
        skin=tuple(int(v) for v in skin),
        hair_colour=list(_HAIR_COLOURS)[int(rng.integers(len(_HAIR_COLOURS)))],
        hair_style=_HAIR_STYLES[int(rng.integers(len(_HAIR_STYLES)))],
        top_colour=colours[int(top)], bottom_colour=colours[int(bottom)],
        top_texture=PUPPET_TEXTURES[int(rng.choice(3, p=[0.5, 0.25, 0.25]))],
        bottom_texture=PUPPET_TEXTURES[int(rng.choice(3, p=[0.6, 0.2, 0.2]))],
        top_style=("long", "short")[int(rng.integers(2))], bottom_style=("trousers", "shorts")[int(rng.integers(2))],
        shoes=_SHOE_COLOURS[int(rng.integers(len(_SHOE_COLOURS)))])


def draw_puppet_clip(index: int, *, seed: int = 0, frames: int = FRAMES, size: int = IMAGE_SIZE) -> PuppetClip:
    """Clip ``index`` of the dataset of ``seed``: its frames, masks, keypoints and description."""
    if frames < 2 or size < 16:
        raise ValueError(f"puppets: need frames >= 2 and size >= 16, got frames={frames}, size={size}")
    action_id, split = clip_split(index)
    action = PUPPET_ACTIONS[action_id]
    rng = np.random.default_rng([seed, index])
    low, high = _SPLIT_IDENTITIES[split]
    identity = sample_identity(seed, int(rng.integers(low, high)))
    cycles = float(rng.uniform(*_CYCLES[action])) * frames / 16
    amp, phase0, mirrored = float(rng.uniform(0.8, 1.15)), float(rng.uniform(0, 2 * np.pi)), bool(rng.random() < 0.5)
    t = np.arange(frames, dtype=np.float64)
    ph = 2 * np.pi * cycles * t / frames + phase0
    j = _action_pose(action, ph, amp, identity, t)
    if mirrored:  # x -> -x and the person's left <-> right: the same action on the other side
        j = {(k[:-1] + {"l": "r", "r": "l"}[k[-1]] if k[-2:] in ("_l", "_r") else k): v * np.array([-1.0, 1.0])
             for k, v in j.items()}

    # fit: the whole motion (plus the head and a margin for limbs and feet) inside the frame
    pts = np.concatenate(list(j.values()))
    head_top, margin = j["head"][:, 1] - 1.25 * identity.head_r, 0.06
    x0, x1 = pts[:, 0].min() - margin, pts[:, 0].max() + margin
    y0, y1 = min(pts[:, 1].min(), head_top.min()) - 0.01, pts[:, 1].max() + margin
    pad = 2.0
    scale = min(size * rng.uniform(0.6, 0.74) * identity.height, (size - 2 * pad) / (x1 - x0),
                (size - 2 * pad) / (y1 - y0))
    room = np.maximum(0.0, size - 2 * pad - scale * np.array([x1 - x0, y1 - y0]))  # free play in x and y
    off = pad - scale * np.array([x0, y0]) + rng.random(2) * room
    zoom = 1 + _smooth_noise(rng, t, 0.03)  # camera jitter
    shift = np.stack([_smooth_noise(rng, t, 1.0), _smooth_noise(rng, t, 1.0)], axis=-1)
    centre = (size - 1) / 2
    px = {k: centre + zoom[:, None] * (off + scale * v - centre) + shift for k, v in j.items()}  # output pixels
    keypoints = _coco_keypoints(px, identity.head_r * scale * zoom, size)

    # draw the part ids at 4x, texture the clothes, colour, downsample
    n, big = _SUPERSAMPLE, size * _SUPERSAMPLE
    ids = np.stack([_draw_figure({k: v[f] * n + (n - 1) / 2 for k, v in px.items()}, identity,
                                 scale * zoom[f] * n, big) for f in range(frames)])  # (T, big, big)
    anchors = {_TOP: px["neck"] * n, _BOTTOM: px["pelvis"] * n}
    for part, alt, texture in ((_TOP, _TOP_ALT, identity.top_texture), (_BOTTOM, _BOTTOM_ALT, identity.bottom_texture)):
        tile, period = _texture_tile(rng, texture, big)
        if tile is not None:
            ids = np.where((ids == part) & _windows(tile, period, anchors[part], big), np.uint8(alt), ids)
    top_rgb = np.array(PUPPET_COLOURS[identity.top_colour])
    bottom_rgb = np.array(PUPPET_COLOURS[identity.bottom_colour])
    lut = np.array([(0, 0, 0), top_rgb, bottom_rgb, identity.skin, _HAIR_COLOURS[identity.hair_colour],
                    identity.shoes, (30, 25, 25), np.round(SHADE * top_rgb), np.round(SHADE * bottom_rgb)],
                   dtype=np.uint8)
    background, background_kind = _background(rng, size)
    background_big = Image.fromarray(np.repeat(np.repeat(np.round(background).astype(np.uint8), n, 0), n, 1))
    palette = lut.reshape(-1).tolist()
    figure_table = [0] + [255] * 255
    label_tables = [[16 * int(k < len(_PART_LABEL) and _PART_LABEL[k] == label) for k in range(256)]
                    for label in (1, 2, 3)]
    pixels = np.empty((frames, size, size, 3), dtype=np.uint8)
    counts = np.empty((frames, size, size, 4), dtype=np.int16)
    for f in range(frames):  # C-speed per frame: palette colouring, compositing, 4x4 box averages
        parts = Image.fromarray(ids[f])
        coloured = parts.copy()
        coloured.putpalette(palette)
        frame = Image.composite(coloured.convert("RGB"), background_big, parts.point(figure_table))
        pixels[f] = np.asarray(frame.reduce(n))
        for k, table in enumerate(label_tables, start=1):  # sub-pixels of label k per output pixel
            counts[f, :, :, k] = np.asarray(parts.point(table).reduce(n))
    counts[..., 0] = n * n - counts[..., 1:].sum(-1)
    info = {"action": action, "action_id": action_id, "split": split, "identity": identity.index,
            "top_colour": identity.top_colour, "bottom_colour": identity.bottom_colour,
            "top_texture": identity.top_texture, "bottom_texture": identity.bottom_texture,
            "top_style": identity.top_style, "bottom_style": identity.bottom_style,
            "top_rgb": [int(v) for v in top_rgb], "bottom_rgb": [int(v) for v in bottom_rgb],
            "skin_rgb": list(identity.skin), "hair_colour": identity.hair_colour, "hair_style": identity.hair_style,
            "background": background_kind, "cycles": round(cycles, 4), "amplitude": round(amp, 4),
            "phase": round(phase0, 4), "mirrored": mirrored, "nframes": frames}
    return PuppetClip(pixels, counts.argmax(-1).astype(np.uint8), keypoints, info)


def _files_complete(root: Path, meta: dict) -> bool:
    """``annotations.json`` is there; ``frames/`` and ``masks/`` hold the ``num_clips`` clip folders of ``meta``."""
    return (root / JSON_NAME).is_file() and all(
        count_entries(root / sub, lambda entry: entry.is_dir()) == meta.get("num_clips") for sub in ("frames", "masks"))


def _folder(root: str | Path, **settings: int) -> DatasetFolder:
    """``root`` as a ``puppets`` folder of this generator version (and of ``settings``: seed, num_clips, frames,
    size)."""
    return DatasetFolder(Path(root), {"name": "puppets", **settings, "generator_version": GENERATOR_VERSION},
                         complete=_files_complete)


def puppets_complete(root: str | Path, *, seed: int = 0, num_clips: int | None = None, frames: int = FRAMES,
                     size: int = IMAGE_SIZE) -> bool:
    """True when ``root`` holds the finished dataset of this generator version, seed, size and clip length."""
    return _folder(root, seed=seed, num_clips=NUM_CLIPS if num_clips is None else num_clips, frames=frames,
                   size=size).ready()


def puppets_ready(root: str | Path) -> bool:
    """``root`` holds a finished ``puppets`` folder of this generator version, of any seed and size
    (a smaller copy made for tests or demos is kept as it is)."""
    return _folder(root).ready()


def _categories() -> list[dict]:
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO17),
             "skeleton": [[a + 1, b + 1] for a, b in COCO17_LIMBS]}]  # COCO's skeleton is 1-based


def make_puppets(root: str | Path, *, seed: int = 0, progress: bool = True, num_clips: int | None = None,
                 frames: int = FRAMES, size: int = IMAGE_SIZE) -> Path:
    """Write the ``puppets`` dataset into ``root`` and return ``root`` (kept when a complete copy exists).

    ``num_clips`` defaults to 3,240 (360 per action); ``frames`` per clip (16 by default; 16-32 is the
    intended range) of ``size`` x ``size`` pixels. An interrupted, older-version or other-setting folder is
    rewritten.
    """
    root, num_clips = Path(root), NUM_CLIPS if num_clips is None else int(num_clips)
    if num_clips < 1:
        raise ValueError(f"num_clips must be positive, got {num_clips}")
    folder = _folder(root, seed=seed, num_clips=num_clips, frames=int(frames), size=int(size))
    if folder.ready():
        return root
    with folder.rewriting() as meta:
        for sub in ("frames", "masks"):  # a previous run of other settings
            shutil.rmtree(root / sub, ignore_errors=True)
        images, annotations, videos = [], [], []
        for index in tqdm(range(num_clips), desc="puppets: drawing clips", disable=not progress):
            clip = draw_puppet_clip(index, seed=seed, frames=frames, size=size)
            frame_dir, mask_dir = f"frames/{index:05d}", f"masks/{index:05d}"
            (root / frame_dir).mkdir(parents=True)
            (root / mask_dir).mkdir(parents=True)
            for f in range(frames):
                name = f"{f:03d}.png"
                Image.fromarray(clip.frames[f]).save(root / frame_dir / name)
                mask = Image.fromarray(clip.masks[f], mode="P")
                mask.putpalette(_MASK_PALETTE)
                mask.save(root / mask_dir / name)
                image_id = index * frames + f
                images.append({"id": image_id, "file_name": f"{frame_dir}/{name}", "mask_file": f"{mask_dir}/{name}",
                               "vid_id": index, "frame_id": f, "nframes": frames, "width": size, "height": size,
                               "is_labeled": True})
                ys, xs = np.nonzero(clip.masks[f])
                bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)] \
                    if len(xs) else [0, 0, 0, 0]
                keypoints = clip.keypoints[f]
                annotations.append({"id": image_id, "image_id": image_id, "track_id": 0, "category_id": 1,
                                    "keypoints": [round(float(v), 2) for v in keypoints.reshape(-1)],
                                    "num_keypoints": int((keypoints[:, 2] > 0).sum()), "bbox": bbox,
                                    "area": int(len(xs)), "iscrowd": 0})
            videos.append({"id": index, **clip.info, "frame_dir": frame_dir, "mask_dir": mask_dir})
        partial = root / (JSON_NAME + ".partial")
        partial.write_text(json.dumps({"images": images, "annotations": annotations, "categories": _categories(),
                                       "videos": videos}, separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(partial, root / JSON_NAME)
        counts = {split: sum(v["split"] == split for v in videos) for split in ("train", "val", "test")}
        meta.update({**folder.expected, "kind": "pose", "format": "posetrack-coco", "file": JSON_NAME,
                     "counts": counts, "actions": list(PUPPET_ACTIONS), "colours": list(PUPPET_COLOURS),
                     "textures": list(PUPPET_TEXTURES), "mask_labels": {str(k): v for k, v in MASK_LABELS.items()},
                     "num_identities": NUM_IDENTITIES, "keypoints": list(COCO17),
                     "source": "generated by crossmedia.data.builtin.puppets"})
    return root


@register_dataset("puppets", kind="pose", builtin=True, ready=puppets_ready, num_classes=len(PUPPET_ACTIONS),
                  summary="3,240 generated 16-frame 64x64 clips of puppet people, 9 actions, COCO-17 poses, "
                          "clothes masks")
def _prepare_puppets(root: Path, *, source: Path | None, seed: int, progress: bool) -> Path:
    return make_puppets(root, seed=seed, progress=progress)
