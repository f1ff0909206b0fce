"""Cold start of ``zoo.load("csq")`` + one forward, against a bare ``import torch``.

Each is timed in fresh Python processes (median of a few runs, baseline and subject
interleaved so machine load hits both alike). Ends with ``ratio: <load time / import-torch time>``
(goal ≤ 2.5: heavy imports stay lazy).

It also times three floors, fresh processes that only import what a ``zoo.load`` result needs
by design: ``import torch, pytorch_lightning`` (DESIGN.md: zoo.load returns a LightningModule),
that plus timm (csq's backbone is a timm model), and ``import torch, timm`` alone. On our 2-core
machine the Lightning floor alone is 3.3-3.6x ``import torch``: Lightning imports torchmetrics,
whose package import loads every functional metric and with them torchvision (which imports
torch._dynamo), transformers and scipy.signal. So the 2.5 goal cannot be met while ``zoo.load``
returns LightningModules; the floor lines show how much of the load time is ours (on the
zoo.load line of the report). The ``import torch, timm`` line is what even a plain
``nn.Module`` contract would start from: 2.3-2.5x here before any weights are read (timm imports
torchvision too), so with a timm backbone, as the hashing issue asks, the goal is out of reach
whatever ``zoo.load`` returns.
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
    print(f"zoo.load('csq') + forward:     {s:.2f} s (ours above the floor: {s - f:+.2f} s)")
    print(f"ratio: {s / b:.2f}")


if __name__ == "__main__":
    main()
