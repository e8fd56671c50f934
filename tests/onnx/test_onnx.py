"""ONNX export (``mdn.estimator.onnx_export``, ``mdn export``) and the NumPy + onnxruntime
predictor (``mdn.onnx``): the graph's parameters against PyTorch's, every prediction method
against ``MDN``'s, a process where torch cannot be imported, files of format 1, and the
refusals.

Exports are slow (torch's exporter traces the model), so five tiny models cover the
covariance types, D = 1 and 3, one network and ensembles, identity and log targets, with
every recalibration value set, and each is fitted and exported once per module.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install 'mdn[onnx]'")
onnxruntime = pytest.importorskip("onnxruntime", reason="needs the onnx extra")
pytest.importorskip("onnxscript", reason="needs the onnx extra")
import pandas as pd  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from scipy import special, stats  # noqa: E402

import mdn  # noqa: E402
from mdn import MDN  # noqa: E402
from mdn.cli import main  # noqa: E402
from mdn.distributions.mixture import (  # noqa: E402
    GaussianMixture,
    precision_cholesky_from_covariance,
)
from mdn.distributions.numpy_kernels import ndtr, ndtri  # noqa: E402
from mdn.distributions.transforms import LogGaussianMixture  # noqa: E402
from mdn.estimator.prediction import distributions, member_distributions, n_members  # noqa: E402
from mdn.onnx import MEMBER_OUTPUTS, OUTPUTS, OnnxPredictor  # noqa: E402

#: (covariance, D, members, target transform, recalibration, how it is exported): every
#: level of each, and every branch of the graph (a spherical model stays spherical under an
#: isotropic target scaling, as in one dimension, and turns diagonal otherwise). In one
#: dimension the three covariance types are one model. The tests that need one model take
#: the first (indirect parametrisation shares its fixture).
CASES = {
    "full-3d-ensemble-log": ("full", 3, 2, "log", (0.8, 1.2, 0.05), "method"),
    "diag-3d-single": ("diag", 3, 1, None, (1.0, 0.9, 0.1), "method"),
    "spherical-3d-ensemble": ("spherical", 3, 2, None, (1.3, 1.0, 0.0), "method"),
    "spherical-1d-single-log-cli": ("spherical", 1, 1, "log", (1.0, 1.1, 0.02), "cli"),
}
RECALIBRATION = ("member_spread_", "component_scale_", "tail_weight_")


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = np.c_[x[:, 0], x[:, 0] * x[:, 1], np.sin(2 * x[:, 1])] + 0.3 * rng.normal(size=(n, 3))
    return pd.DataFrame(x, columns=["a", "b"]), y * [1.0, 3.0, 0.5] + [5.0, -4.0, 2.0]


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request, tmp_path_factory):
    covariance, d, members, transform, recalibration, how = CASES[request.param]
    X, y = _data(200, 0)
    if transform == "log":
        y = np.exp(0.25 * (y - y.mean(0)))  # log-space spread of about 1
    y = y[:, :d] if d > 1 else y[:, 0]
    model = MDN(
        n_mix=3,
        hidden=(16,),
        n_iter=30,
        n_models=members,
        covariance=covariance,
        target_transform=transform,
        recalibrate=False,
        combine="median",
        verbose=0,
        random_state=0,
    ).fit(X, y)
    # Every recalibration path of the graph, whatever a fit on 200 rows would choose.
    model.__dict__.update(zip(RECALIBRATION, recalibration, strict=True))
    folder = tmp_path_factory.mktemp(request.param)
    path = folder / "model.onnx"
    if how == "cli":
        model.save(folder / "model.safetensors")
        model = mdn.load(folder / "model.safetensors")
        result = CliRunner().invoke(
            main, ["export", str(folder / "model.safetensors"), "-o", str(path)]
        )
        assert result.exit_code == 0, result.output
    else:
        model.export_onnx(path)
    X_test = _data(40, 1)[0]
    y_test = model.sample(X_test, 1, random_state=0)[0]  # inside the model's support
    return model, path, OnnxPredictor(path), X_test, y_test


def _close(got, want, scale=1.0) -> None:
    """Equal to 1e-5 relative, or within 1e-5 of ``scale`` (the target's spread) near 0."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    error = np.abs(got - want) / (np.abs(want) + scale)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.nanmax(error) <= 1e-5, (
        f"largest error {np.nanmax(error):.3g} at {np.argwhere(error == np.nanmax(error))[0]}"
    )


