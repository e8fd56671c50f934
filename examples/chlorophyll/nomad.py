"""The chlorophyll-a matchups of NOMAD v2 as a table that ``mdn`` reads.

NOMAD v2 (Werdell and Bailey 2005) lies in ``../shared/data/nomad/`` beside the repository;
its terms allow research and evaluation use, so it is read from there, never copied into the
package. This script writes the rows the example uses, as a CSV for the ``mdn`` command, and
with ``--split S`` also the training and test halves of protocol split S::

    python examples/chlorophyll/nomad.py -o nomad_chl.csv
    python examples/chlorophyll/nomad.py -o nomad_chl.csv --split 0  # + _train.csv, _test.csv

Columns: ``Rrs_443``, ``Rrs_489``, ``Rrs_510``, ``Rrs_555`` (remote-sensing reflectance,
lw / es, 1/sr), ``chl`` (mg m^-3: HPLC ``chl_a`` where present, else fluorometric ``chl``)
and ``station`` (the row's index in the NOMAD file, an id column). Rows: chl > 0 and all four
Rrs finite and positive (2,835).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

BANDS = (443, 489, 510, 555)
DEFAULT_PATH = (
    Path(__file__).resolve().parents[3] / "shared/data/nomad/nomad_seabass_v2.a_2008200.txt.gz"
)


def load_nomad(path: str | Path = DEFAULT_PATH):
    """The example's rows of NOMAD v2 as a pandas DataFrame (see the module docstring)."""
    import pandas as pd

    raw = pd.read_csv(path, comment="!", na_values=[-999])
    table = pd.DataFrame({f"Rrs_{band}": raw[f"lw{band}"] / raw[f"es{band}"] for band in BANDS})
    table["chl"] = raw["chl_a"].where(raw["chl_a"].notna(), raw["chl"])
    table.insert(0, "station", raw.index)
    rrs = table[[f"Rrs_{band}" for band in BANDS]].to_numpy()
    keep = (table["chl"] > 0).to_numpy() & np.all(np.isfinite(rrs) & (rrs > 0), axis=1)
    return table[keep].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", default="nomad_chl.csv", help="CSV to write")
    parser.add_argument("--nomad", default=DEFAULT_PATH, help="the NOMAD v2 file")
    parser.add_argument("--split", type=int, help="also write this split's two halves")
    args = parser.parse_args()
    table = load_nomad(args.nomad)
    table.to_csv(args.out, index=False)
    print(f"{len(table)} rows -> {args.out}")
    if args.split is not None:
        order = np.random.RandomState(args.split).permutation(len(table))
        stem = Path(args.out).with_suffix("")
        for name, rows in (("train", order[: len(table) // 2]), ("test", order[len(table) // 2 :])):
            table.iloc[rows].to_csv(f"{stem}_{name}.csv", index=False)
            print(f"{len(rows)} rows -> {stem}_{name}.csv")


if __name__ == "__main__":
    main()
