"""Cold start of ``zoo.load("csq")`` + one forward, against the import floor every zoo model needs.

The floor is ``import torch, pytorch_lightning, timm``: ``zoo.load`` returns a LightningModule
(DESIGN.md) and csq's backbone is a timm model. Each is timed in fresh Python processes (median
of a few runs, all commands interleaved so that machine load hits them alike). The report ends
with ``ratio: <load + forward time / floor time>`` (goal <= 1.10, issue 11's restatement of issue
2's cold-start goal: what ``zoo.load`` adds above the floor is ours to keep small).

The lines above it are context: ``import torch`` alone and the floors ``import torch, timm`` and
``import torch, pytorch_lightning``. On our 2-core machine the Lightning floor alone is 3.3-3.6x
``import torch``: Lightning imports torchmetrics, whose package import loads every functional
metric and with them torchvision (which imports torch._dynamo), transformers and scipy.signal;
timm imports torchvision too (2.3-2.5x). Lowering the floor would take a fork of one of them.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

BASELINE = "import torch"
TIMM = "import torch, timm"
LIGHTNING = "import torch, pytorch_lightning"
FLOOR = "import torch, pytorch_lightning, timm"
SUBJECT = (
    "import torch\n"
    "from crossmedia import zoo\n"
    "model = zoo.load('csq')\n"
    "with torch.no_grad():\n"
    "    model(torch.zeros(1, 3, 32, 32))\n"
)


def cold_start(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main(repeats: int = 5) -> None:
    cold_start(SUBJECT)  # warm the OS file cache once, as a user's second run would be
    runs = {code: [] for code in (BASELINE, TIMM, LIGHTNING, FLOOR, SUBJECT)}
    for _ in range(repeats):
        for code, times in runs.items():
            times.append(cold_start(code))
    b, t, l, f, s = (statistics.median(times) for times in runs.values())
    print(f"import torch:                  {b:.2f} s (median of {repeats})")
    print(f"import torch, timm:            {t:.2f} s (floor ratio {t / b:.2f})")
    print(f"import torch, lightning:       {l:.2f} s (floor ratio {l / b:.2f})")
    print(f"import torch, lightning, timm: {f:.2f} s (floor ratio {f / b:.2f})")
    print(f"zoo.load('csq') + forward:     {s:.2f} s (ours above the floor: {s - f:+.2f} s, "
          f"{s / b:.2f}x import torch)")
    print(f"ratio: {s / f:.2f}")


if __name__ == "__main__":
    main()
