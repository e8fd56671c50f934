"""Time the training steps of peer MDN libraries at the speed benchmark's configuration.

Runs inside the peers' own environment (``bash benchmarks/peers-venv.sh`` creates it)::

    benchmarks/.venv-peers/bin/python benchmarks/peers.py --peer NAME --d D \\
        --covariance {diag,full} --steps N

and prints one JSON line: ``peer``, ``version``, ``d``, ``covariance``, ``steps_per_s``,
``samples_per_s``, ``seconds``, ``steps``, ``note``. One process times one peer, so that
TensorFlow and torch never share a process and every framework runs on one thread.

The configuration is the reference one (7 inputs, 5 x 100 ReLU hidden layers, K=5, batches
of 128, Adam with lr 1e-3), each peer driven the way its documentation shows. Where a peer
cannot express a configuration, ``steps_per_s`` is null and ``note`` says why, citing the
peer's code. Where it can only approximate it, the numbers are measured and ``note`` says
what differs.
"""

from __future__ import annotations

import os

# Thread pools are sized when the frameworks load, so these must come before any import
# of numpy, torch or tensorflow.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's banner off stdout/err
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # keras-mdn-layer is tested on TF

import argparse
import json
import time
from collections.abc import Callable
from importlib.metadata import version as dist_version

import numpy as np
from data import N_INPUTS, make_data

HIDDEN = (100,) * 5
N_MIX = 5
BATCH = 128
LR = 1e-3
WEIGHT_DECAY = 2e-3  # the baseline's coupled L2 (reference l2 = 1e-3), where a peer takes it
WARMUP = 20
N_ROWS = 10_000

PEERS = ("scikit-mdn", "mixture-density-nets", "keras-mdn-layer")


def _caveats(d: int, covariance: str) -> str:
    """What the peer's diagonal model stands in for at this configuration."""
    if covariance == "full":
        return _D1_FULL
    return _PER_COLUMN if d > 1 else ""


def _time_loop(step: Callable[[], int], steps: int) -> dict:
    """Run ``WARMUP`` untimed calls of ``step`` (which returns the rows it trained on), then
    time ``steps`` calls."""
    for _ in range(WARMUP):
        step()
    samples = 0
    start = time.perf_counter()
    for _ in range(steps):
        samples += step()
    seconds = time.perf_counter() - start
    return {
        "steps_per_s": steps / seconds,
        "samples_per_s": samples / seconds,
        "seconds": seconds,
        "steps": steps,
    }


def _unsupported(note: str) -> dict:
    return {"steps_per_s": None, "samples_per_s": None, "seconds": None, "steps": 0, "note": note}


# Notes shared by the peers whose Gaussian components are diagonal.
_D1_FULL = (
    "D=1: a 1x1 covariance is just a variance, so the peer's diagonal model is the "
    "full-covariance model here; measured as such. "
)
# scikit-mdn and mixture-density-nets take the log-sum-exp over components per output column.
_PER_COLUMN = (
    "D>1: measured, but the peer's model is D independent 1-D mixtures sharing "
    "their weights (log-sum-exp over components per output column), not a joint "
    "D-dimensional diagonal mixture. "
)


def _torch_threads() -> None:
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    torch.manual_seed(0)


