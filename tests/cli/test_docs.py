"""The user guide's command pages hold each command's current --help."""

import importlib.util
from pathlib import Path

import pytest

from mdn.cli import main

PAGES = Path(__file__).resolve().parents[2] / "docs" / "commands"
spec = importlib.util.spec_from_file_location("update_help", PAGES / "update_help.py")
update_help = importlib.util.module_from_spec(spec)
spec.loader.exec_module(update_help)


@pytest.mark.parametrize("command", sorted(main.commands))
def test_each_command_has_a_page_with_its_current_help(command):
    page = PAGES / f"{command}.md"
    assert page.is_file(), f"write {page} (see docs/commands/update_help.py)"
    assert update_help.block(command) in page.read_text(), (
        f"{page} is out of date: run python docs/commands/update_help.py"
    )
