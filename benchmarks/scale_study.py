"""How far a component scale fitted on the validation rows carries to fresh rows.

For each of the first ``--splits`` published splits of one UCI set, ``MDN()`` (the
defaults) is fitted on 80 % of the training rows, those of ``tune.py``; the other 20 % are
the fresh rows (the test rows are never read). The component scale with the lowest NLL on
the model's own validation rows (a grid from 0.6 to 2) is then applied unchanged ("mle")
and shrunk halfway towards 1 in log space ("half"), and the fresh rows' NLL and 90 %
coverage are printed per split as JSON lines:

    .venv/bin/python benchmarks/scale_study.py concrete --splits 20
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from tune import tuning_rows
from uci import DEFAULT_DATA, load_split

GRID = np.round(np.exp(np.linspace(np.log(0.6), np.log(2.0), 61)), 4)


def study(name: str, split: int) -> dict:
    import torch

    from mdn import MDN

    torch.set_num_threads(1)
    X, y, _, _ = load_split(DEFAULT_DATA, name, split)
    held, fit = tuning_rows(len(X), split)
    model = MDN(random_state=split, verbose=0).fit(X[fit], y[fit])
    _, val = model._split(len(fit), torch.Generator().manual_seed(model._seeds()[1]))
    x_val, y_val = X[fit][val.numpy()], y[fit][val.numpy()]
    nll = []
    for scale in GRID:
        model.component_scale_ = float(scale)
        nll.append(model.evaluate(x_val, y_val)["nll"])
    fitted = float(GRID[int(np.argmin(nll))])
    out = {"split": split, "n_val": len(val), "s_val": fitted}
    for label, scale in (("none", 1.0), ("mle", fitted), ("half", float(np.sqrt(fitted)))):
        model.component_scale_ = scale
        scores = model.evaluate(X[held], y[held])
        out[label] = (scores["nll"], scores["coverage_90"])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--splits", type=int, default=20)
    args = parser.parse_args(argv)
    for split in range(args.splits):
        print(json.dumps(study(args.dataset, split)), flush=True)


if __name__ == "__main__":
    main()
