"""Per-pixel retrieval over a synthetic scene: pixels/s and peak memory of the estimate and
the 90 % interval, in memory (``MDN.predict`` + ``predict_interval``) and streamed
(``mdn.raster.predict`` on dask's threads, and on a ``LocalCluster`` of 1 and 2 worker
processes), and peak memory for 1x and 4x the scene.

The scene is size x size pixels of 7 Sentinel-2 MSI bands, drawn from spectra of
``mdn.datasets.simulate_ocean_colour`` (so the solver sees realistic mixtures), with 10 % of
the pixels NaN; it is generated block by block, so that a streamed run never holds it. The
model is the default ``MDN(target_transform="log")`` (5 members of 5 x 100), briefly
fitted: speed does not depend on training; every case uses its default point estimate (the
median of the members' medians, for a log target). Every case runs in its own process,
whose peak memory is the largest sum of the resident memory of it and its children
(cluster workers), polled every 50 ms.

    .venv/bin/python benchmarks/scene.py               # 4000 x 4000: hours on 2 cores
    .venv/bin/python benchmarks/scene.py --size 500    # a smaller scene
    .venv/bin/python benchmarks/scene.py --size 1000 --chunks 250 --cases cluster-1,cluster-2 \
        --repeats 2                                      # some cases, alternated, best of 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

SENTINEL2_TILE = 10980**2  # pixels of one 100 km tile at 10 m
CASES = {
    "memory": "(a) in memory: MDN.predict + predict_interval, torch's threads",
    "memory-1": "(a) in memory: MDN.predict + predict_interval, 1 torch thread",
    "memory-one-pass": "(a') in memory: raster.predict_pixels (one network pass), 1 thread",
    "threads": "(b) raster.predict, dask threads, into memory",
    "threads-zarr": "(b) raster.predict, dask threads, written to Zarr",
    "cluster-1": "(c) LocalCluster, 1 worker process, written to Zarr",
    "cluster-2": "(c) LocalCluster, 2 worker processes, written to Zarr",
}
BANDS = 7


class PeakMemory:
    """The largest resident memory of this process and its children, polled in a thread."""

    def __init__(self, every: float = 0.05) -> None:
        import psutil

        self.process, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # a child that ended between the listing and the read
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


class Clock:
    """Wall time, and CPU time of this process and its children (a cluster's workers, alive
    throughout): on a machine that other jobs share, CPU seconds per pixel still compare."""

    def __enter__(self) -> Clock:
        self.seconds, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.seconds
        self.cpu = _cpu_seconds() - self.cpu


def _cpu_seconds() -> float:
    import psutil

    process = psutil.Process()
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        try:
            times = each.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def fit_model(path: Path) -> None:
    import pandas as pd

    from mdn import MDN, sensors
    from mdn.datasets import simulate_ocean_colour

    X, y = simulate_ocean_colour(5000, "msi", random_state=0)
    frame = pd.DataFrame(X, columns=sensors.sensor("msi").columns())
    model = MDN(target_transform="log", n_iter=100, verbose=0, random_state=0)
    model.fit(frame, pd.Series(y[:, 0], name="chl")).save(path)


def _block(pool: np.ndarray, seed: int, block_info=None) -> np.ndarray:
    """One block of the scene: spectra drawn from the pool, 10 % of the pixels NaN."""
    info = block_info[None]
    shape = info["chunk-shape"][1:]
    rng = np.random.default_rng([seed, *info["chunk-location"]])
    n = shape[0] * shape[1]
    values = pool[rng.integers(0, len(pool), n)]
    values[rng.random(n) < 0.1] = np.nan
    return values.T.reshape(BANDS, *shape)


def scene(size: int, chunks: int):
    """The lazy scene: a Dataset of 7 bands (dask arrays), generated block by block."""
    import dask
    import dask.array as da
    import xarray as xr

    from mdn.datasets import simulate_ocean_colour
    from mdn.ocean import sensors

    pool = simulate_ocean_colour(20_000, "msi", random_state=1)[0].astype(np.float32)
    sides = da.core.normalize_chunks(chunks, (size, size))
    cube = da.map_blocks(_block, dask.delayed(pool), 7, dtype=np.float32,
                         chunks=((BANDS,), *sides))  # fmt: skip
    names = sensors.sensor("msi").columns()
    return xr.Dataset({name: (("y", "x"), cube[i]) for i, name in enumerate(names)})


def _in_memory(model, cube: np.ndarray, one_pass: bool) -> np.ndarray:
    """Estimate, lower and upper bound of every pixel, as a user would with a table."""
    from mdn import raster

    pixels = cube.reshape(BANDS, -1).T
    valid = np.isfinite(pixels).all(axis=1)
    X = pixels[valid]
    outputs = np.full((3, pixels.shape[0]), np.nan, dtype=np.float32)
    if one_pass:
        outputs[:, valid] = raster.predict_pixels(model, X, coverage=0.9)[:3, :, 0]
    else:
        outputs[0, valid] = model.predict(X)
        outputs[1, valid], outputs[2, valid] = model.predict_interval(X, coverage=0.9)
    return outputs


def run_memory(model_path: Path, size: int, chunks: int, case: str) -> Clock:
    import torch

    from mdn import MDN

    if case in ("memory-1", "memory-one-pass"):
        torch.set_num_threads(1)
    one_pass = case == "memory-one-pass"
    model = MDN.load(model_path)
    cube = np.stack([v.values for v in scene(size, chunks).data_vars.values()])  # [b, y, x]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        _in_memory(model, cube[:, :32, :32], one_pass)  # torch's first calls cost more
        with Clock() as clock:
            _in_memory(model, cube, one_pass)
        return clock


def run_streamed(model_path: Path, size: int, chunks: int, case: str, folder: Path) -> Clock:
    from mdn import raster

    out = raster.predict(model_path, scene(size, chunks), interval=0.9)
    if not case.startswith("cluster"):
        raster.predict(model_path, scene(64, 32), interval=0.9).compute()  # warm up
    if case == "threads":
        with Clock() as clock:
            out.compute()
        return clock
    if case == "threads-zarr":
        with Clock() as clock:
            raster.write_scene(out, folder / f"{case}-{size}.zarr")
        return clock
    from mdn.raster.cluster import local_cluster

    with local_cluster(int(case.split("-")[1])) as client:
        # every worker imports torch and loads the model before the clock starts
        warm = raster.predict(model_path, scene(64, 32), interval=0.9)
        client.compute(warm).result()
        with Clock() as clock:
            raster.write_scene(out, folder / f"{case}-{size}.zarr")
        return clock


def child(args: argparse.Namespace) -> None:
    monitor = PeakMemory()
    if args.case.startswith("memory"):
        clock = run_memory(args.model, args.size, args.chunks, args.case)
    else:
        clock = run_streamed(args.model, args.size, args.chunks, args.case, args.folder)
    peak = monitor.stop()
    print(json.dumps({"case": args.case, "size": args.size, "seconds": clock.seconds,
                      "pixels_per_s": args.size**2 / clock.seconds, "peak_mb": peak,
                      "cpu_s_per_mpx": clock.cpu / args.size**2 * 1e6}))  # fmt: skip


def measure(case: str, size: int, chunks: int, model: Path, folder: Path) -> dict:
    command = [sys.executable, __file__, "--case", case, "--size", str(size), "--chunks",
               str(chunks), "--model", str(model), "--folder", str(folder)]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"# {case} at {size} x {size}: {result['seconds']:.1f} s, "
          f"{result['pixels_per_s']:,.0f} pixels/s, {result['cpu_s_per_mpx']:.0f} CPU s per "
          f"million pixels, peak {result['peak_mb']:,.0f} MB",
          file=sys.stderr, flush=True)  # fmt: skip
    return result


def report(args: argparse.Namespace, results: dict, larger: dict) -> None:
    import torch

    print(f"\n{args.size} x {args.size} pixels x 7 bands, 10 % NaN; default model "
          f"(5 members), estimate + 90 % interval; blocks of {args.chunks} x {args.chunks}; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads by default), "
          f"{os.cpu_count()} CPUs; best of {args.repeats}\n")  # fmt: skip
    in_memory = [results[c]["pixels_per_s"] for c in ("memory", "memory-1") if c in results]
    base = max(in_memory, default=math.nan)
    print("| case | pixels/s | vs the faster (a) | CPU s per million pixels | peak memory (MB) |")
    print("|---|---|---|---|---|")
    for case, r in results.items():
        print(f"| {CASES[case]} | {r['pixels_per_s']:,.0f} | {r['pixels_per_s'] / base:.2f}x | "
              f"{r['cpu_s_per_mpx']:.0f} | {r['peak_mb']:,.0f} |")  # fmt: skip
    if {"cluster-1", "cluster-2"} <= set(results):
        two, one = results["cluster-2"]["pixels_per_s"], results["cluster-1"]["pixels_per_s"]
        print(f"\n2 workers / 1 worker: {two / one:.2f}x")
    if larger:
        print("\n| peak memory (MB) | 1x | 4x |")
        print("|---|---|---|")
    for case, r in larger.items():
        print(f"| {CASES[case]} | {results[case]['peak_mb']:,.0f} | {r['peak_mb']:,.0f} |")
    for case in ("threads-zarr", "cluster-2"):
        if case in results:
            hours = SENTINEL2_TILE / results[case]["pixels_per_s"] / 3600
            print(f"\nA Sentinel-2 tile (1.2e8 pixels) by {CASES[case]}: {hours:.2f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4000, help="pixels per side (4000)")
    parser.add_argument("--chunks", type=int, default=512, help="pixels per block side (512)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated (all)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case, alternated; "
                        "the fastest is reported (1)")  # fmt: skip
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args)
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        model = folder / "model.safetensors"
        fit_model(model)
        runs = {case: [] for case in cases}
        for _ in range(args.repeats):  # alternated, so that a busy spell hits every case
            for case in cases:
                runs[case].append(measure(case, args.size, args.chunks, model, folder))
        results = {c: max(r, key=lambda x: x["pixels_per_s"]) for c, r in runs.items()}
        larger = {
            case: measure(case, 2 * args.size, args.chunks, model, folder)
            for case in ("threads", "threads-zarr")
            if case in cases
        }
    report(args, results, larger)


if __name__ == "__main__":
    main()
