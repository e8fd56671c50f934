"""Speed of mdn against a plain torch.distributions MDN and the peer libraries.

One run measures every contender side by side: the training configurations are
interleaved (each repeat times every contender once, in turn) and the table reports the
median over repeats. Run it on a quiet machine:

    .venv/bin/python benchmarks/speed.py               # about 12 minutes on 2 cores
    .venv/bin/python benchmarks/speed.py --quick       # fewer steps and repeats
    .venv/bin/python benchmarks/speed.py --onnx-only   # ONNX prediction only, a few minutes

Peers run in their own environment (``bash benchmarks/peers-venv.sh``), one subprocess per
measurement so that TensorFlow and torch never share a process; without it they are
reported as not installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import itertools

from baseline import make_data, time_baseline

from mdn.nn import MixtureDensityNetwork
from mdn.training import train

HERE = Path(__file__).parent
PEER_PYTHON = HERE / ".venv-peers" / "bin" / "python"
PEERS = ("scikit-mdn", "mixture-density-nets", "keras-mdn-layer")
CONFIGS = ((1, "diag"), (1, "full"), (3, "full"))
HIDDEN, N_MIX, BATCH, ROWS = (100,) * 5, 5, 128, 10_000


def time_mdn(
    d: int,
    covariance: str,
    steps: int,
    n_models: int | None = None,
    compiled: bool = False,
    hidden=HIDDEN,
    activation: str = "relu",
    ema_decay: float | None = None,
) -> dict:
    """Steps/s of ``mdn.training.train`` at the reference configuration (clipping on)."""
    x, y = (torch.as_tensor(a, dtype=torch.float32) for a in make_data(ROWS, d, 0))
    torch.manual_seed(0)
    network = MixtureDensityNetwork(7, d, N_MIX, hidden, activation, covariance, n_models=n_models)
    generators = (
        None if n_models is None else [torch.Generator().manual_seed(e) for e in range(n_models)]
    )
    loss_fn = None
    compile_s = 0.0
    if compiled:
        from mdn.training import member_nll

        loss_fn = torch.compile(lambda xb, yb: member_nll(network, xb, yb))
        start = time.perf_counter()
        train(network, x, y, n_iter=2, generator=generators, loss_fn=loss_fn, clip_grad=10.0)
        compile_s = time.perf_counter() - start
    settings = {
        "generator": generators,
        "loss_fn": loss_fn,
        "clip_grad": 10.0,
        "ema_decay": ema_decay,
    }
    train(network, x, y, n_iter=20, **settings)  # warm-up
    start = time.perf_counter()
    train(network, x, y, n_iter=steps, **settings)
    seconds = time.perf_counter() - start
    return {
        "steps_per_s": steps / seconds,
        "samples_per_s": steps * BATCH / seconds,
        "compile_s": compile_s,
    }


def time_peer(peer: str, d: int, covariance: str, steps: int) -> dict:
    if not PEER_PYTHON.exists():
        return {"steps_per_s": None, "note": "not installed: bash benchmarks/peers-venv.sh"}
    run = subprocess.run(
        [
            str(PEER_PYTHON),
            str(HERE / "peers.py"),
            "--peer",
            peer,
            "--d",
            str(d),
            "--covariance",
            covariance,
            "--steps",
            str(steps),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode or not lines:
        return {"steps_per_s": None, "note": f"failed: {run.stderr.strip()[-300:]}"}
    return json.loads(lines[-1])


def matmul_peak(threads: int) -> float:
    """Measured fp32 GFLOP/s of a 2048^3 matrix product (best of 5)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(5))
    return 2 * 2048**3 / best / 1e9


def _seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def forward_flops(d: int, covariance: str) -> int:
    """Multiply-adds x 2 of one row through the reference network."""
    widths = [7, *HIDDEN]
    scale = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance]
    widths.append(N_MIX * (1 + d + scale))
    return 2 * sum(a * b for a, b in itertools.pairwise(widths))


