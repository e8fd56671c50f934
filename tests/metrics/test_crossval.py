"""Cross-validation: random splits and leave-groups-out splits, scores per split and per
held-out group."""

from __future__ import annotations

import numpy as np
import pytest

from mdn import MDN
from mdn.metrics.crossval import cross_validate, group_splits, summarise, summarise_groups

QUICK = dict(n_iter=20, hidden=(8,), n_models=1, n_mix=2, verbose=0)


def _data(n: int = 240, n_groups: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"lake {g}" for g in range(n_groups)], n // n_groups)
    X = rng.normal(size=(n, 2))
    y = np.exp(np.c_[X[:, 0], X[:, 1]] * 0.5 + 0.1 * rng.normal(size=(n, 2)))
    return X, y, groups


def test_group_splits_hold_out_whole_groups_reproducibly():
    _, _, groups = _data()
    cuts = group_splits(groups, [0, 1, 2], test_groups=3)
    for train, test in cuts:
        assert len(set(groups[test])) == 3 and not set(groups[test]) & set(groups[train])
        assert len(train) + len(test) == len(groups)
    again = group_splits(groups, [0, 1, 2], test_groups=3)
    for (a, b), (c, d) in zip(cuts, again, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert not np.array_equal(cuts[0][1], cuts[1][1])  # another seed, other groups
    with pytest.raises(ValueError, match="8 groups cannot be split"):
        group_splits(groups, [0], test_groups=8)


def test_leave_groups_out_scores_each_split_and_each_held_out_group():
    X, y, groups = _data()
    y[groups == "lake 2", 1] = np.nan  # a group that never observes the second target
    methods, baselines = {"mdn": MDN(**QUICK)}, {"ones": np.ones_like(y)}
    results = cross_validate(
        X, y, methods, splits=[0, 1], groups=groups, test_groups=3, baselines=baselines
    )
    assert len(results["mdn"]) == 2 and len(results["mdn"][0]) == 2
    by_group = results["by_group"]
    held = [set(groups[test]) for _, test in group_splits(groups, [0, 1], 3)]
    assert set(by_group["mdn"]) == held[0] | held[1] == set(by_group["ones"])
    for group, splits in by_group["mdn"].items():
        assert len(splits) == sum(group in h for h in held)
    rows = summarise_groups(by_group, ["a", "b"])
    assert {r["group"] for r in rows if r["target"] == "b"} == (held[0] | held[1]) - {"lake 2"}
    assert all(r["n_mean"] == (groups == r["group"]).sum() for r in rows if r["target"] == "a")
    assert [r["method"] for r in summarise(results, ["a", "b"])] == ["mdn", "mdn", "ones", "ones"]


def test_fits_inside_a_group_split_validate_on_whole_groups(monkeypatch):
    X, y, groups = _data()
    seen = []
    fit = MDN.fit

    def recording(self, X, y, groups=None):
        seen.append(groups)
        return fit(self, X, y, groups)

    monkeypatch.setattr(MDN, "fit", recording)
    cross_validate(X, y, {"mdn": MDN(**QUICK)}, splits=[0], groups=groups, test_groups=2)
    train, _ = group_splits(groups, [0], 2)[0]
    np.testing.assert_array_equal(seen[0], groups[train])