def _spread(model: MDN) -> np.ndarray:
    scale = np.abs(model.y_scale_)
    return np.exp(scale) if model.target_transform == "log" else scale


# ---------------------------------------------------------------------- the graph itself
def test_graph_parameters_match_pytorch(case):
    model, path, _, X, _ = case
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == [*OUTPUTS, *MEMBER_OUTPUTS, "novelty"]
    for rows in (X.iloc[:1], X):  # the batch axis is dynamic
        got = dict(zip(names, session.run(None, {"X": rows.to_numpy()}), strict=True))
        dist = next(distributions(model, rows))[1]
        base = dist.base if model.target_transform == "log" else dist
        members = next(member_distributions(model, rows))[1]
        for prefix, mixture in (("", base), ("member_", members)):
            if prefix and n_members(model) == 1:  # a member axis of one
                got = {name: values[0] for name, values in got.items()}
            np.testing.assert_allclose(
                got[prefix + "log_weights"], mixture.log_weights.numpy(), rtol=1e-5, atol=1e-6
            )
            want = mixture.means.numpy()
            _close(got[prefix + "means"], want, np.abs(want).max())
            want = mixture.precision_cholesky.numpy()
            _close(got[prefix + "precision_cholesky"], want, np.abs(want).max())


def test_metadata_describes_the_model(case):
    model, _, predictor, _, _ = case
    meta = predictor.metadata
    assert meta["feature_names"] == ["a", "b"] and meta["n_targets"] == model.n_outputs_
    assert meta["covariance"] == model.covariance
    # A spherical model under an anisotropic target scaling predicts diagonal components.
    anisotropic = len(set(np.abs(model.y_scale_))) > 1
    expected = "diag" if model.covariance == "spherical" and anisotropic else model.covariance
    assert meta["mixture_covariance"] == expected
    assert meta["target_transform"] == model.target_transform
    assert meta["n_models"] == n_members(model) and meta["combine"] == "median"
    assert [meta[k.rstrip("_")] for k in RECALIBRATION] == [
        getattr(model, k) for k in RECALIBRATION
    ]
    assert meta["mdn_version"] and meta["mdn_onnx_format"] == 2
    assert "OnnxPredictor(" in repr(predictor)


# ---------------------------------------------------------------------- the predictor
@pytest.mark.parametrize("point", ["top", "mean", "mode", "median"])
def test_point_estimates_equal_mdn(case, point):
    model, _, predictor, X, _ = case
    got = predictor.predict(X, point=point)
    assert isinstance(got, pd.Series if model.output_1d_ else pd.DataFrame)  # X's index
    _close(got, model.predict(X, point=point), _spread(model))
    assert isinstance(predictor.predict(X.to_numpy()[:2], point=point), np.ndarray)
    if n_members(model) > 1:  # the pooled mixture's estimate instead of the members' median
        pooled, mixed = copy.copy(predictor), copy.copy(model)
        pooled.combine = mixed.combine = "mixture"
        _close(pooled.predict(X, point=point), mixed.predict(X, point=point), _spread(model))
    _close(predictor.predict_members(X, point), model.predict_members(X, point), _spread(model))


def test_the_default_point_is_the_models(case):
    model, _, predictor, X, _ = case
    assert predictor.metadata["point"] == ("median" if model.target_transform else "top")
    _close(predictor.predict(X), model.predict(X), _spread(model))


def test_intervals_equal_mdn(case):
    model, _, predictor, X, _ = case
    for coverage in (0.5, 0.95):
        for got, want in zip(
            predictor.predict_interval(X, coverage),
            model.predict_interval(X, coverage),
            strict=True,
        ):
            _close(got, want, _spread(model))


def test_log_prob_equals_mdn_with_missing_targets(case):
    model, _, predictor, X, y = case
    y = np.array(y, dtype=np.float64)
    if y.ndim == 1:
        y[::4] = np.nan  # nothing observed: log-density 0
    else:
        y[::3, 1] = np.nan
        y[1::4, 0] = np.nan
        y[2::9] = np.nan
    _close(predictor.log_prob(X, y), model.log_prob(X, y))
    assert np.isfinite(predictor.log_prob(X, y)).all()
    dist = predictor.predict_dist(X)  # every row at once, in NumPy
    assert isinstance(dist, LogGaussianMixture if model.target_transform else GaussianMixture)
    assert isinstance(dist.mean(), np.ndarray)
    _close(dist.log_prob(y.reshape(len(X), -1)), model.log_prob(X, y))


