"""Edits of a JSON document (the ONNX protocol metadata) at a path of keys and indices:
what the property test of the metadata parser and ``experiments/fuzz_cli.py`` change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Path = tuple[Any, ...]


def json_paths(obj: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path in ``obj``, depth first, the root ``()`` first."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from json_paths(v, (*prefix, i))


def edit(obj: Any, path: Path, value: Any, delete: bool) -> None:
    """Set (or ``delete``) the item at ``path`` (not the root) in place; KeyError,
    IndexError or TypeError where an earlier edit removed or replaced its parent."""
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
