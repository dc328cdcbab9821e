"""Errors shared by the clock-driven runtime, the event-driven runtime, the data readers
and the SDK, in a module with no dependencies so that every part can raise them without
import cycles. Each says, in its message, what was expected."""

from __future__ import annotations


class InputError(ValueError):
    """An input the model cannot take; the message says what was expected."""


class ModelError(ValueError):
    """A file that is not a usable flexsnn model; the message says what was expected."""


class DataError(ValueError):
    """A data spec or data folder that cannot be used; the message says what was expected."""
