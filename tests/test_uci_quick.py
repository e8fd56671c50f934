"""The UCI benchmark's quick mode on one split of the small sets, as CI runs it.

Skipped where the evaluation data is not beside the project (``../shared/data/uci`` or
``MDN_UCI_DATA``): it is never part of the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import uci  # noqa: E402

pytestmark = pytest.mark.skipif(
    not uci.DEFAULT_DATA.is_dir(), reason=f"no UCI data at {uci.DEFAULT_DATA}"
)


def test_quick_mode_trains_scores_and_prints_the_table(capsys):
    results = uci.main(["--quick", "--splits", "1", "--jobs", "2"])  # 1 split: a minute
    table = capsys.readouterr().out
    assert "| NLL | boston | concrete | energy | yacht |" in table
    assert "| MC dropout (Gal 2016) | 2.46 | 3.04 | 1.99 | 1.55 |" in table
    assert len(results) == 4 and {r["split"] for r in results} == {0}
    published = {row["method"]: row for row in uci.published()}
    dropout = published["MC dropout (Gal 2016)"]
    for name, (mean, _, splits) in uci.summarise(results, "nll").items():
        assert splits == 1
        # One split is noisy; a broken fit is off by far more than this margin.
        assert mean < float(dropout[name]) + 0.75, (name, mean)
    for name, (share, _, _) in uci.summarise(results, "coverage_90").items():
        assert 0.6 < share <= 1.0, (name, share)
