"""Errors shared by the clock-driven runtime, the event-driven runtime, the data readers
and the SDK, in a module with no dependencies so that every part can raise them without
import cycles. Each says, in its message, what was expected."""

from __future__ import annotations


class InputError(ValueError):
    """An input the model cannot take; the message says what was expected."""


class ModelError(ValueError):
    """A file that is not a usable flexsnn model; the message says what was expected."""


class TrainedRangeWarning(RuntimeWarning):
    """A run that may stop at a T outside the range the model was trained on (its accuracy
    there was never part of training); the run goes ahead. The CLIs report it themselves
    (``warning:`` and ``--json``'s ``warnings``) and silence this one."""


class DataError(ValueError):
    """A data spec or data folder that cannot be used; the message says what was expected."""
