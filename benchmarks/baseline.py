"""A plain ``torch.distributions`` MDN written the obvious way: the speed benchmark's baseline.

This is the code most people would write for the reference configuration (7 inputs, 5 x 100
ReLU hidden layers, K=5 components, batches of 128, Adam with lr 1e-3) without the mdn
package: an ``nn.Sequential`` trunk, one ``nn.Linear`` head, the mixture rebuilt each step
from ``torch.distributions`` (``MixtureSameFamily`` over ``Independent(Normal)`` for diagonal
covariances, over ``MultivariateNormal(scale_tril=...)`` for full ones), the loss
``-dist.log_prob(y).mean()``, a plain ``torch.optim.Adam`` and minibatches from a shuffling
``DataLoader``. Nothing is tuned: distribution argument validation stays at torch's default
(on), Adam uses its default (for-loop) CPU implementation, and denormals are not flushed.

Run ``python benchmarks/baseline.py`` for a smoke run: it trains briefly, prints the training
NLL and times a few hundred steps per configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from data import N_INPUTS, make_data
from torch import nn
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
)
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["BaselineMDN", "time_baseline", "train_baseline"]

HIDDEN = (100,) * 5
N_MIX = 5
BATCH = 128
LR = 1e-3
# Coupled L2 ``l2 * sum(W**2)`` with the reference l2 = 1e-3 is Adam's weight_decay = 2 * l2;
# the obvious code applies it to every parameter, biases included.
WEIGHT_DECAY = 2e-3
EPS = 1e-3  # added to every standard deviation / Cholesky diagonal so none reaches zero
WARMUP = 20


class BaselineMDN(nn.Module):
    """MLP trunk and linear head whose forward pass returns a ``torch.distributions`` mixture.

    Parameters
    ----------
    d : int
        Target dimension D.
    covariance : {"diag", "full"}
        Covariance of each component.
    n_mix : int
        Number of components K.
    """

    def __init__(self, d: int, covariance: str = "full", n_mix: int = N_MIX) -> None:
        super().__init__()
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
        self.d, self.covariance, self.n_mix = d, covariance, n_mix
        layers: list[nn.Module] = []
        width = N_INPUTS
        for h in HIDDEN:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.n_scale = d * (d + 1) // 2 if covariance == "full" else d
        self.head = nn.Linear(width, n_mix * (1 + d + self.n_scale))

    def forward(self, x: torch.Tensor) -> MixtureSameFamily:
        """Return the mixture p(y | x) for a batch of inputs, batch shape (N,)."""
        out = self.head(self.trunk(x))
        k, d = self.n_mix, self.d
        logits, mu, s = out.split([k, k * d, k * self.n_scale], dim=-1)
        mu = mu.reshape(-1, k, d)
        s = s.reshape(-1, k, self.n_scale)
        mixing = Categorical(logits=logits)
        if self.covariance == "diag":
            components = Independent(Normal(mu, F.softplus(s) + EPS), 1)
        else:
            # Scatter the D(D+1)/2 raw values into a lower triangle, then make its diagonal
            # positive: the textbook way to get a valid Cholesky factor of the covariance.
            rows, cols = torch.tril_indices(d, d)
            tril = s.new_zeros(s.shape[0], k, d, d)
            tril[..., rows, cols] = s
            diag = torch.diagonal(tril, dim1=-2, dim2=-1)
            scale_tril = tril - torch.diag_embed(diag) + torch.diag_embed(F.softplus(diag) + EPS)
            components = MultivariateNormal(mu, scale_tril=scale_tril)
        return MixtureSameFamily(mixing, components)


def _batches(loader: DataLoader):
    """Yield minibatches forever, one shuffled pass of the DataLoader after another."""
    while True:
        yield from loader


def _setup(
    x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, covariance: str, seed: int
) -> tuple[BaselineMDN, torch.optim.Adam, DataLoader]:
    torch.manual_seed(seed)  # initial weights and the DataLoader's shuffling
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    if y.ndim == 1:
        y = y[:, None]
    model = BaselineMDN(y.shape[1], covariance)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    return model, optimizer, loader


def _step(model: BaselineMDN, optimizer: torch.optim.Adam, xb, yb) -> torch.Tensor:
    optimizer.zero_grad()
    loss = -model(xb).log_prob(yb).mean()
    loss.backward()
    optimizer.step()
    return loss


def train_baseline(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    steps: int,
    seed: int = 0,
    covariance: str = "full",
) -> BaselineMDN:
    """Train the baseline for ``steps`` minibatch steps and return the model.

    Parameters
    ----------
    x : array or Tensor of shape (n, 7)
        Inputs.
    y : array or Tensor of shape (n,) or (n, D)
        Targets.
    steps : int
        Number of optimiser steps.
    seed : int
        Seed of the initial weights and the minibatch order.
    covariance : {"diag", "full"}
        Covariance of each component.

    Returns
    -------
    BaselineMDN
        The trained model, in eval mode; ``model(x).log_prob(y)`` gives log-densities.
    """
    model, optimizer, loader = _setup(x, y, covariance, seed)
    model.train()
    for _, (xb, yb) in zip(range(steps), _batches(loader), strict=False):
        _step(model, optimizer, xb, yb)
    return model.eval()


def time_baseline(
    d: int,
    covariance: str,
    steps: int,
    seed: int = 0,
    *,
    n: int = 10_000,
    threads: int | None = 1,
) -> dict:
    """Time ``steps`` training steps of the baseline after ``WARMUP`` (20) untimed ones.

    The timed loop is the whole training loop as written: fetching the minibatch from the
    DataLoader, building the distribution, the loss, backward and the Adam step.

    Parameters
    ----------
    d : int
        Target dimension D.
    covariance : {"diag", "full"}
        Covariance of each component.
    steps : int
        Number of timed steps.
    seed : int
        Seed of the data, the initial weights and the minibatch order.
    n : int
        Rows of synthetic data (``make_data``).
    threads : int or None
        ``torch.set_num_threads`` before timing (one thread by default, so that contenders
        compare on equal footing); None leaves the setting alone.

    Returns
    -------
    dict
        ``steps_per_s``, ``samples_per_s`` (rows actually trained on: the DataLoader's last
        batch of an epoch is short, 10,000 = 78 x 128 + 16), ``seconds`` and ``steps``.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    x, y = make_data(n, d, seed)
    model, optimizer, loader = _setup(x, y, covariance, seed)
    model.train()
    batches = _batches(loader)
    for _ in range(WARMUP):
        _step(model, optimizer, *next(batches))
    samples = 0
    start = time.perf_counter()
    for _ in range(steps):
        xb, yb = next(batches)
        _step(model, optimizer, xb, yb)
        samples += len(xb)
    seconds = time.perf_counter() - start
    return {
        "steps_per_s": steps / seconds,
        "samples_per_s": samples / seconds,
        "seconds": seconds,
        "steps": steps,
    }


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per configuration")
    parser.add_argument(
        "--train-steps", type=int, default=2000, help="steps of the NLL sanity check"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    # Sanity: the NLL should fall well below that of one Gaussian fitted to y (three modes).
    x, y = make_data(10_000, 1, seed=0)
    for cov in ("diag", "full"):
        model = train_baseline(x, y, args.train_steps, seed=0, covariance=cov)
        with torch.no_grad():
            nll = -model(torch.from_numpy(x)).log_prob(torch.from_numpy(y)).mean().item()
        single = 0.5 * math.log(2 * math.pi * math.e * float(y.var()))
        print(
            f"D=1 {cov}: training NLL after {args.train_steps} steps {nll:.3f} "
            f"(one Gaussian: {single:.3f})"
        )
    for d, cov in ((1, "diag"), (1, "full"), (3, "full")):
        result = time_baseline(d, cov, args.steps)
        print(json.dumps({"contender": "baseline", "d": d, "covariance": cov, **result}))


if __name__ == "__main__":
    _main()
