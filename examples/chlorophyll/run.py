"""The chlorophyll-a example end to end: NOMAD v2 -> table -> `mdn cv` -> the README's table.

Three methods on the same 20 random 50/50 splits (split s: ``RandomState(s).permutation(n)``,
its first n // 2 rows for training): NASA's OC4, ``MDN(**mdn.REFERENCE)`` (the original
configuration) and the default ``MDN(target_transform="log")``, exactly as::

    python examples/chlorophyll/nomad.py -o nomad_chl.csv
    mdn cv nomad_chl.csv -t chl -f 'Rrs_*' --id station --log-target --splits 20 \\
        --baseline oc4 --variant reference --json > results.json

This script runs those two commands and prints the table in Markdown. The full run takes
about an hour and a half on two cores (the reference's 10,000 iterations of ten members
dominate); ``--quick`` runs 2 splits with 100 iterations, to check that it all works::

    python examples/chlorophyll/run.py --out results.json        # the full run
    python examples/chlorophyll/run.py --quick                   # a minute
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from nomad import DEFAULT_PATH, load_nomad  # noqa: E402

from mdn.cli import main  # noqa: E402

COLUMNS = [("mdsa", "MdSA %", 1), ("sspb", "SSPB %", 1), ("log_mae", "log10 MAE", 3),
           ("nll_log10", "NLL (log10)", 3), ("coverage_90", "90 % coverage", 3),
           ("fit_s", "fit s", 0)]  # fmt: skip
NAMES = {
    "oc4": "OC4",
    "reference": "`MDN(**mdn.REFERENCE)`",
    "mdn": "`MDN(target_transform='log')`",
}


def cv_arguments(table: Path, splits: str, quick: bool, jobs: int) -> list[str]:
    """The `mdn cv` command line of the protocol (shortened training with ``quick``)."""
    args = ["cv", str(table), "-t", "chl", "-f", "Rrs_*", "--id", "station", "--log-target",
            "--splits", splits, "--baseline", "oc4", "--jobs", str(jobs), "--json"]  # fmt: skip
    if quick:
        return [*args, "--set", "n_iter=100", "--variant", "reference;n_iter=100"]
    return [*args, "--variant", "reference"]


def markdown(rows: list[dict]) -> str:
    """The README's table: mean ± standard deviation over splits."""
    lines = ["| method | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]  # fmt: skip
    for row in rows:
        cells = []
        for key, _, digits in COLUMNS:
            if f"{key}_mean" not in row:
                cells.append("-")
                continue
            cells.append(f"{row[f'{key}_mean']:.{digits}f} ± {row[f'{key}_std']:.{digits}f}")
        lines.append(f"| {NAMES.get(row['method'], row['method'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(splits: str, quick: bool, jobs: int, nomad: Path) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "nomad_chl.csv"
        load_nomad(nomad).to_csv(table, index=False)
        result = CliRunner().invoke(main, cv_arguments(table, splits, quick, jobs))
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return json.loads(result.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default="20", help="as `mdn cv --splits`")
    parser.add_argument("--quick", action="store_true", help="2 splits, 100 iterations")
    parser.add_argument("--jobs", type=int, default=1, help="fits side by side")
    parser.add_argument("--nomad", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = run("2" if args.quick else args.splits, args.quick, args.jobs, args.nomad)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    print(markdown(rows))
