"""Errors shared by the clock-driven runtime, the event-driven runtime and the SDK, in a
module with no dependencies so that every part can raise them without import cycles."""

from __future__ import annotations


class InputError(ValueError):
    """An input the model cannot take; the message says what was expected."""
