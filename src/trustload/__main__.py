"""``python -m trustload ...``: the same as the ``trustload`` console script."""

from trustload.cli.entry import main

main()
