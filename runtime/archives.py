"""What a file users hand the wrong command is, from its content alone (nothing is
unpickled): a TorchScript or torch.export archive by its member names (the command named
only "a zip archive" or "not a torch checkpoint (RuntimeError)"), an ONNX model or a NIR
graph by its bytes (a checkpoint reader said "unreadable pickle data")."""

from __future__ import annotations

import zipfile
from pathlib import Path

# (what it is, what reads it), by the member that only that kind writes
TORCHSCRIPT = ("a TorchScript file (python -m export --format torchscript)", "torch.jit.load")
PT2 = ("a torch.export file (python -m export --format pt2)", "torch.export.load")


def torch_program(path: str | Path) -> tuple[str, str] | None:
    """``(what it is, what loads it)`` for a TorchScript or torch.export archive, else None
    (a checkpoint, another zip, or no zip at all)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    tails = {n.split("/", 1)[-1] for n in names}  # below the archive's one top folder
    if any(t.startswith("code/") for t in tails):
        return TORCHSCRIPT
    if "archive_format" in tails or any(t.startswith("models/") for t in tails):
        return PT2
    return None


def product_file(path: str | Path) -> str | None:
    """What the product's other files are, by their content (a name can lie both ways): a
    NIR graph (HDF5) or an ONNX model; None for anything else, a checkpoint included."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        return "a NIR graph (python -m export model.nir imports it as ONNX)"
    if head.startswith(b"PK") or head[:1] == b"\x80":  # a zip (torch.save) or a pickle: not ONNX
        return None
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # protobuf raises its own DecodeError types for bytes that are no model
        return None
    if model.graph.node and model.opset_import:
        return "an ONNX file (python -m export's output, which the runtime commands read)"
    return None
