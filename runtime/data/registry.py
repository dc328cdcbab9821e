"""The data-set registry: one entry per data-set family, asked by every part.

An entry names its spec forms (``nmnist:PATH``), checks its argument, and loads a split
as a :class:`runtime.data.Dataset` that declares its kind, shape, classes and durations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import DataError


@dataclass(frozen=True)
class Source:
    name: str
    forms: tuple[str, ...]
    about: str
    load: Callable[[str, str, str], Any]  # (argument, split, spec) -> Dataset
    parse: Callable[[str, str], str]  # (argument, spec) -> checked argument


_SOURCES: dict[str, Source] = {}


def register(src: Source) -> None:
    if src.name in _SOURCES:
        raise ValueError(f"data source {src.name!r} is registered twice")
    _SOURCES[src.name] = src


def spec_forms() -> list[str]:
    return [f for s in _SOURCES.values() for f in s.forms]


def source(spec: str) -> Source:
    name = spec.partition(":")[0]
    if name not in _SOURCES:
        raise DataError(f"unknown data spec {spec!r}; expected one of {spec_forms()}")
    return _SOURCES[name]
