"""``python -m hookline.cli``: the ``hookline`` command."""

from hookline.cli import main

main()
