"""``python -m mdn.cli``: the ``mdn`` command."""

from mdn.cli import main

main()
