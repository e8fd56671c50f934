"""The ``mdn`` command group: shared options and one-line errors.

A failure the user can fix (a missing file or column, a bad value, a file that is not a model)
prints ``mdn <command>: error: <what>`` on stderr and exits with status 2, without a traceback
unless ``--debug`` is given.
"""

from __future__ import annotations

import sys
import warnings

import click

from mdn.tensor_files import ModelFileError

__all__ = ["main"]

#: What a user can fix: reported in one line. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, ImportError, ModelFileError)


class _Group(click.Group):
    """Turns the errors a user can fix into one line on stderr and exit status 2."""

    def main(self, *args: object, standalone_mode: bool = True, **kwargs: object) -> object:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            click.echo("mdn: aborted", err=True)
            sys.exit(1)
        except click.ClickException as error:  # usage: a bad option, a missing argument
            where = error.ctx.command_path if getattr(error, "ctx", None) else "mdn"
            click.echo(f"{where}: error: {error.format_message()} (see {where} --help)", err=True)
            sys.exit(error.exit_code)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            command = ctx.invoked_subcommand or ""
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            click.echo(f"mdn {command}: error: {message}".replace("  ", " "), err=True)
            sys.exit(2)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"mdn: warning: {message}", err=True)


@click.group(name="mdn", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.version_option(package_name="mdn")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Mixture density networks from the shell: fit a model on a table, then predict,
    evaluate, compare settings and plot.

    \b
    Examples:
      mdn fit matchups.csv --target chl --features 'Rrs_*' --log-target -o chl.safetensors
      mdn predict chl.safetensors scene_pixels.parquet -o chl.parquet --interval 0.9
      mdn evaluate chl.safetensors test.csv
      mdn cv matchups.csv --target chl --log-target --baseline oc4 --splits 20
      mdn plot chl.safetensors test.csv -o chl.png
      mdn info chl.safetensors

    Run `mdn COMMAND --help` for each command's options.
    """
    ctx.obj = {"debug": debug}
    if not debug:
        warnings.showwarning = _show_warning
