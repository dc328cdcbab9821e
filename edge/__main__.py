"""``python -m edge``: see :mod:`edge.cli`."""

from runtime.report import start

start("edge.cli")
