"""Groups: a fit given each row's group (a water body, a contributing dataset) validates,
stops early and recalibrates on whole groups that training did not see."""

from __future__ import annotations

import numpy as np
import pytest

from mdn import MDN

QUICK = dict(n_iter=30, hidden=(8,), n_models=2, verbose=0, random_state=0)


def _data(n: int = 300, n_groups: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = np.array([f"lake {g}" for g in rng.integers(0, n_groups, n)])
    X = rng.normal(size=(n, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=n)
    return X, y, groups


def test_the_validation_rows_are_whole_groups_holding_about_their_share():
    X, y, groups = _data()
    model = MDN(**QUICK, validation_fraction=0.25).fit(X, y, groups=groups)
    held_out = set(groups[model.validation_rows_])
    training = set(np.delete(groups, model.validation_rows_))
    assert held_out and training and not held_out & training
    share = len(model.validation_rows_) / len(X)
    largest = np.unique(groups, return_counts=True)[1].max() / len(X)
    assert 0.25 <= share < 0.25 + largest
    again = MDN(**QUICK, validation_fraction=0.25).fit(X, y, groups=groups)
    np.testing.assert_array_equal(again.validation_rows_, model.validation_rows_)


def test_rows_without_a_target_leave_with_their_group_label():
    X, y, groups = _data()
    y[:20] = np.nan
    with pytest.warns(UserWarning, match="20 of 300 rows have every target missing"):
        model = MDN(**QUICK).fit(X, y, groups=groups)
    assert model.validation_rows_.min() >= 20  # rows as passed: those 20 are not among them
    held_out = set(groups[model.validation_rows_])
    assert not held_out & set(np.delete(groups[20:], model.validation_rows_ - 20))


def test_bad_groups_are_named():
    X, y, groups = _data()
    with pytest.raises(ValueError, match=r"one label per row \(300\)"):
        MDN(**QUICK).fit(X, y, groups=groups[:-1])
    holes = groups.astype(object)
    holes[[5, 9]] = None
    with pytest.raises(ValueError, match=r"no label in 2 rows \(first row 5\)"):
        MDN(**QUICK).fit(X, y, groups=holes)
    with pytest.warns(UserWarning, match="one group only"):
        model = MDN(**QUICK).fit(X, y, groups=np.full(len(X), "lake"))
    assert model.validation_rows_ is None