def test_results_do_not_depend_on_the_chunk_size(case):
    model, path, predictor, X, y = case
    small = OnnxPredictor(path, chunk_size=7, n_threads=1)  # 7 // members rows a run
    # Not to the bit: onnxruntime's float32 products round by batch size.
    _close(small.log_prob(X, y), predictor.log_prob(X, y))
    _close(small.predict_interval(X)[1], predictor.predict_interval(X)[1], _spread(model))


def test_samples_follow_the_predicted_distribution(case):
    model, _, predictor, X, _ = case
    rows = X.iloc[:3]
    draws = predictor.sample(rows, n_samples=4000, random_state=0)
    assert draws.shape == (4000, 3, *(() if model.output_1d_ else (model.n_outputs_,)))
    np.testing.assert_array_equal(draws, predictor.sample(rows, 4000, random_state=0))
    if model.target_transform == "log":
        assert (draws > 0).all()
    # The share of draws below MDN's own quantiles, within 4.5 standard errors.
    lower, upper = model.predict_interval(rows, coverage=0.9)
    quantiles = {0.05: lower, 0.5: model.predict(rows, point="median"), 0.95: upper}
    for level, quantile in quantiles.items():
        share = (draws < np.asarray(quantile)).mean(0)
        assert np.abs(share - level).max() < 4.5 * np.sqrt(level * (1 - level) / 4000)


# ---------------------------------------------------------------------- without torch
@pytest.mark.parametrize("case", ["full-3d-ensemble-log"], indirect=True)
def test_the_predictor_runs_where_torch_cannot_be_imported(case, tmp_path):
    model, path, _, X, y = case
    np.save(tmp_path / "X.npy", X.to_numpy())
    np.save(tmp_path / "y.npy", np.asarray(y, dtype=np.float64))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import numpy as np
        from mdn.onnx import OnnxPredictor
        p = OnnxPredictor({str(path)!r})
        X, y = np.load({str(tmp_path / "X.npy")!r}), np.load({str(tmp_path / "y.npy")!r})
        lower, upper = p.predict_interval(X, 0.9)
        np.savez({str(tmp_path / "out.npz")!r}, median=p.predict(X, "median"), lower=lower,
                 upper=upper, log_prob=p.log_prob(X, y))
        loaded = [name for name, module in sys.modules.items()
                  if module is not None and name.split(".")[0] in ("torch", "sklearn", "scipy")]
        print(",".join(loaded))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ""  # neither torch nor mdn's other dependencies
    out = np.load(tmp_path / "out.npz")
    lower, upper = model.predict_interval(X, 0.9)
    _close(out["median"], model.predict(X, "median"), _spread(model))
    _close(out["lower"], lower, _spread(model))
    _close(out["upper"], upper, _spread(model))
    _close(out["log_prob"], model.log_prob(X, y))


# ---------------------------------------------------------------------- format 1
FORMAT_1 = Path(__file__).parents[1] / "fixtures" / "onnx_format1"


