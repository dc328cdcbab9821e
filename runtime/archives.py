"""What a torch zip archive is, from its member names alone (nothing is unpickled): the
three kinds users hand the wrong command, which then named only "a zip archive" or "not a
torch checkpoint (RuntimeError)"."""

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
