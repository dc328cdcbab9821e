"""``python -m export``: see :mod:`export.cli`."""

from runtime.report import start

start("export.cli")
