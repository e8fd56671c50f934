"""Refresh the help text in each command page from the `mdn` command itself.

Each page holds its command's `--help` between ``<!-- help -->`` and ``<!-- /help -->``;
tests/cli/test_docs.py fails when a page and its command disagree. Run after changing a
command's options::

    python docs/commands/update_help.py
"""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from mdn.cli import main

PAGES = Path(__file__).resolve().parent
BLOCK = re.compile(r"<!-- help -->\n```text\n.*?```\n<!-- /help -->", re.S)


def help_text(command: str) -> str:
    """The `mdn COMMAND --help` output, at a fixed width so that pages do not depend on the
    terminal."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=100)
    return result.output


def block(command: str) -> str:
    return f"<!-- help -->\n```text\n{help_text(command)}```\n<!-- /help -->"


def main_() -> None:
    for command in sorted(main.commands):
        page = PAGES / f"{command}.md"
        if not page.is_file():
            print(f"no page for `mdn {command}`: write {page} with an empty help block")
            continue
        text = page.read_text()
        page.write_text(BLOCK.sub(lambda _, name=command: block(name), text))
        print(f"updated {page}")


if __name__ == "__main__":
    main_()
