"""Training steps/s at 1 and 2 intra-op threads across network sizes: the evidence for
``MDN(n_threads=1)``. Each configuration alternates the thread counts over repeats and
reports the median.

    .venv/bin/python benchmarks/threads.py            # about 5 minutes on 2 cores
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from data import make_data

from mdn.nn import MixtureDensityNetwork
from mdn.training import train

NETWORKS = ((32, 32), (100,) * 5, (256,) * 4, (512,) * 4)


def steps_per_s(hidden, batch: int, n_models: int | None, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    x, y = (torch.as_tensor(a, dtype=torch.float32) for a in make_data(10_000, 1, 0))
    network = MixtureDensityNetwork(7, 1, 5, hidden, n_models=n_models)
    generators = None if n_models is None else [torch.Generator() for _ in range(n_models)]
    settings = {"batch_size": batch, "clip_grad": 10.0, "generator": generators}
    train(network, x, y, n_iter=20, **settings)
    start = time.perf_counter()
    train(network, x, y, n_iter=steps, **settings)
    return steps / (time.perf_counter() - start)


def main() -> None:
    print(f"# torch {torch.__version__}; medians of 3, thread counts alternated\n")
    print("| hidden | batch | members | 1 thread steps/s | 2 threads steps/s | 2 vs 1 |")
    print("|---|---|---|---|---|---|")
    for hidden in NETWORKS:
        for batch in (128, 1024):
            for n_models in (None, 5):
                runs = {1: [], 2: []}
                steps = max(30, int(20_000 / (sum(hidden) * batch / 128 * (n_models or 1))))
                for _ in range(3):
                    for threads in (1, 2):
                        runs[threads].append(steps_per_s(hidden, batch, n_models, threads, steps))
                one, two = statistics.median(runs[1]), statistics.median(runs[2])
                label = f"{hidden[0]} x {len(hidden)}"
                print(f"| {label} | {batch} | {n_models or 1} | {one:.0f} | {two:.0f} | "
                      f"{two / one:.2f}x |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