@pytest.mark.parametrize("covariance", ["full", "spherical"])
def test_files_of_format_1_predict_what_they_did(covariance):
    """Graphs written before the outputs became precision factors (``scale`` instead): the
    file and what the predictor of that time returned for it."""
    predictor = OnnxPredictor(FORMAT_1 / f"{covariance}.onnx")
    assert predictor.metadata["mdn_onnx_format"] == 1
    with np.load(FORMAT_1 / f"{covariance}.npz") as stored:
        expected = dict(stored)
    X = pd.DataFrame(expected["X"], columns=["a", "b"])
    lower, upper = predictor.predict_interval(X, 0.8)
    for name, got in (
        ("mean", predictor.predict(X, "mean")),
        ("top", predictor.predict(X, "top")),
        ("lower", lower),
        ("upper", upper),
        ("log_prob", predictor.log_prob(X, expected["y"])),
        ("sample", predictor.sample(X, n_samples=3, random_state=0)),  # the same draws
    ):
        np.testing.assert_allclose(np.asarray(got), expected[name], rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize("case", ["full-3d-ensemble-log"], indirect=True)
def test_a_damaged_model_file_is_not_exported(case, tmp_path):
    model = case[0]
    model.save(tmp_path / "model.safetensors")
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF  # a flipped bit in a tensor: the checksum fails
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(mdn.ModelFileError) as load_error:
        mdn.load(bad)
    result = CliRunner().invoke(main, ["export", str(bad), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert str(load_error.value) in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_a_fitted_state_that_load_would_refuse_is_not_exported(tmp_path):
    with pytest.raises(Exception, match="not fitted"):
        MDN().export_onnx(tmp_path / "m.onnx")
    X, y = _data(60, 3)
    model = MDN(n_mix=2, hidden=(4,), n_iter=5, n_models=1, verbose=0).fit(X, y[:, 0])
    model.component_scale_ = 50.0  # outside the bounds that mdn.load accepts
    with pytest.raises(ValueError, match=r"checks of mdn\.load.*component_scale_"):
        model.export_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("case", ["full-3d-ensemble-log"], indirect=True)
def test_bad_inputs_are_named(case, tmp_path):
    model, path, predictor, X, y = case
    with pytest.raises(ValueError, match="point must be one of"):
        predictor.predict(X, point="centre")
    with pytest.raises(ValueError, match="coverage"):
        predictor.predict_interval(X, coverage=1.0)
    with pytest.raises(ValueError, match="n_samples"):
        predictor.sample(X, n_samples=0)
    with pytest.raises(ValueError, match=r"shape \(n_rows, 2\)"):
        predictor.predict(X.to_numpy()[:, 0])
    with pytest.raises(ValueError, match="columns"):
        predictor.predict(X[["b", "a"]])
    bad = X.to_numpy().copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3, column 1"):
        predictor.predict(bad)
    with pytest.raises(ValueError, match="target column"):
        predictor.log_prob(X, np.zeros((len(X), model.n_outputs_ + 1)))
    with pytest.raises(ValueError, match="different numbers of rows"):
        predictor.log_prob(X.iloc[:5], y)
    with pytest.raises(ValueError, match="chunk_size"):
        OnnxPredictor(path, chunk_size=0)
    with pytest.raises(FileNotFoundError):
        OnnxPredictor(tmp_path / "absent.onnx")


def test_an_onnx_file_not_written_by_mdn_is_refused(tmp_path):
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["X"], ["Y"])],
        "plain",
        [tensor("X", onnx.TensorProto.DOUBLE, ["n", 2])],
        [tensor("Y", onnx.TensorProto.DOUBLE, ["n", 2])],
    )
    onnx.save_model(onnx.helper.make_model(graph), tmp_path / "plain.onnx")
    with pytest.raises(ValueError, match="not an ONNX file written by mdn"):
        OnnxPredictor(tmp_path / "plain.onnx")
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(ValueError, match="not an ONNX file onnxruntime can read"):
        OnnxPredictor(tmp_path / "model.safetensors")  # a model file given for its export


# ---------------------------------------------------------------------- NumPy special functions
def test_normal_cdf_and_quantile_match_scipy():
    u = np.concatenate([np.linspace(-37, 8, 20001), [0.0, -1e-8, 1e-8]])
    np.testing.assert_allclose(ndtr(u), special.ndtr(u), rtol=1e-12, atol=0)
    p = np.concatenate(
        [np.logspace(-300, -1, 2000), np.linspace(0.01, 0.99, 2001), 1 - np.logspace(-15, -1, 200)]
    )
    np.testing.assert_allclose(ndtri(p), special.ndtri(p), rtol=1e-11, atol=1e-14)
    assert ndtri(np.array(0.5)) == 0.0


