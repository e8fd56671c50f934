"""``mdn fit`` and ``mdn cv``: train on a table, or compare settings over repeated splits."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from mdn.cli.inputs import training_table
from mdn.cli.report import print_table
from mdn.cli.settings import resolve_params, variant_params
from mdn.estimator.model import MDN
from mdn.metrics import per_target
from mdn.metrics.crossval import cross_validate, summarise, summarise_groups
from mdn.ocean.baselines import BASELINES
from mdn.params import POINTS

__all__ = ["cv", "fit"]

_TABLE_OPTIONS = [
    click.argument("data", type=click.Path()),
    click.option("--target", "-t", required=True, multiple=True,
                 help="Target column(s), comma-separated: chl or chl,tss,cdom."),
    click.option("--features", "-f", multiple=True,
                 help="Feature columns, comma-separated names or globs ('Rrs_*'); "
                      "default: every numeric column but the targets and --id."),
    click.option("--id", "id_column", help="An id column, never a feature."),
    click.option("--groups", "groups_column", metavar="COLUMN",
                 help="A column of groups (water body, dataset), never a feature: validation "
                      "rows are whole groups (fit), splits hold out whole groups (cv)."),
    click.option("--log-target", is_flag=True,
                 help="Fit log(y) for positive, skewed targets (target_transform='log')."),
    click.option("--nonpositive", type=click.Choice(["raise", "missing"]), default=None,
                 help="With --log-target, what targets <= 0 are: refused (raise, the default) "
                      "or missing values (a 0 below detection)."),
    click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
                 help="Any MDN parameter: --set n_mix=3 --set hidden=64,64 --set l2=1e-3."),
    click.option("--params", "params_file", type=click.Path(),
                 help="A JSON or TOML file of MDN parameters; --set wins over it."),
]  # fmt: skip


def _table_options(command):
    for option in reversed(_TABLE_OPTIONS):
        command = option(command)
    return command


@click.command()
@_table_options
@click.option("--output", "-o", required=True, type=click.Path(), help="Model file to write.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def fit(
    data,
    target,
    features,
    id_column,
    groups_column,
    log_target,
    nonpositive,
    assignments,
    params_file,
    output,
    quiet,
):
    """Fit an MDN on the table DATA (CSV or Parquet) and save it.

    The model file records the feature and target names, so that `mdn predict` finds the
    columns by name. The validation rows' scores are printed at the end (validation_fraction
    of the rows, 10 % by default).

    \b
    Examples:
      mdn fit matchups.csv -t chl -f 'Rrs_*' --log-target -o chl.safetensors
      mdn fit sim.csv -t chl,tss,cdom --log-target --set covariance=diag -o diag.safetensors
      mdn fit lakes.csv -t chl,cdom -f 'Rrs_*' --log-target --nonpositive missing -o m.safetensors
      mdn fit data.parquet -t y --params settings.toml --set n_models=10 -o model.safetensors
    """
    params = resolve_params(assignments, params_file, log_target, nonpositive)
    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"{output}: the folder {output.parent} does not exist")
    table = training_table(data, target, features, id_column, groups_column)
    params.setdefault("verbose", 0 if quiet else 1)
    targets = table.targets[0] if len(table.targets) == 1 else table.targets  # 1 target: 1-D
    frame = table.frame
    model = MDN(**params).fit(frame[table.features], frame[targets], groups=table.groups)
    model.save(output)
    click.echo(f"saved {output} ({len(table.y)} rows, {model.n_iter_} iterations)")
    if model.validation_rows_ is not None:
        rows = model.validation_rows_
        X, y = table.frame[table.features].iloc[rows], table.y[rows]
        scores = per_target(model.predict_dist(X), y, np.asarray(model.predict(X)).reshape(y.shape))
        click.echo(f"validation rows ({len(rows)}):")
        print_table([{"target": t, **s} for t, s in zip(table.targets, scores, strict=True)])


def _splits(text: str) -> list[int]:
    if "-" in text:
        low, high = (int(v) for v in text.split("-"))
        return list(range(low, high + 1))
    if "," in text:
        return [int(v) for v in text.split(",")]
    return list(range(int(text)))


@click.command()
@_table_options
@click.option(
    "--splits",
    default="20",
    show_default=True,
    help="How many splits (seeds 0..N-1), a range 5-9 or a list 0,3,7.",
)
@click.option(
    "--test-size",
    default=0.5,
    show_default=True,
    type=float,
    help="Share of rows held out in each split (random splits).",
)
@click.option(
    "--test-groups",
    default=4,
    show_default=True,
    type=int,
    help="With --groups: groups held out in each split.",
)
@click.option(
    "--baseline",
    type=click.Choice(sorted(BASELINES)),
    multiple=True,
    help="A classical algorithm scored on the same test rows.",
)
@click.option(
    "--variant",
    multiple=True,
    metavar="SETTINGS",
    help="Another setting to compare, fitted on the same splits: a preset "
    "(reference, default) and/or NAME=VALUE items joined by ';'.",
)
@click.option(
    "--point",
    type=click.Choice(POINTS),
    default=None,
    help="The point estimate the point metrics score (default: the model's).",
)
@click.option("--jobs", "-j", default=1, show_default=True, help="Fits run side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def cv(
    data,
    target,
    features,
    id_column,
    groups_column,
    log_target,
    nonpositive,
    assignments,
    params_file,
    splits,
    test_size,
    test_groups,
    baseline,
    variant,
    point,
    jobs,
    as_json,
):
    """Compare settings on repeated splits of DATA, random or leaving groups out.

    Split s is numpy.random.RandomState(s).permutation(n), its first rows for training, the
    last --test-size share for testing; with --groups COLUMN, split s holds out --test-groups
    whole groups instead (scikit-learn's GroupShuffleSplit, seed s), and each fit validates on
    whole groups of its training rows: how the model does in waters it never saw. Every method
    sees the same splits. Prints the mean and standard deviation over splits of every score,
    per method and target, and with --groups a second table per held-out group.

    \b
    Examples:
      mdn cv nomad_chl.csv -t chl -f 'Rrs_*' --log-target --baseline oc4 --splits 20
      mdn cv data.csv -t y --variant 'n_mix=3' --variant 'covariance=diag;l2=1e-3' -j 2
      mdn cv nomad_chl.csv -t chl --log-target --variant reference --splits 0-1
      mdn cv gloria.csv -t chl -f 'Rrs_*' --log-target --groups Dataset_ID --splits 10
    """
    base = resolve_params(assignments, params_file, log_target, nonpositive)
    methods = {"mdn": MDN(**base)}
    for text in variant:
        methods[text] = MDN(**{**base, **variant_params(text)})
    table = training_table(data, target, features, id_column, groups_column)
    if baseline and len(table.targets) != 1:
        raise ValueError("--baseline estimates one target (chlorophyll-a); give one --target")
    baselines = {name: BASELINES[name](table.frame) for name in baseline}
    results = cross_validate(
        table.X,
        table.y,
        methods,
        splits=_splits(splits),
        test_size=test_size,
        point=point,
        baselines=baselines,
        n_jobs=jobs,
        groups=table.groups,
        test_groups=test_groups,
    )
    rows = summarise(results, table.targets)
    if table.groups is None:
        _report(rows, None, as_json)
    else:
        _report(rows, summarise_groups(results["by_group"], table.targets), as_json)


#: The scores of the per-group table: one line each, means over the splits.
_GROUP_SCORES = ("n", "nll", "coverage_90", "rmse", "mdsa", "sspb", "log_mae", "log_bias")


def _report(rows: list[dict], by_group: list[dict] | None, as_json: bool) -> None:
    """The cross-validation's tables: the splits' scores, then each held-out group's."""
    if as_json:
        tables = rows if by_group is None else {"splits": rows, "groups": by_group}
        click.echo(json.dumps(tables, indent=2))
        return
    print_table(rows, spread=True, transpose=True)
    if by_group:
        click.echo("held-out groups, means over the splits that held each out:")
        print_table([_group_line(row) for row in by_group])


def _group_line(row: dict) -> dict:
    head = {key: row[key] for key in ("method", "target", "group", "splits")}
    return head | {k: row[f"{k}_mean"] for k in _GROUP_SCORES if f"{k}_mean" in row}
