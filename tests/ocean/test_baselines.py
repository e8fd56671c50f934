"""OC4 against its formula computed by hand."""

import math

import numpy as np
import pytest

from mdn.ocean.baselines import find_band, oc4


def test_oc4_by_hand():
    columns = {
        "Rrs_443": [0.004, 0.001],
        "Rrs_489": [0.005, 0.002],
        "Rrs_510": [0.003, 0.002],
        "Rrs_555": [0.002, 0.004],
    }
    r = [math.log10(0.005 / 0.002), math.log10(0.002 / 0.004)]
    a = (0.3272, -2.9940, 2.7218, -1.2259, -0.5683)
    expected = [10 ** sum(c * x**i for i, c in enumerate(a)) for x in r]
    assert oc4(columns) == pytest.approx(expected, rel=1e-12)


def test_oc4_is_nan_where_a_band_is_not_positive():
    columns = {"Rrs443": [0.0], "Rrs490": [0.005], "Rrs510": [0.003], "Rrs555": [0.002]}
    assert np.isnan(oc4(columns)).all()


def test_a_missing_band_is_named():
    assert find_band(["Rrs_412", "Rrs_488"], 490) == "Rrs_488"
    with pytest.raises(ValueError, match="within 6 nm of 555"):
        oc4({"Rrs_443": [1.0], "Rrs_490": [1.0], "Rrs_510": [1.0], "Rrs_565": [1.0]})
