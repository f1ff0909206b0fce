"""COCO-17 keypoints: joint order, skeleton, left/right flip pairs (and, below, rendering to maps).

The joint order and the skeleton are those of the COCO keypoint annotations (Lin et al., "Microsoft
COCO: Common Objects in Context", ECCV 2014; the ``person`` category's ``keypoints`` and
``skeleton`` fields). COCO's skeleton is 1-based; :data:`COCO17_LIMBS` holds the same 19 pairs
0-based, in COCO's order.
"""
from __future__ import annotations

__all__ = [
    "COCO17",
    "COCO17_LIMBS",
    "FLIP",
    "NUM_JOINTS",
    "NUM_LIMBS",
]

COCO17: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# COCO's ``skeleton`` (1-based) minus one: legs, hips, torso, arms, face.
COCO17_LIMBS: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# Left/right joint pairs swapped by a horizontal flip (indices into COCO17).
FLIP: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

NUM_JOINTS = len(COCO17)
NUM_LIMBS = len(COCO17_LIMBS)
