"""``python -m trainer``: see :mod:`trainer.cli`."""

from runtime.report import start

start("trainer.cli")
