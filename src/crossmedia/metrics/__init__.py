"""Metrics shared by tasks; this floor may import ``crossmedia.core`` and ``crossmedia.nn``, never ``tasks``.

- :mod:`.ranking`: ranking over a query × database score matrix: mAP@K by labels, R@K, median
  and mean rank (ties by database index), and the building blocks hashing's Hamming ranking uses.
- :mod:`.retrieval`: image–text retrieval as VSE++ evaluates it (R@1/5/10, median and mean rank
  both ways, rsum; COCO 1K folds and 5K), from one chunked similarity computation.
- :mod:`.gather`: rows of per-item outputs gathered from every DDP process, one per dataset index.
- :mod:`.image`: FID, KID, SSIM and PSNR (torchmetrics) on images in [0, 1], FID/KID on the
  features of a network of ours instead of a downloaded Inception.

Import from the submodule (``from crossmedia.metrics.ranking import recall_at_k``).
"""