def run_scikit_mdn(d: int, covariance: str, steps: int) -> dict:
    """scikit-mdn (import ``skmdn``): a scikit-learn estimator over a fixed torch network.

    ``skmdn.MixtureDensityNetwork`` has exactly one hidden layer with a softplus activation
    (``hidden_layer = nn.Linear(input_dim, hidden_dim)``, ``F.softplus`` in ``forward``) and
    ``MixtureDensityEstimator`` exposes only ``hidden_dim``, so 5 x 100 ReLU cannot be asked
    for. ``fit`` takes one full-batch Adam step per "epoch"; minibatch training goes through
    ``partial_fit(X, y, n_epochs=1)``, the documented way to continue training on new data,
    which is what is timed here, one call per minibatch of 128 (it converts the NumPy batch
    to torch each call, as a user's loop would).
    """
    import skmdn

    _torch_threads()
    base = {"version": dist_version("scikit-mdn")}
    if covariance == "full" and d > 1:
        return base | _unsupported(
            "no full covariance: skmdn.MixtureDensityNetwork predicts one softplus sigma per "
            "component and output (sigma_layer: n_gaussians * output_dim) and mdn_loss uses "
            "torch.distributions.Normal; for output_dim > 1 mdn_loss even takes the "
            "logsumexp per output column (dim=1 of (N, K, D)), i.e. D independent 1-D "
            "mixtures, not a joint D-dimensional one. Its docs: 'predicts a distribution over "
            "a single output variable'."
        )
    x, y = make_data(N_ROWS, d)
    est = skmdn.MixtureDensityEstimator(
        hidden_dim=HIDDEN[0], n_gaussians=N_MIX, epochs=1, lr=LR, weight_decay=WEIGHT_DECAY
    )
    est.fit(x[:BATCH], y[:BATCH])  # creates model_ and optimizer_ (one full-batch step)
    rng = np.random.default_rng(0)
    state = {"order": rng.permutation(N_ROWS), "cursor": 0}

    def step() -> int:
        if state["cursor"] + BATCH > N_ROWS:  # new epoch: reshuffle, skip the short tail
            state["order"], state["cursor"] = rng.permutation(N_ROWS), 0
        index = state["order"][state["cursor"] : state["cursor"] + BATCH]
        state["cursor"] += BATCH
        est.partial_fit(x[index], y[index], n_epochs=1)
        return BATCH

    note = (
        "architecture fixed by the peer: ONE hidden layer of 100 softplus units "
        "(skmdn.MixtureDensityNetwork), not 5 x 100 ReLU, so each step does about a "
        "quarter of the reference network's work; minibatches via partial_fit(n_epochs=1) "
        "(fit itself is full-batch). Adam lr 1e-3, weight_decay 2e-3."
    )
    return base | _time_loop(step, steps) | {"note": _caveats(d, covariance) + note}


def run_mixture_density_nets(d: int, covariance: str, steps: int) -> dict:
    """mixture-density-nets (import ``mixture_density_nets``): a head module and a
    distribution class; the user writes the trunk and the loop, as its README shows
    (``mu, sigma, lambda_ = mdn(net(x)); loss = MDDistribution(mu, sigma, lambda_).nll(y)``).
    The trunk and loop are the baseline's (``nn.Sequential``, plain Adam, shuffling
    ``DataLoader``), so the difference measured is the head and the loss.
    """
    import mixture_density_nets as mdnets
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    _torch_threads()
    base = {"version": dist_version("mixture-density-nets")}
    if covariance == "full" and d > 1:
        return base | _unsupported(
            "no full covariance: mixture_density_nets.MDN has sigma_head = "
            "nn.Linear(in_dim, n_components * out_dim) and MDDistribution wraps "
            "torch.distributions.Normal(mu, sigma); for out_dim > 1 MDDistribution.log_prob "
            "takes the logsumexp over components per output column (returns (N, D)), "
            "i.e. D independent 1-D mixtures, not a joint D-dimensional one."
        )
    x, y = make_data(N_ROWS, d)
    layers: list[nn.Module] = []
    width = N_INPUTS
    for h in HIDDEN:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    trunk = nn.Sequential(*layers)
    head = mdnets.MDN(width, d, N_MIX)
    params = [*trunk.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=LR, weight_decay=WEIGHT_DECAY)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=BATCH, shuffle=True
    )

    def forever():
        while True:
            yield from loader

    batches = forever()

    def step() -> int:
        xb, yb = next(batches)
        optimizer.zero_grad()
        mu, sigma, lambda_ = head(trunk(xb))
        loss = mdnets.MDDistribution(mu, sigma, lambda_).nll(yb).mean()
        loss.backward()
        optimizer.step()
        return len(xb)

    note = (
        "reference configuration; trunk, plain Adam (lr 1e-3, weight_decay 2e-3) and "
        "DataLoader(shuffle=True) as in the baseline; the peer supplies the head and NLL."
    )
    return base | _time_loop(step, steps) | {"note": _caveats(d, covariance) + note}


