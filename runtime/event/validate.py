"""The event engine's input check: :mod:`runtime.eventinput`, shared with the clock-driven
runtime and the SDK (one validation for every path)."""

from ..eventinput import MAX_T_US, EventInputError, check_batch, check_events, check_stream

__all__ = ["MAX_T_US", "EventInputError", "check_batch", "check_events", "check_stream"]
