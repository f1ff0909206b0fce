"""Cold start of ``zoo.load("csq")`` + one forward, against a bare ``import torch``.

Each is timed in fresh Python processes (median of a few runs, baseline and subject
interleaved so machine load hits both alike). Ends with ``ratio: <load time / import-torch time>``
(goal ≤ 2.5: heavy imports stay lazy).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

BASELINE = "import torch"
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
    base, subject = [], []
    for _ in range(repeats):
        base.append(cold_start(BASELINE))
        subject.append(cold_start(SUBJECT))
    b, s = statistics.median(base), statistics.median(subject)
    print(f"import torch:              {b:.2f} s (median of {repeats})")
    print(f"zoo.load('csq') + forward: {s:.2f} s (median of {repeats})")
    print(f"ratio: {s / b:.2f}")


if __name__ == "__main__":
    main()
