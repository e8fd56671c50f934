"""How far a component scale fitted on the validation rows carries to fresh rows.

For each of the first ``--splits`` published splits of one UCI set, ``MDN()`` without
recalibration is fitted on 80 % of the training rows, those of ``tune.py``; the other 20 %
are the fresh rows (the test rows are never read). The component scale is then fitted on
the model's own validation rows (``mdn.distributions.calibration.fit_recalibration``),
by maximum likelihood ("mle") and under normal priors on its logarithm of the standard
deviations in ``--prior-sds`` ("prior 0.1", ...); under ``SCALE_PRIOR_SD`` the tail weight
is fitted as well ("prior 0.2 + tail", as ``recalibrate="scale"`` does). "bic" and "bic +
tail" are what ``recalibrate=True`` does (and "auto" from ``AUTO_MIN_ROWS`` validation
rows): BIC's choice of the spread and the scale, then the tail. The fresh rows' NLL and
90 % coverage under each are printed per split as JSON lines, after the fitted value (the
scale, the tail weight, or the spread, scale and weight):

    .venv/bin/python benchmarks/scale_study.py concrete --splits 20
"""

from __future__ import annotations

import argparse
import json
import math

from tune import CANDIDATES, tuning_rows
from uci import DEFAULT_DATA, load_split


def study(name: str, split: int, prior_sds: list[float]) -> dict:
    import torch

    from mdn import MDN
    from mdn.distributions.calibration import SCALE_PRIOR_SD, fit_recalibration, fit_tail_weight
    from mdn.estimator.fitting import seeds, split_rows
    from mdn.estimator.prediction import member_distributions, n_members

    torch.set_num_threads(1)
    X, y, _, _ = load_split(DEFAULT_DATA, name, split)
    held, fit = tuning_rows(len(X), split)
    params = {**CANDIDATES["weight average 0.99"], "recalibrate": False}
    model = MDN(random_state=split, verbose=0, **params).fit(X[fit], y[fit])
    split_seed = seeds(model.random_state)[1]
    _, val = split_rows(
        len(fit), model.validation_fraction, torch.Generator().manual_seed(split_seed)
    )
    x_val, y_val = X[fit][val.numpy()], y[fit][val.numpy()]
    model.chunk_size = len(val) * n_members(model)  # the validation rows in one chunk
    ((_, members),) = member_distributions(model, x_val)
    out = {"split": split, "n_val": len(val)}
    targets, ensemble = torch.as_tensor(y_val).reshape(len(val), -1), n_members(model) > 1
    for sd in [math.inf, *prior_sds]:
        label = "mle" if sd == math.inf else f"prior {sd}"
        _, scale = fit_recalibration(members, targets, members=ensemble, scale_prior_sd=sd)
        model.component_scale_ = scale
        scores = model.evaluate(X[held], y[held])
        out[label] = (round(scale, 4), scores["nll"], scores["coverage_90"])
        if sd == SCALE_PRIOR_SD:  # what recalibrate="scale" does
            model.tail_weight_ = fit_tail_weight(
                members, targets, members=ensemble, component_scale=scale
            )
            scores = model.evaluate(X[held], y[held])
            out[f"{label} + tail"] = (
                round(model.tail_weight_, 4),
                scores["nll"],
                scores["coverage_90"],
            )
            model.tail_weight_ = 0.0
    # What recalibrate=True (and "auto" from AUTO_MIN_ROWS rows) does: BIC's choice of the
    # spread and the scale, then the tail; the fitted values are (spread, scale, weight).
    spread, scale = fit_recalibration(members, targets, members=ensemble)
    for label in ("bic", "bic + tail"):
        model.member_spread_, model.component_scale_ = spread, scale
        if label == "bic + tail":
            model.tail_weight_ = fit_tail_weight(
                members, targets, members=ensemble, member_spread=spread, component_scale=scale
            )
        scores = model.evaluate(X[held], y[held])
        out[label] = (
            (round(spread, 4), round(scale, 4), round(model.tail_weight_, 4)),
            scores["nll"],
            scores["coverage_90"],
        )
    model.member_spread_, model.component_scale_, model.tail_weight_ = 1.0, 1.0, 0.0
    scores = model.evaluate(X[held], y[held])
    out["none"] = (1.0, scores["nll"], scores["coverage_90"])
    return out


def main(argv: list[str] | None = None) -> None:
    from concurrent.futures import ProcessPoolExecutor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--prior-sds", default="0.2")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    sds = [float(v) for v in args.prior_sds.split(",")]
    with ProcessPoolExecutor(args.jobs) as pool:
        splits = range(args.splits)
        for out in pool.map(study, [args.dataset] * len(splits), splits, [sds] * len(splits)):
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
