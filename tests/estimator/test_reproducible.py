"""Reproducible fits: all randomness of a fit comes from generators it owns, so the same seed
gives the same model alone, in threads, and whatever torch's global generator holds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import mdn.estimator.model
from mdn import MDN, MixtureDensityNetwork
from mdn.datasets import make_inverted_sine

X, Y = make_inverted_sine(300, random_state=0)


def _fit(seed: int) -> list[torch.Tensor]:
    model = MDN(
        n_models=2, hidden=(16, 16), n_iter=120, bagging=0.8, random_state=seed, verbose=0
    ).fit(X, Y)
    return [p.detach().clone() for p in model.network_.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_four_threads_fitting_seeds_0_to_3_give_the_sequential_models():
    sequential = [_fit(seed) for seed in range(4)]
    for _ in range(2):  # two rounds: interleavings differ from run to run
        with ThreadPoolExecutor(max_workers=4) as pool:
            threaded = list(pool.map(_fit, range(4)))
        assert all(_same(s, t) for s, t in zip(sequential, threaded, strict=True))
    assert not _same(sequential[0], sequential[1])


def test_a_fit_neither_reads_nor_moves_the_global_generator():
    torch.manual_seed(123)
    first = _fit(0)
    after_fit = torch.rand(3)
    torch.manual_seed(999)  # another global state: the same model
    assert _same(first, _fit(0))
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_fit)  # the fit drew nothing from it


def test_seeded_networks_equal_those_built_after_manual_seed():
    for covariance, n_models in (("full", None), ("diag", 3)):
        torch.manual_seed(7)
        expected = MixtureDensityNetwork(3, 2, 2, (5, 4), covariance=covariance, n_models=n_models)
        state = torch.random.get_rng_state()
        got = MixtureDensityNetwork.seeded(
            torch.Generator().manual_seed(7),
            3,
            2,
            2,
            (5, 4),
            covariance=covariance,
            n_models=n_models,
        )
        assert torch.equal(state, torch.random.get_rng_state())
        for (name, p), q in zip(
            expected.state_dict().items(), got.state_dict().values(), strict=True
        ):
            assert torch.equal(p, q), name


def test_loading_a_model_leaves_the_global_generator_alone(tmp_path):
    model = MDN(n_models=1, hidden=(4,), n_iter=5, verbose=0, random_state=0).fit(X, Y)
    model.save(tmp_path / "m.safetensors")
    state = torch.random.get_rng_state()
    loaded = MDN.load(tmp_path / "m.safetensors")
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


class _CtrlC:
    """Raises KeyboardInterrupt at the given minibatch, as Ctrl-C would mid-step."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, original):
        def next_batch(batches):
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
            return original(batches)

        return next_batch


def test_ctrl_c_ends_a_fit_with_the_best_weights_so_far(monkeypatch):
    from mdn.training.batches import Minibatches

    monkeypatch.setattr(Minibatches, "next", _CtrlC(at=230)(Minibatches.next))
    with pytest.warns(
        UserWarning, match="interrupted at iteration 229 of 1000: keeping the weights of iteration"
    ):
        model = MDN(n_models=2, hidden=(8,), n_iter=1000, verbose=0, random_state=0).fit(X, Y)
    assert model.n_iter_ == 229 and model.history_["interrupted"]
    assert model.history_["best_step"] <= 200
    assert np.isfinite(model.predict(X)).all() and np.isfinite(model.score(X, Y))


def test_ctrl_c_without_validation_keeps_the_last_evaluated_weights(monkeypatch):
    from mdn.training.batches import Minibatches

    monkeypatch.setattr(Minibatches, "next", _CtrlC(at=75)(Minibatches.next))
    with pytest.warns(UserWarning, match="keeping the weights of iteration 50"):
        model = MDN(
            n_models=1,
            hidden=(8,),
            n_iter=500,
            validation_fraction=0,
            ema_decay=None,
            verbose=0,
            random_state=0,
        ).fit(X, Y)
    assert model.n_iter_ == 74


def test_fit_trains_at_n_threads_and_gives_the_callers_count_back(monkeypatch):

    seen = []
    original = mdn.estimator.model.train
    monkeypatch.setattr(
        mdn.estimator.model,
        "train",
        lambda *a, **k: seen.append(torch.get_num_threads()) or original(*a, **k),
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for n_threads, expected in ((1, 1), (2, 2), (None, 2)):
            MDN(n_threads=n_threads, n_models=1, hidden=(4,), n_iter=5, verbose=0).fit(X, Y)
            assert seen[-1] == expected and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_fits_in_threads_keep_their_own_thread_counts(monkeypatch):
    import threading

    seen = {}
    original = mdn.estimator.model.train

    def record(*a, **k):
        seen[threading.current_thread().name] = torch.get_num_threads()
        return original(*a, **k)

    monkeypatch.setattr(mdn.estimator.model, "train", record)

    def fit(n_threads: int) -> None:
        MDN(n_threads=n_threads, n_models=1, hidden=(4,), n_iter=30, verbose=0).fit(X, Y)

    workers = [threading.Thread(target=fit, args=(n,), name=f"fit-{n}") for n in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen == {"fit-1": 1, "fit-2": 2}


def test_grid_search_in_two_processes_gives_the_models_of_one_process():
    from sklearn.model_selection import cross_val_score

    model = MDN(n_models=1, hidden=(8,), n_iter=60, verbose=0, random_state=0)
    serial = cross_val_score(model, X, Y, cv=3, n_jobs=1)
    parallel = cross_val_score(model, X, Y, cv=3, n_jobs=2)
    np.testing.assert_array_equal(serial, parallel)
