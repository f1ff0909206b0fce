"""Cold start of ``zoo.load("csq")`` + one forward, against a bare ``import torch``.

Each is timed in fresh Python processes (median of a few runs, baseline and subject
interleaved so machine load hits both alike). Ends with ``ratio: <load time / import-torch time>``
(goal ≤ 2.5: heavy imports stay lazy).

It also times the floor: importing what any ``zoo.load`` result needs by design — torch,
PyTorch Lightning (a zoo model is a LightningModule) and timm (csq's backbone). On our
2-core machine that floor alone is well above 2.5x ``import torch`` (Lightning pulls in
torchmetrics, which imports scipy.signal, matplotlib and torchvision, and torch._dynamo; importing
torch + Lightning alone took 2.9x), so the ratio cannot reach 2.5 while ``zoo.load`` returns
LightningModules; the floor line shows how much of the load time is ours.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

BASELINE = "import torch"
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
    base, floor, subject = [], [], []
    for _ in range(repeats):
        base.append(cold_start(BASELINE))
        floor.append(cold_start(FLOOR))
        subject.append(cold_start(SUBJECT))
    b, f, s = statistics.median(base), statistics.median(floor), statistics.median(subject)
    print(f"import torch:                  {b:.2f} s (median of {repeats})")
    print(f"import torch, lightning, timm: {f:.2f} s (floor ratio {f / b:.2f})")
    print(f"zoo.load('csq') + forward:     {s:.2f} s (ours above the floor: {s - f:+.2f} s)")
    print(f"ratio: {s / b:.2f}")


if __name__ == "__main__":
    main()
