"""Data readers, the data-set registry, event files and transforms (numpy only): see
:mod:`runtime.data.datasets`, :mod:`runtime.data.eventfile`, :mod:`runtime.data.transforms`."""

from .datasets import (
    SPEC_FORMS,
    Dataset,
    check_fits,
    load_dataset,
    parse_spec,
    spec_paths,
    with_transforms,
)
from .eventfile import read_events
from .events import BINNINGS, DURATIONS, EVENT_DTYPE, TimeBase, bin_events, make_events
from .registry import DataError

__all__ = [
    "BINNINGS",
    "DURATIONS",
    "EVENT_DTYPE",
    "SPEC_FORMS",
    "DataError",
    "Dataset",
    "TimeBase",
    "bin_events",
    "check_fits",
    "load_dataset",
    "make_events",
    "parse_spec",
    "read_events",
    "spec_paths",
    "with_transforms",
]
