"""``mdn predict``, ``mdn evaluate`` and ``mdn info``: use a saved model on a table."""

from __future__ import annotations

import json

import click
import numpy as np

from mdn.cli.inputs import load_model, model_inputs, model_targets, scored_rows
from mdn.cli.report import print_table
from mdn.cli.tables import check_output_path, read_table, write_table
from mdn.estimator.prediction import n_members, resolved_point
from mdn.metrics import per_target
from mdn.params import POINTS, validate_argument
from mdn.tensor_files import read_model_file

__all__ = ["evaluate", "info", "predict"]

_POINT = click.option(
    "--point",
    type=click.Choice(POINTS),
    default=None,
    help="The point estimate (default: the model's, see `mdn info`).",
)


def _point_kwargs(point: str | None) -> dict[str, str]:
    return {} if point is None else {"point": point}


def _note_unusable(usable: np.ndarray) -> None:
    if not usable.all():
        click.echo(
            f"mdn: note: {int((~usable).sum())} of {len(usable)} rows have a missing or "
            "non-finite feature; their outputs are empty (NaN)",
            err=True,
        )


@click.command()
@click.argument("model_file", metavar="MODEL", type=click.Path())
@click.argument("data", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="CSV or Parquet to write.")
@_POINT
@click.option("--interval", type=float, help="Also the central interval of this coverage (0.9).")
@click.option("--samples", type=int, default=0, help="Also N draws from p(y|x) per row.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws.")
@click.option("--id", "id_columns", multiple=True, help="Column(s) to copy to the output.")
@click.option(
    "--novelty",
    is_flag=True,
    help="Also each row's novelty score and whether it is beyond the model's threshold.",
)
def predict(model_file, data, output, point, interval, samples, seed, id_columns, novelty):
    """Predict each row of DATA with MODEL and write the estimates to --output.

    The model's feature columns are taken from DATA by name. Per target T the output has
    T_<point> and, with --interval C, T_lower and T_upper (the central interval holding a
    share C of p(y|x)); with --samples N, T_sample_0 ... T_sample_<N-1>; with --novelty,
    novelty (how far the row lies from the training inputs, MDN.novelty) and novel (above
    the model's threshold, which 99 % of its training rows stay below).

    \b
    Examples:
      mdn predict chl.safetensors new.csv -o chl.csv --interval 0.9 --id station
      mdn predict chl.safetensors pixels.parquet -o out.parquet --point median --samples 20
    """
    output = check_output_path(output)
    if interval is not None:
        validate_argument("interval", interval, label="--interval")
    if samples < 0:
        raise ValueError(f"--samples must be >= 0, got {samples}")
    model, table = load_model(model_file), read_table(data)
    X, usable = model_inputs(model, table)
    missing = [c for c in id_columns if c not in table.columns]
    if missing:
        raise ValueError(f"no id column {', '.join(map(repr, missing))} in {data}")
    out = table[list(id_columns)].copy()
    names, rows = model_targets(model), np.flatnonzero(usable)
    chosen = resolved_point(model, point)

    def put(suffix: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(len(rows), len(names))
        for d, name in enumerate(names):
            column = np.full(len(table), np.nan)
            column[rows] = values[:, d]
            out[f"{name}_{suffix}"] = column

    if len(rows):
        put(chosen, model.predict(X.iloc[rows], **_point_kwargs(point)))
        if interval is not None:
            lower, upper = model.predict_interval(X.iloc[rows], coverage=interval)
            put("lower", lower)
            put("upper", upper)
        if samples:
            draws = np.asarray(model.sample(X.iloc[rows], n_samples=samples, random_state=seed))
            for s in range(samples):
                put(f"sample_{s}", draws[s])
        if novelty:
            scores = np.full(len(table), np.nan)
            scores[rows] = model.novelty(X.iloc[rows])
            out["novelty"], out["novel"] = scores, scores > model.novelty_threshold_
    _note_unusable(usable)
    write_table(out, output)
    click.echo(f"wrote {output} ({len(table)} rows, {len(rows)} predicted)")


@click.command()
@click.argument("model_file", metavar="MODEL", type=click.Path())
@click.argument("data", type=click.Path())
@_POINT
@click.option(
    "--coverage",
    "level",
    default=0.9,
    show_default=True,
    help="Nominal coverage of the interval whose hit rate is scored.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def evaluate(model_file, data, point, level, as_json):
    """Score MODEL on the rows of DATA that have its features and targets.

    Per target: NLL (of the target, and of log10 of a positive one), CRPS, the coverage of
    the central interval, RMSE; for positive targets also MdSA and SSPB (%), log10 MAE and
    bias, the slope of the log-log fit and the share of invalid pairs.

    \b
    Examples:
      mdn evaluate chl.safetensors test.csv
      mdn evaluate chl.safetensors test.parquet --point median --json > scores.json
    """
    model, table = load_model(model_file), read_table(data)
    X, y, _ = scored_rows(model, table, data)
    names = model_targets(model)
    estimate = np.asarray(model.predict(X, **_point_kwargs(point)), dtype=np.float64)
    scores = per_target(model.predict_dist(X), y, estimate.reshape(y.shape), level)
    rows = [{"target": name, **s} for name, s in zip(names, scores, strict=True)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        print_table(rows)


@click.command()
@click.argument("model_file", metavar="MODEL", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model_file, as_json):
    """What MODEL is: inputs, targets, parameters, versions, training summary.

    \b
    Example:
      mdn info chl.safetensors
    """
    model = load_model(model_file)
    _, documents = read_model_file(model_file)
    history = model.history_
    val = [v for v in history.get("val_nll") or [] if v is not None]
    summary = {
        "file": str(model_file),
        "features": [str(n) for n in getattr(model, "feature_names_in_", [])]
        or model.n_features_in_,
        "targets": model_targets(model),
        "target_transform": model.target_transform,
        "members": n_members(model),
        "iterations": model.n_iter_,
        "best_step": history.get("best_step"),
        "best_validation_nll": min(val) if val else None,
        "recalibration": {
            "member_spread": model.member_spread_,
            "component_scale": model.component_scale_,
            "tail_weight": model.tail_weight_,
        },
        "parameters": documents["params"],
        "versions": documents["versions"],
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for name, item in value.items():
                click.echo(f"  {name}: {item}")
        else:
            click.echo(f"{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
