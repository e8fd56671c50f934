"""``mdn plot``: the retrieval figure of a model on a table."""

from __future__ import annotations

import click

from mdn.cli.inputs import load_model, model_targets, scored_rows
from mdn.cli.tables import atomic_output, check_output_path, read_table
from mdn.params import POINTS

__all__ = ["plot"]

FIGURE_TYPES = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpg"}


@click.command()
@click.argument("model_file", metavar="MODEL", type=click.Path())
@click.argument("data", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="PNG, PDF, SVG or JPG.")
@click.option(
    "--point",
    type=click.Choice(POINTS),
    default=None,
    help="The estimate on the vertical axis (default: the model's).",
)
@click.option("--coverage", default=0.9, show_default=True, help="Interval drawn as bars.")
@click.option(
    "--rows",
    default="0,1,2",
    show_default=True,
    help="Rows of DATA whose predicted density is drawn.",
)
def plot(model_file, data, output, point, coverage, rows):
    """Draw MODEL against the observations in DATA and save the figure to --output.

    Observed against predicted per target (log axes for a log target) with interval bars, a
    1:1 line and a box of MdSA, SSPB and slope; the PIT histogram; the training curve; the
    predicted density of --rows.

    \b
    Example:
      mdn plot chl.safetensors test.csv -o chl.png --point median --rows 3,40,200
    """
    output = check_output_path(output, FIGURE_TYPES)
    try:
        chosen = [int(r) for r in rows.split(",") if r.strip()]
    except ValueError:
        raise ValueError(f"--rows must be row numbers such as 0,5,9, got {rows!r}") from None
    model, table = load_model(model_file), read_table(data)
    X, y, keep = scored_rows(model, table, data)
    names = model_targets(model)
    positions = {row: i for i, row in enumerate(keep)}
    from mdn.plotting.retrieval import plot_retrieval

    figure = plot_retrieval(
        model,
        X,
        y,
        point=point,
        coverage=coverage,
        rows=[positions[r] for r in chosen if r in positions],
        target_names=names,
    )
    with atomic_output(output) as temporary:
        figure.savefig(temporary, dpi=120, format=FIGURE_TYPES[output.suffix.lower()])
    click.echo(f"wrote {output}")