# Code run in a fresh process (also by before_after.py): a one-network MDN fitted on 1 thread,
# then 2 threads and ``X`` of ``rows`` rows to predict, after a warm-up prediction.
FITTED_1D = """
import time, numpy as np, torch, mdn
torch.set_num_threads(1)
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 7)); y = x[:, 0] + 0.1 * rng.normal(size=2000)
model = mdn.MDN(n_models=1, n_iter=50, verbose=0, random_state=0).fit(x, y)
torch.set_num_threads(2)
X = rng.normal(size=({rows}, 7))
model.predict(X[:100_000])
"""
FITTED_3D_FULL = """
import time, numpy as np, torch, mdn
torch.set_num_threads(1)
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 7)); y = x[:, :3] + 0.1 * rng.normal(size=(2000, 3))
model = mdn.MDN(n_models=1, n_iter=50, verbose=0, random_state=0, covariance="full").fit(x, y)
torch.set_num_threads(2)
model.predict_interval(rng.normal(size=(1000, 7)), coverage=0.9)
X = rng.normal(size=({rows}, 7))
"""


def prediction(rows: int) -> dict:
    """Rows/s and peak memory of ``MDN.predict`` in a fresh process (2 threads)."""
    code = (
        "import resource\n"
        + FITTED_1D.format(rows=rows)
        + """
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter(); out = model.predict(X); seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(seconds, before, peak, out.nbytes)
"""
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, before, peak, out_bytes = (float(v) for v in run.stdout.split())
    growth_mib = (peak - before) / 1024  # ru_maxrss is in KiB on Linux
    return {
        "rows": rows,
        "rows_per_s": rows / seconds,
        "seconds": seconds,
        "peak_growth_mib": growth_mib,
        "output_mib": out_bytes / 2**20,
    }


def interval(rows: int = 100_000) -> dict:
    """Rows/s of ``MDN.predict_interval`` with D=3 full covariances in a fresh process.

    Public API only (``MDN``, ``fit``, ``predict_interval``), so that it measures old and new
    versions of the package alike; fitted on 1 thread, timed on 2 after a warm-up on 1000 rows.
    """
    code = (
        FITTED_3D_FULL.format(rows=rows)
        + """
start = time.perf_counter(); model.predict_interval(X, coverage=0.9)
print(time.perf_counter() - start)
"""
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds = float(run.stdout.split()[-1])
    return {"rows": rows, "rows_per_s": rows / seconds, "seconds": seconds}


# Code run in a fresh process: the reference network (7 inputs, 5 x 100 ReLU, K=5) with D
# full targets and E members, fitted briefly and exported; then MDN.predict,
# OnnxPredictor.predict and the bare onnxruntime session on ``rows`` rows, on ``threads``
# threads each, after a warm-up; the repeats interleave the three, and each keeps its best.
ONNX_SPEED = """
import json, os, tempfile, time
import numpy as np, onnxruntime, torch, mdn
from mdn.onnx import OnnxPredictor
torch.set_num_threads(1)
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 7)); y = x[:, :{d}] + 0.1 * rng.normal(size=(2000, {d}))
model = mdn.MDN(n_models={members}, n_iter=50, verbose=0, random_state=0).fit(x, y)
path = os.path.join(tempfile.mkdtemp(), "model.onnx")
model.export_onnx(path)
torch.set_num_threads({threads})
predictor = OnnxPredictor(path, n_threads={threads})
options = onnxruntime.SessionOptions(); options.intra_op_num_threads = {threads}
session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
X = rng.normal(size=({rows}, 7))
step = 8192 // {members}

def graph():
    for start in range(0, len(X), step):
        session.run(None, {{"X": X[start:start + step]}})

work = {{"mdn": lambda: model.predict(X), "onnx": lambda: predictor.predict(X), "graph": graph}}
seconds = {{name: [] for name in work}}
for name, run in work.items():
    run()  # warm-up
for _ in range({repeats}):
    for name, run in work.items():
        start = time.perf_counter(); run(); seconds[name].append(time.perf_counter() - start)
print(json.dumps({{name: {rows} / min(times) for name, times in seconds.items()}}))
"""


def onnx_speed(d: int, members: int, rows: int, threads: int, repeats: int = 3) -> dict:
    """Rows/s of ``MDN.predict``, ``OnnxPredictor.predict`` and the exported graph alone
    (``onnxruntime.InferenceSession.run``) for the reference network, in a fresh process."""
    code = ONNX_SPEED.format(d=d, members=members, rows=rows, threads=threads, repeats=repeats)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.splitlines()[-1])


def print_onnx_table(rows: int, threads: int) -> None:
    print(f"\n## Prediction without PyTorch: ONNX (reference network, {rows:.0e} rows)\n")
    print(f"point 'top', {threads} thread(s); ensembles take the median of their members\n")
    print("| targets | members | MDN.predict rows/s | OnnxPredictor.predict rows/s "
          "| onnxruntime graph alone rows/s | OnnxPredictor / MDN |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for d in (1, 3):
        for members in (1, 5):
            r = onnx_speed(d, members, rows, threads)
            print(
                f"| D={d} full | {members} | {r['mdn']:,.0f} | {r['onnx']:,.0f} | "
                f"{r['graph']:,.0f} | {r['onnx'] / r['mdn']:.2f}x |",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 steps, 2 repeats, 10^6 rows")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--onnx-only", action="store_true", help="only the ONNX prediction table")
    parser.add_argument("--onnx-threads", type=int, default=2, help="threads of the ONNX table")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 200, 2
    if args.onnx_only:
        print_onnx_table(10**5 if args.quick else 10**6, args.onnx_threads)
        return
    torch.set_num_threads(1)
    print(
        f"# machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch thread(s) for training, torch {torch.__version__}"
    )

    contenders = {
        "mdn": lambda d, c: time_mdn(d, c, args.steps),
        "mdn + weight averaging (ema_decay=0.99)": lambda d, c: time_mdn(
            d, c, args.steps, ema_decay=0.99
        ),
        "torch.distributions baseline": lambda d, c: time_baseline(d, c, args.steps),
    }
    if args.compile:
        contenders["mdn + torch.compile"] = lambda d, c: time_mdn(d, c, args.steps, compiled=True)
    if not args.no_peers:
        # scikit-mdn fixes its network at one hidden layer of 100 softplus units: this row
        # is mdn at that configuration, to compare with it at equal footing.
        contenders["mdn, 1 x 100 softplus (scikit-mdn's net)"] = lambda d, c: time_mdn(
            d, c, args.steps, hidden=(100,), activation="softplus"
        )
        for peer in PEERS:
            contenders[peer] = lambda d, c, peer=peer: time_peer(peer, d, c, args.steps)
    results: dict[tuple, list[dict]] = {}
    for repeat in range(args.repeats):
        for d, covariance in CONFIGS:
            for name, measure in contenders.items():
                outcome = measure(d, covariance)
                results.setdefault((name, d, covariance), []).append(outcome)
                torch.set_num_threads(1)
        print(f"# repeat {repeat + 1}/{args.repeats} done", flush=True)

    print(
        "\n## Training throughput (reference network: 7 inputs, 5 x 100 ReLU, K=5, "
        f"batch {BATCH}; 1 thread; median of {args.repeats})\n"
    )
    header = "| contender | " + " | ".join(f"D={d} {c} steps/s" for d, c in CONFIGS)
    print(header + " | vs baseline (D=1 diag) |")
    print("|---" * (len(CONFIGS) + 2) + "|")
    medians = {}
    for key, runs in results.items():
        speeds = [r["steps_per_s"] for r in runs if r.get("steps_per_s")]
        medians[key] = statistics.median(speeds) if speeds else None
    for name in contenders:
        cells = [
            f"{medians[(name, d, c)]:.0f}" if medians[(name, d, c)] else "n/a" for d, c in CONFIGS
        ]
        base = medians[("torch.distributions baseline", 1, "diag")]
        mine = medians[(name, 1, "diag")]
        ratio = f"{mine / base:.2f}x" if mine and base else "n/a"
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
    notes = {
        r.get("note")
        for (name, *_), runs in results.items()
        if name in PEERS
        for r in runs
        if r.get("note")
    }
    for note in sorted(n for n in notes if n):
        print(f"- {note}")

    print("\n## 10-member ensemble, 10,000 steps (1 and 2 threads)\n")
    ensemble_steps = max(200, args.steps)
    print(
        "| how | threads | ms/step | wall for 10,000 steps (s) | vs 10 sequential baseline fits |"
    )
    print("|---|---|---|---|---|")
    base_ms = 1e3 / medians[("torch.distributions baseline", 1, "diag")]
    mdn_ms = 1e3 / medians[("mdn", 1, "diag")]
    rows = [
        ("10 sequential baseline fits", 1, 10 * base_ms),
        ("10 sequential mdn fits", 1, 10 * mdn_ms),
    ]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        if threads > 1:
            speed = statistics.median(
                time_baseline(1, "diag", args.steps, threads=threads)["steps_per_s"]
                for _ in range(args.repeats)
            )
            rows.append(("10 sequential baseline fits", threads, 10e3 / speed))
        speed = statistics.median(
            time_mdn(1, "diag", ensemble_steps, n_models=10)["steps_per_s"]
            for _ in range(args.repeats)
        )
        rows.append(("mdn batched ensemble (n_models=10)", threads, 1e3 / speed))
    torch.set_num_threads(1)
    for how, threads, ms in rows:
        print(f"| {how} | {threads} | {ms:.2f} | {ms * 10:.0f} | {10 * base_ms / ms:.1f}x |")
    print("(wall times are the measured ms/step x 10,000; D=1 diag)")

    print("\n## Prediction, MDN.predict (reference network, D=1, 2 threads)\n")
    print("| rows | rows/s | seconds | peak memory growth (MiB) | output array (MiB) |")
    print("|---|---|---|---|---|")
    for rows in (10**6,) if args.quick else (10**6, 10**7):
        p = prediction(rows)
        print(
            f"| {rows:.0e} | {p['rows_per_s']:,.0f} | {p['seconds']:.2f} | "
            f"{p['peak_growth_mib']:.0f} | {p['output_mib']:.0f} |"
        )

    print("\n## Prediction intervals, D=3 full, 10^5 rows\n")
    print("MDN.predict_interval(X, coverage=0.9), n_models=1, 2 threads\n")
    print("| rows | rows/s | seconds |")
    print("|---|---|---|")
    q = interval(100_000)
    print(f"| {q['rows']:.0e} | {q['rows_per_s']:,.0f} | {q['seconds']:.2f} |")

    print_onnx_table(10**5 if args.quick else 10**6, args.onnx_threads)

    print("\n## Achieved GFLOP/s against the measured fp32 matmul peak\n")
    peaks = {t: matmul_peak(t) for t in (1, 2)}
    torch.set_num_threads(1)
    train_flops = 3 * forward_flops(1, "diag") * BATCH  # forward + two backward products
    print("| work | threads | GFLOP/s | peak GFLOP/s | share of peak |")
    print("|---|---|---|---|---|")
    for name in ("mdn", "torch.distributions baseline"):
        achieved = train_flops * medians[(name, 1, "diag")] / 1e9
        print(
            f"| training step, {name} | 1 | {achieved:.1f} | {peaks[1]:.0f} | "
            f"{achieved / peaks[1]:.0%} |"
        )
    p = prediction(10**6)
    achieved = forward_flops(1, "diag") * p["rows_per_s"] / 1e9
    print(f"| prediction | 2 | {achieved:.1f} | {peaks[2]:.0f} | {achieved / peaks[2]:.0%} |")


if __name__ == "__main__":
    main()
