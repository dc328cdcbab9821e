"""``python -m runtime``: see :mod:`runtime.cli`."""

from runtime.report import start

start("runtime.cli")
