"""The chlorophyll-a example on NOMAD v2 in its quick mode (2 splits, 100 iterations), where
../shared/data/nomad exists; its table logic without it."""

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chlorophyll"


def _module(name: str):
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLE))
    return module


def test_the_markdown_table_shows_mean_and_spread_and_dashes_for_baselines():
    run = _module("run")
    rows = [
        {
            "method": "mdn",
            "mdsa_mean": 38.04,
            "mdsa_std": 1.21,
            "fit_s_mean": 30.2,
            "fit_s_std": 4.0,
        },
        {"method": "oc4", "mdsa_mean": 44.5, "mdsa_std": 1.5},
    ]
    table = run.markdown(rows).splitlines()
    assert table[2].startswith("| `MDN(target_transform='log')` | 38.0 ± 1.2 |")
    assert table[3].startswith("| OC4 | 44.5 ± 1.5 | - |")
    assert run.cv_arguments(Path("t.csv"), "2", True, 1)[-1] == "reference;n_iter=100"


@pytest.mark.skipif(not _module("nomad").DEFAULT_PATH.is_file(), reason="needs ../shared/data")
def test_quick_mode_on_nomad():
    nomad, run = _module("nomad"), _module("run")
    table = nomad.load_nomad()
    assert len(table) == 2835  # the rows the protocol names
    assert (table["chl"] > 0).all() and (table.filter(like="Rrs_") > 0).all().all()
    rows = {row["method"]: row for row in run.run("2", True, 1, nomad.DEFAULT_PATH)}
    assert set(rows) == {"mdn", "reference;n_iter=100", "oc4"}
    assert 35 < rows["oc4"]["mdsa_mean"] < 55  # OC4 on NOMAD: 41.8-47.2 % on splits 0-2
    assert rows["mdn"]["mdsa_mean"] < 60 and rows["mdn"]["splits"] == 2