def run_keras_mdn_layer(d: int, covariance: str, steps: int) -> dict:
    """keras-mdn-layer (import ``keras_mdn_layer``) on Keras 3 with the TensorFlow backend,
    used as its README shows: ``keras.Sequential`` of Dense layers ending in ``mdn.MDN``,
    ``compile(loss=mdn.get_mixture_loss_func(D, K), optimizer=keras.optimizers.Adam())`` and
    ``model.fit``. Timed: one ``model.fit(dataset, steps_per_epoch=steps, epochs=1)`` call on
    a shuffled, batched, repeating ``tf.data`` pipeline, after a first ``fit`` of ``WARMUP``
    steps that traces and compiles the train function (Keras keeps it for later calls).
    """
    base = {"version": dist_version("keras-mdn-layer")}
    if covariance == "full" and d > 1:
        return base | _unsupported(
            "no full covariance: keras_mdn_layer.MDN outputs one sigma per component and "
            "output (mdn_sigmas: Dense(num_mix * output_dim)) and _mdn_log_prob is the "
            "diagonal-covariance normal, 'N(y | mu_k, sigma_k^2 I)' per its docstring and "
            "README ('a mixture of multivariate normal distributions with a diagonal "
            "covariance matrix')."
        )
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import keras_mdn_layer as mdn

    keras.utils.set_random_seed(0)
    x, y = make_data(N_ROWS, d)
    model = keras.Sequential(
        [keras.Input(shape=(N_INPUTS,))]
        + [keras.layers.Dense(h, activation="relu") for h in HIDDEN]
        + [mdn.MDN(d, N_MIX)]
    )
    model.compile(
        loss=mdn.get_mixture_loss_func(d, N_MIX), optimizer=keras.optimizers.Adam(learning_rate=LR)
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1  # tf.data has its own pool: one thread too
    options.threading.max_intra_op_parallelism = 1
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(N_ROWS, seed=0)
        .batch(BATCH, drop_remainder=True)
        .repeat()
        .prefetch(1)
        .with_options(options)
    )
    # shuffle=False only silences Keras's warning: the dataset itself reshuffles every pass.
    fit = {"epochs": 1, "verbose": 0, "shuffle": False}
    model.fit(dataset, steps_per_epoch=WARMUP, **fit)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, **fit)
    seconds = time.perf_counter() - start
    note = (
        f"reference architecture (5 x 100 ReLU Dense + mdn.MDN), Keras {keras.__version__} "
        f"on TensorFlow {tf.__version__}, jit_compile={model.jit_compile} (Keras's 'auto' "
        "turns XLA off on CPU), 1 intra/inter-op thread; the timed model.fit call "
        "includes its per-call overhead; Adam without weight decay (the README's usage)."
    )
    if covariance == "full":
        note = _D1_FULL + note
    return base | {
        "steps_per_s": steps / seconds,
        "samples_per_s": steps * BATCH / seconds,
        "seconds": seconds,
        "steps": steps,
        "note": note,
    }


RUNNERS = {
    "scikit-mdn": run_scikit_mdn,
    "mixture-density-nets": run_mixture_density_nets,
    "keras-mdn-layer": run_keras_mdn_layer,
}


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, time one peer at one configuration, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=PEERS, required=True)
    parser.add_argument("--d", type=int, default=1, help="target dimension D")
    parser.add_argument("--covariance", choices=("diag", "full"), default="diag")
    parser.add_argument("--steps", type=int, default=300, help="timed training steps")
    args = parser.parse_args(argv)
    result = {"peer": args.peer, "d": args.d, "covariance": args.covariance}
    result |= RUNNERS[args.peer](args.d, args.covariance, args.steps)
    order = (
        "peer",
        "version",
        "d",
        "covariance",
        "steps_per_s",
        "samples_per_s",
        "seconds",
        "steps",
        "note",
    )
    line = {key: result.get(key) for key in order}
    print(json.dumps(line), flush=True)
    return line


if __name__ == "__main__":
    main()