# ---------------------------------------------------------------------- NumPy mixtures
def _numpy_mixture() -> GaussianMixture:
    """Two rows of two 2-D components with full covariances, of NumPy arrays."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=(2, 2, 2, 2))
    covariances = a @ np.swapaxes(a, -1, -2) / 2 + 0.3 * np.eye(2)
    weights = np.array([[0.3, 0.7], [0.6, 0.4]])
    means = rng.normal(size=(2, 2, 2))
    factor = precision_cholesky_from_covariance(covariances)
    return GaussianMixture(np.log(weights), means, factor, "full")


def test_a_mixture_of_numpy_arrays_against_scipy():
    mixture = _numpy_mixture()
    weights, means = np.exp(mixture.log_weights), mixture.means
    covariances = mixture.component_covariance_matrices()
    std = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))  # [B, K, D]
    y = np.random.default_rng(8).normal(size=(5, 2, 2))
    y[0, 0, 1] = np.nan  # missing: that point's density is the first coordinate's marginal
    expected = np.zeros((5, 2))
    for b, k in np.ndindex(2, 2):
        density = stats.multivariate_normal(means[b, k], covariances[b, k]).pdf
        expected[:, b] += weights[b, k] * density(np.nan_to_num(y[:, b]))
    expected[0, 0] = np.sum(weights[0] * stats.norm.pdf(y[0, 0, 0], means[0, :, 0], std[0, :, 0]))
    np.testing.assert_allclose(mixture.log_prob(y), np.log(expected), rtol=1e-10)

    def cdf(x: np.ndarray) -> np.ndarray:  # each dimension's marginal, [B, D]
        return np.sum(weights[..., None] * stats.norm.cdf(x[:, None], means, std), axis=1)

    lower, upper = mixture.interval(0.8)
    np.testing.assert_allclose(cdf(lower), 0.1, rtol=1e-10)
    np.testing.assert_allclose(cdf(upper), 0.9, rtol=1e-10)
    np.testing.assert_allclose(mixture.mean(), np.sum(weights[..., None] * means, axis=1))
    draws = mixture.sample(40_000, np.random.default_rng(9))
    np.testing.assert_allclose(draws.mean(0), mixture.mean(), atol=0.03)
    # The mode has the highest density on a fine grid around it.
    mode = mixture.mode()
    steps = np.stack(np.meshgrid(*[np.linspace(-0.05, 0.05, 21)] * 2), -1).reshape(-1, 1, 2)
    assert (mixture.log_prob(mode[None] + steps) <= mixture.log_prob(mode) + 1e-12).all()


def test_a_log_mixture_of_numpy_arrays_is_the_exp_of_its_base():
    base = _numpy_mixture()
    log_mixture = LogGaussianMixture(base)
    y = np.exp(np.random.default_rng(10).normal(size=(4, 2, 2)))
    jacobian = np.sum(np.log(y), axis=-1)
    np.testing.assert_allclose(log_mixture.log_prob(y), base.log_prob(np.log(y)) - jacobian)
    assert log_mixture.log_prob(-y).max() == -np.inf
    np.testing.assert_allclose(log_mixture.median(), np.exp(base.median()))
    variances = np.diagonal(base.component_covariance_matrices(), axis1=-2, axis2=-1)
    lognormal_means = np.exp(base.means + variances / 2)  # per component, closed form
    np.testing.assert_allclose(
        log_mixture.mean(), np.sum(np.exp(base.log_weights)[..., None] * lognormal_means, 1)
    )


# ---------------------------------------------------------------------- spectral features
def test_spectral_features_run_inside_the_graph(tmp_path):
    rng = np.random.default_rng(0)
    names = ["Rrs_443", "Rrs_490", "Rrs_560", "Rrs_665"]
    X = pd.DataFrame(np.exp(rng.normal(-5.5, 0.6, size=(200, 4))), columns=names)
    y = np.exp(2 * np.log(X["Rrs_443"] / X["Rrs_560"]) + 0.1 * rng.normal(size=200))
    model = MDN(
        n_mix=3,
        hidden=(16,),
        n_iter=30,
        n_models=2,
        target_transform="log",
        spectral_features="shape",
        verbose=0,
        random_state=0,
    ).fit(X, y)
    model.export_onnx(tmp_path / "shape.onnx")
    predictor = OnnxPredictor(tmp_path / "shape.onnx")
    _close(predictor.predict(X), model.predict(X), np.exp(np.abs(model.y_scale_)))
    upper = predictor.predict_interval(X, 0.9)[1]
    _close(upper, model.predict_interval(X, 0.9)[1], np.exp(np.abs(model.y_scale_)))
    _close(predictor.novelty(X), model.novelty(X))  # the input density, inside the graph too
    assert predictor.metadata["novelty_threshold"] == model.novelty_threshold_
