"""Checkpoints (DESIGN.md §3): plain types and tensors, read with ``weights_only=True``.

``{"format": "flexsnn-checkpoint/2", "config": {model, neuron, data, method},
"state_dict": ..., "metrics": {...}}``. The config alone rebuilds the model through the
model registry; nothing is pickled as code, and a file that would need it is refused.

Version 2 stores the neuron as ``{"spec": NeuronSpec.to_dict(), "surrogate": ...}`` (any
registered kind); version 1 files (the LIF/IF/LI fields flat beside the surrogate) are
read and upgraded on load.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from runtime.fileio import write_atomic

from .config import Config, ConfigError
from .models import SpikingNet, build_model

FORMAT = "flexsnn-checkpoint/2"
FORMAT_NAME = FORMAT.split("/")[0]
READ_FORMATS = (f"{FORMAT_NAME}/1", FORMAT)


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message says why."""


def save_checkpoint(path: str | Path, cfg: Config, model: SpikingNet, metrics: dict[str, Any]) -> None:
    """Write atomically: a crash never leaves a half-written checkpoint at ``path``."""
    payload = {"format": FORMAT, "config": cfg.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "metrics": metrics}
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, validated for format; never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notices would break the one error line
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any pickled global (class, function): that is a file that
        # would run code, as opposed to one that is merely unreadable
        culprit = next((line for line in str(e).splitlines() if "GLOBAL" in line), None)
        if culprit:
            raise CheckpointError(f"{path} is refused: loading it would run code ({culprit.strip()})") from None
        raise CheckpointError(f"{path} is not a torch checkpoint (unreadable pickle data)") from None
    # torch's weights-only unpickler fails on garbage with whatever error the bytes provoke
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError, TypeError) as e:
        raise CheckpointError(f"{path} is not a torch checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"{path} is not a flexsnn checkpoint (no 'format' entry)")
    fmt = ckpt["format"]
    if not isinstance(fmt, str) or fmt.split("/")[0] != FORMAT_NAME:
        raise CheckpointError(f"{path} is a foreign checkpoint (format {fmt!r}); expected {FORMAT!r}")
    if fmt not in READ_FORMATS:
        raise CheckpointError(f"{path} has checkpoint format version {fmt!r}; this version reads {list(READ_FORMATS)}")
    for key in ("config", "state_dict", "metrics"):
        if not isinstance(ckpt.get(key), dict):
            raise CheckpointError(f"{path} has no {key!r} dict")
    if fmt == READ_FORMATS[0]:
        ckpt["config"] = upgrade_v1_config(ckpt["config"])
    return ckpt


def upgrade_v1_config(config: dict[str, Any]) -> dict[str, Any]:
    """A version-1 config in version-2 form: the flat neuron fields become a spec dict."""
    neuron = config.get("neuron")
    if not isinstance(neuron, dict):
        return config  # Config.from_dict names the missing section
    spec = {k: v for k, v in neuron.items() if k != "surrogate"}
    return {**config, "neuron": {"spec": spec, "surrogate": neuron.get("surrogate", "triangle")}}


def load_checkpoint(path: str | Path) -> tuple[Config, SpikingNet, dict[str, Any]]:
    """Rebuild ``(config, model in eval mode, metrics)`` from a checkpoint file."""
    ckpt = read_checkpoint(path)
    try:
        cfg = Config.from_dict(ckpt["config"])
        model = build_model(cfg)
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has an invalid config: {e}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the config's model ({str(e).splitlines()[0]})") from None
    return cfg, model.eval(), ckpt["metrics"]
