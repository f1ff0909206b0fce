"""Video captioning inside the caption task (issue 15): ST-XlanV (Huang et al., "Semantic Tag Augmented
XlanV Model for Video Captioning", ACM MM 2021) and its tag networks.

* :mod:`.tags` — the content tag network (a frame classifier) and the action tag network (a small
  3-D CNN over clip segments), trained on the built-in puppet clips.
* :mod:`.features` — the batched extractor of the three streams (per-frame appearance, per-segment
  motion, top content / action tags), written as h5 files keyed by video id.
* :mod:`.models` / :mod:`.pretrain` / :mod:`.module` / :mod:`.data` — the ST-XlanV network, its
  pre-training tasks (TAP, MLM, VCAP), the LightningModule and the DataModule over features.
"""
