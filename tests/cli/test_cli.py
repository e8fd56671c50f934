"""The `mdn` command: a round trip on a table made here, and bad invocations."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mdn
from mdn.cli import main

_HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None  # the io extra: Parquet
TINY = [
    "--set",
    "n_iter=60",
    "--set",
    "hidden=16",
    "--set",
    "n_mix=2",
    "--set",
    "n_models=2",
    "--set",
    "random_state=0",
]


def _table(n: int = 160, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.001, 0.01, size=(n, 4))
    chl = np.exp(3 * np.log(x[:, 0] / x[:, 3]) + rng.normal(0, 0.2, n))
    return pd.DataFrame(
        {
            "site": [f"s{i}" for i in range(n)],
            "Rrs_443": x[:, 0],
            "Rrs_490": x[:, 1],
            "Rrs_510": x[:, 2],
            "Rrs_555": x[:, 3],
            "chl": chl,
            "depth": rng.uniform(1, 50, n),
        }
    )


def run(*args: str) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "train.csv"
    _table().to_csv(data, index=False)
    model = folder / "chl.safetensors"
    result = run("fit", data, "-t", "chl", "-f", "Rrs_*", "--log-target", *TINY, "-q", "-o", model)
    assert result.exit_code == 0, result.output
    return folder, data, model


def test_fit_records_names(fitted):
    model_path = fitted[2]
    model = mdn.load(model_path)
    assert list(model.feature_names_in_) == ["Rrs_443", "Rrs_490", "Rrs_510", "Rrs_555"]
    assert model.target_names_ == ["chl"] and model.target_transform == "log"
    assert model.n_models == 2 and model.n_iter_ == 60


def test_info(fitted):
    _, _, model_path = fitted
    result = run("info", model_path, "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["features"] == ["Rrs_443", "Rrs_490", "Rrs_510", "Rrs_555"]
    assert summary["targets"] == ["chl"] and summary["members"] == 2
    assert summary["parameters"]["n_mix"] == 2 and "torch" in summary["versions"]


def test_predict_agrees_with_the_python_api(fitted):
    folder, data, model_path = fitted
    out = folder / ("pred.parquet" if _HAS_PYARROW else "pred.csv")
    result = run(
        "predict",
        model_path,
        data,
        "-o",
        out,
        "--point",
        "median",
        "--interval",
        "0.8",
        "--id",
        "site",
        "--samples",
        "3",
    )
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out) if _HAS_PYARROW else pd.read_csv(out)
    table = pd.read_csv(data)
    model = mdn.load(model_path)
    X = table[["Rrs_443", "Rrs_490", "Rrs_510", "Rrs_555"]]
    np.testing.assert_allclose(written["chl_median"], model.predict(X, point="median"))
    lower, upper = model.predict_interval(X, coverage=0.8)
    np.testing.assert_allclose(written["chl_lower"], lower)
    np.testing.assert_allclose(written["chl_upper"], upper)
    assert list(written["site"]) == list(table["site"])
    assert {"chl_sample_0", "chl_sample_2"} <= set(written.columns)
    assert (written[["chl_sample_0", "chl_sample_1", "chl_sample_2"]] > 0).all().all()


def test_predict_leaves_rows_without_features_empty(fitted, tmp_path):
    _, data, model_path = fitted
    table = pd.read_csv(data).head(5)
    table.loc[2, "Rrs_490"] = np.nan
    table.to_csv(tmp_path / "gappy.csv", index=False)
    result = run("predict", model_path, tmp_path / "gappy.csv", "-o", tmp_path / "out.csv")
    assert result.exit_code == 0
    assert "1 of 5 rows" in result.stderr
    values = pd.read_csv(tmp_path / "out.csv")["chl_median"]  # a log target: median
    assert values.isna().tolist() == [False, False, True, False, False]


def test_evaluate_agrees_with_the_metrics(fitted):
    _, data, model_path = fitted
    result = run("evaluate", model_path, data, "--json", "--point", "median")
    assert result.exit_code == 0, result.output
    (scores,) = json.loads(result.stdout)
    table = pd.read_csv(data)
    model = mdn.load(model_path)
    X, y = table[["Rrs_443", "Rrs_490", "Rrs_510", "Rrs_555"]], table["chl"].to_numpy()
    assert scores["nll"] == pytest.approx(-model.log_prob(X, y).mean(), rel=1e-6)
    assert scores["mdsa"] == pytest.approx(mdn.metrics.mdsa(model.predict(X, point="median"), y))
    text = run("evaluate", model_path, data)
    assert text.exit_code == 0 and "mdsa" in text.stdout and "coverage_90" in text.stdout


def test_cv_compares_variants_and_a_baseline(fitted):
    _, data, _ = fitted
    result = run(
        "cv",
        data,
        "-t",
        "chl",
        "-f",
        "Rrs_*",
        "--log-target",
        *TINY,
        "--splits",
        "2",
        "--variant",
        "n_mix=1",
        "--baseline",
        "oc4",
        "--json",
    )
    assert result.exit_code == 0, result.output
    rows = {row["method"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"mdn", "n_mix=1", "oc4"}
    assert rows["mdn"]["splits"] == 2 and rows["oc4"]["splits"] == 2
    assert "nll_mean" in rows["n_mix=1"] and "nll_mean" not in rows["oc4"]
    assert rows["oc4"]["mdsa_mean"] > 0


def test_plot_writes_a_figure(fitted):
    folder, data, model_path = fitted
    out = folder / "fig.png"
    result = run("plot", model_path, data, "-o", out, "--rows", "0,5")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BAD = {
    "unknown column": (["fit", "{data}", "-t", "nope", "-o", "{out}"], "no target column 'nope'"),
    "unknown glob": (["fit", "{data}", "-t", "chl", "-f", "B*", "-o", "{out}"], "no feature"),
    "text column": (
        ["fit", "{data}", "-t", "chl", "-f", "site", "-o", "{out}"],
        "'site' is not numeric",
    ),
    "missing file": (["fit", "{folder}/none.csv", "-t", "chl", "-o", "{out}"], "no such file"),
    "unknown set": (
        ["fit", "{data}", "-t", "chl", "--set", "n_mixx=3", "-o", "{out}"],
        "did you mean n_mix",
    ),
    "bad value": (["fit", "{data}", "-t", "chl", "--set", "n_mix=0", "-o", "{out}"], "n_mix"),
    "not a model": (["predict", "{data}", "{data}", "-o", "{out}"], "{data}"),
    "not a model (info)": (["info", "{data}"], "{data}"),
    "missing feature": (["predict", "{model}", "{other}", "-o", "{out}"], "Rrs_490"),
    "bad interval": (
        ["predict", "{model}", "{data}", "-o", "{out}", "--interval", "2"],
        "--interval",
    ),
    "bad output type": (["predict", "{model}", "{data}", "-o", "{folder}/x.xlsx"], ".xlsx"),
    "unknown option": (["cv", "{data}", "-t", "chl", "--quiet"], "No such option"),
    "no target": (["fit", "{data}", "-o", "{out}"], "--target"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_invocations_exit_2_with_one_line_and_keep_outputs(fitted, tmp_path, case):
    folder, data, model_path = fitted
    other = tmp_path / "other.csv"
    _table(10).drop(columns="Rrs_490").to_csv(other, index=False)
    out = tmp_path / "existing.csv"
    out.write_text("precious")
    names = {"data": data, "out": out, "folder": folder, "model": model_path, "other": other}
    args, expected = BAD[case]
    result = run(*(a.format(**names) for a in args))
    assert result.exit_code == 2, result.output
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("mdn "), result.stderr
    assert expected.format(**names) in message[0]
    assert "Traceback" not in result.output
    assert out.read_text() == "precious"


def test_debug_shows_the_traceback(fitted):
    _, data, _ = fitted
    result = run("--debug", "fit", data, "-t", "nope", "-o", "x.safetensors")
    assert result.exit_code != 2 and isinstance(result.exception, ValueError)


def test_the_console_script_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "mdn.cli", "fit", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "--log-target" in done.stdout


def test_a_log_target_refuses_values_below_zero_or_treats_them_as_missing(tmp_path):
    table = _table()
    table.loc[[3, 50], "chl"] = 0.0  # below detection, recorded as 0
    data, model = tmp_path / "zeros.csv", tmp_path / "zeros.safetensors"
    table.to_csv(data, index=False)
    common = ["fit", data, "-t", "chl", "-f", "Rrs_*", "--log-target", *TINY, "-q", "-o", model]
    refused = run(*common)
    assert refused.exit_code == 2 and not model.exists()
    assert "chl: 2, smallest 0, rows 3, 50" in refused.output
    assert "--nonpositive missing" in refused.output
    accepted = run(*common, "--nonpositive", "missing")
    assert accepted.exit_code == 0, accepted.output
    assert "2 target values <= 0 are treated as missing" in accepted.output
    assert mdn.load(model).nonpositive_targets == "missing"


def test_cv_leaves_groups_out_and_fit_validates_on_them(tmp_path):
    table = _table(n=160)
    table["lake"] = [f"lake {i % 8}" for i in range(len(table))]
    data, model = tmp_path / "lakes.csv", tmp_path / "lakes.safetensors"
    table.to_csv(data, index=False)
    result = run(
        "cv",
        data,
        "-t",
        "chl",
        "--log-target",
        "--groups",
        "lake",
        "--splits",
        "2",
        "--test-groups",
        "2",
        *TINY,
    )
    assert result.exit_code == 0, result.output
    assert "held-out groups" in result.output and "lake " in result.output
    fitted = run(
        "fit",
        data,
        "-t",
        "chl",
        "-f",
        "Rrs_*",
        "--log-target",
        "--groups",
        "lake",
        *TINY,
        "-q",
        "-o",
        model,
    )
    assert fitted.exit_code == 0, fitted.output
    missing = run("cv", data, "-t", "chl", "--groups", "basin", *TINY)
    assert missing.exit_code == 2 and "no groups column 'basin'" in missing.output


def test_predict_adds_the_novelty_score_and_flag(fitted, tmp_path):
    _, data, model = fitted
    out = tmp_path / "novelty.csv"
    result = run("predict", model, data, "-o", out, "--novelty")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    expected = mdn.load(model).novelty(_table()[["Rrs_443", "Rrs_490", "Rrs_510", "Rrs_555"]])
    np.testing.assert_allclose(table["novelty"], expected)
    assert (table["novel"] == (expected > mdn.load(model).novelty_threshold_)).all()
