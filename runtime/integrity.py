"""The SHA-256 digest an exported ONNX file carries, and its check when a file is read.

The digest covers everything that decides what the model computes: the graph (nodes,
their attributes, the initializers, i.e. the weights) and the model-local functions,
serialised deterministically, plus the product's metadata (keys ``flexsnn.*``: the
protocol). It is stored in the metadata entry :data:`KEY`, beside the protocol, so the
protocol JSON itself is unchanged. Other metadata keys a user or tool adds (an owner, a
note) change nothing the model computes and are not covered: such a file still loads.

A file written before the digest existed still loads, with a one-line note on stderr;
one whose digest does not match is refused, naming the file.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import onnx

KEY = "flexsnn.sha256"
_noted: set[str] = set()


class IntegrityError(ValueError):
    """A file whose content does not match its stored digest."""


def onnx_digest(model: onnx.ModelProto) -> str:
    h = hashlib.sha256()
    h.update(model.graph.SerializeToString(deterministic=True))
    for f in model.functions:
        h.update(f.SerializeToString(deterministic=True))
    for p in sorted((p.key, p.value) for p in model.metadata_props if p.key.startswith("flexsnn.") and p.key != KEY):
        h.update(f"{p[0]}={p[1]};".encode())
    return h.hexdigest()


def stamp_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store the digest of ``model`` in its metadata (the last change before it is saved)."""
    props = {p.key: p.value for p in model.metadata_props if p.key != KEY}
    props[KEY] = onnx_digest(model)
    onnx.helper.set_model_props(model, props)
    return model


def verify_onnx(model: onnx.ModelProto, path: str | Path) -> None:
    """Raise :class:`IntegrityError` if the stored digest does not match; a note if none."""
    stored = next((p.value for p in model.metadata_props if p.key == KEY), None)
    if stored is None:
        if str(path) not in _noted:  # once per file and process: a loop of loads stays readable
            _noted.add(str(path))
            print(
                f"note: {path} carries no weight digest (exported before digests were added); "
                "its integrity cannot be checked",
                file=sys.stderr,
            )
        return
    if stored != onnx_digest(model):
        raise IntegrityError(
            f"{path} has changed since export: its graph, weights or protocol metadata do not match the SHA-256 "
            "digest stored in it (a damaged file, or one rewritten by a tool: onnx's version_converter, an "
            "onnxruntime optimized-model save); flexsnn runs files as exported: re-export it from the checkpoint"
        )


def external_data(model: onnx.ModelProto) -> list[str]:
    """Names of initializers stored outside the file (flexsnn files are self-contained)."""
    return [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data]
