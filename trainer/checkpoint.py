"""Checkpoints (DESIGN.md §3): plain types and tensors, read with ``weights_only=True``.

``{"format": "flexsnn-checkpoint/2", "config": {model, neuron, data, method},
"state_dict": ..., "metrics": {...}, "sha256": "..."}``. The config alone rebuilds the
model through the model registry; nothing is pickled as code, and a file that would need
it is refused.

Version 2 stores the neuron as ``{"spec": NeuronSpec.to_dict(), "surrogate": ...}`` (any
registered kind); version 1 files (the LIF/IF/LI fields flat beside the surrogate) are
read and upgraded on load.

Optional ``"train_state"`` (issue 18; ``fit`` writes it): optimizer, scheduler, epoch and
random states, so ``fit --resume`` continues the run exactly. No format bump: readers
ignore the key, and files without it still load (they cannot be resumed).

Integrity: the zip container's CRCs are checked on load (``torch.load`` does not), and
``sha256`` is a digest of everything else in the dict (format, config, metrics, every
tensor's name, dtype, shape and bytes), verified on load. A checkpoint written before
the digest existed still loads, with a one-line note on stderr.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from runtime.archives import product_file, torch_program
from runtime.cliargs import MAX_SIDE, MAX_WIDTH
from runtime.fileio import write_serialized
from runtime.limits import ResourceError, check_memory

from .config import Config, ConfigError
from .models import Net, build_model
from .surrogate import LEGACY_SURROGATE

FORMAT = "flexsnn-checkpoint/2"
FORMAT_NAME = FORMAT.split("/")[0]
READ_FORMATS = (f"{FORMAT_NAME}/1", FORMAT)
DIGEST_KEY = "sha256"
TRAIN_STATE_KEY = "train_state"


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message says why."""


def save_checkpoint(
    path: str | Path,
    cfg: Config,
    model: Net,
    metrics: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write atomically: a crash never leaves a half-written checkpoint at ``path``."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": metrics,
    }
    if train_state is not None:
        payload[TRAIN_STATE_KEY] = train_state
    bad = [k for k, v in payload["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:  # a diverged run (or calibration): NaN/inf weights are never written
        raise CheckpointError(
            f"not writing {path}: {bad[0]} holds NaN or infinite values (training or BN "
            "calibration diverged; try a smaller --lr)"
        )
    payload[DIGEST_KEY] = digest(payload)
    write_serialized(path, lambda f: torch.save(payload, f))


def digest(ckpt: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint dict without its digest entry: the plain entries as
    canonical JSON, then every tensor (sorted by name) as name, dtype, shape and bytes."""
    h = hashlib.sha256()
    plain = {k: v for k, v in ckpt.items() if k not in ("state_dict", DIGEST_KEY, TRAIN_STATE_KEY)}
    h.update(json.dumps(plain, sort_keys=True, default=repr).encode())
    for name in sorted(ckpt["state_dict"]):
        _hash_value(h, name, ckpt["state_dict"][name])
    if TRAIN_STATE_KEY in ckpt:  # absent in older files: their digest is unchanged
        _hash_value(h, TRAIN_STATE_KEY, ckpt[TRAIN_STATE_KEY])
    return h.hexdigest()


def _hash_value(h: Any, name: str, value: Any) -> None:
    """Tensors by dtype, shape and bytes; dicts and lists item by item; the rest by repr."""
    if isinstance(value, torch.Tensor):
        h.update(f"{name}:{value.dtype}:{list(value.shape)};".encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for k in sorted(value, key=repr):
            _hash_value(h, f"{name}.{k!r}", value[k])
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _hash_value(h, f"{name}[{i}]", v)
    else:
        h.update(f"{name}:{value!r};".encode())


def _check_zip(path: Path) -> None:
    """Every member's CRC-32 (torch.load reads the bytes without checking them)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes); expected a checkpoint written by trainer fit")
    try:
        # is_zipfile itself raises BadZipFile on some damaged end records (e.g. a flipped disk count)
        is_zip = zipfile.is_zipfile(path)
        if is_zip:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
    # zlib.error: a flipped bit in a member's compression method makes testzip inflate
    # stored (uncompressed) bytes; RuntimeError: one in its flags marks it encrypted
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error) as e:
        raise CheckpointError(f"{path} is corrupted: its zip container is damaged ({e})") from None
    if not is_zip:
        if head == b"PK\x03\x04":  # a zip's first record without its end: the tail is missing
            raise CheckpointError(
                f"{path} is truncated or corrupted: it starts as a torch checkpoint (a zip archive) but "
                f"its end record is missing ({path.stat().st_size} bytes; an interrupted copy?)"
            )
        return  # legacy (non-zip) torch files: the unpickler and the digest judge them
    if bad is not None:
        raise CheckpointError(f"{path} is corrupted: the CRC of {bad!r} does not match its bytes")
    program = torch_program(path)
    if program is not None:  # was "not a torch checkpoint (RuntimeError)"
        raise CheckpointError(
            f"{path} is {program[0]}, an export's output that {program[1]} reads; expected a checkpoint "
            "written by trainer fit (model.pt)"
        )


def _verify_digest(path: Path, ckpt: dict[str, Any]) -> None:
    want = ckpt.get(DIGEST_KEY)
    if want is None:
        print(
            f"note: {path} carries no weight digest (written before digests were added); "
            "its integrity cannot be checked",
            file=sys.stderr,
        )
        return
    if not isinstance(want, str) or want != digest(ckpt):
        raise CheckpointError(
            f"{path} is corrupted: its weights or config do not match the SHA-256 digest stored in it"
        )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, validated for format and integrity; never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    if (other := product_file(path)) is not None:  # it read as "unreadable pickle data"
        raise CheckpointError(f"{path} is {other}; expected a checkpoint (model.pt from trainer fit)")
    _check_zip(path)
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
    _verify_digest(path, ckpt)
    if fmt == READ_FORMATS[0]:
        ckpt["config"] = upgrade_v1_config(ckpt["config"])
    ckpt["config"] = upgrade_bn_T(upgrade_first_stage(ckpt["config"]), ckpt["metrics"])
    return ckpt


def upgrade_first_stage(config: dict[str, Any]) -> dict[str, Any]:
    """A model of MTT A.2 (``first_stage`` "first") written before its binning was kept:
    trained on the first T of Tmax bins, which fixed bins of the trained width are; its
    file said equal binning, the recording re-binned into T (36% at T=1 where its own
    frames gave 92%)."""
    method, data = config.get("method"), config.get("data")
    if not (isinstance(method, dict) and isinstance(data, dict)):
        return config  # Config.from_dict names the missing section
    old = method.get("first_stage") == "first" and data.get("kind") == "events" and data.get("binning") == "equal"
    if not old or data.get("durations", "dataset") != "dataset":
        return config
    return {**config, "data": {**data, "binning": "fixed"}}


def upgrade_bn_T(config: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint written before its config kept the T of its BatchNorm statistics (or
    saved by the SDK's fit without it): its metrics say it (``bn_calibration_T``). Such a
    file's default T stayed the trained one after `trainer calibrate --T 3`, near chance."""
    method, T = config.get("method"), metrics.get("bn_calibration_T")
    if not (isinstance(method, dict) and method.get("bn_T") is None and isinstance(T, int) and T > 0):
        return config
    return {**config, "method": {**method, "bn_T": T}}


def upgrade_v1_config(config: dict[str, Any]) -> dict[str, Any]:
    """A version-1 config in version-2 form: the flat neuron fields become a spec dict."""
    neuron = config.get("neuron")
    if not isinstance(neuron, dict):
        return config  # Config.from_dict names the missing section
    spec = {k: v for k, v in neuron.items() if k != "surrogate"}
    return {**config, "neuron": {"spec": spec, "surrogate": neuron.get("surrogate", LEGACY_SURROGATE)}}


def build_checked(cfg: Config, what: str) -> Net:
    """Build the model of ``cfg`` after checking that its width, input shape and weights
    fit: the shapes are bounded and the parameter bytes are counted on the meta device
    (nothing allocated) before the real model is built."""
    m = cfg.model
    if not 0 <= m.width <= MAX_WIDTH:
        raise ConfigError(f"{what}: width {m.width} is out of range; expected 0..{MAX_WIDTH}")
    shape = list(m.in_shape)
    if len(shape) not in (1, 3) or not all(isinstance(v, int) and 1 <= v <= MAX_SIDE for v in shape):
        raise ConfigError(
            f"{what}: input shape {shape} must be 3 integers (C, H, W) or 1 (sequence features) in 1..{MAX_SIDE}"
        )
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. zero-element tensors of a model too deep: refused below
            meta = build_model(cfg)
    except NotImplementedError:  # a builder that computes on its weights: count them for real
        meta = None
    if meta is not None:
        empty = next((name for name, t in meta.named_parameters() if t.numel() == 0), None)
        if empty is not None:  # pooled to nothing: the meta step does not see it, training's first step did
            raise ConfigError(
                f"{what} cannot take inputs of shape {shape}: its layer {empty} gets no inputs (the input is too "
                "small for its poolings); expected a larger input, or a model with fewer poolings (e.g. --model "
                "fc-64)"
            )
        n = sum(t.numel() * t.element_size() for t in (*meta.parameters(), *meta.buffers()))
        check_memory(3 * n, f"{what} ({n / 4:.3g} parameters)")  # weights, a copy, the load
        try:  # one step on the meta device: a model too deep for its input fails here, not in training
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                meta.eval().step(torch.empty(1, *shape, device="meta"), 0, [None] * meta.n_states)
        except (RuntimeError, ValueError) as e:
            raise ConfigError(f"{what} cannot take inputs of shape {shape}: {str(e).splitlines()[0]}") from None
    return build_model(cfg)


def load_checkpoint(path: str | Path) -> tuple[Config, Net, dict[str, Any]]:
    """Rebuild ``(config, model in eval mode, metrics)`` from a checkpoint file."""
    ckpt = read_checkpoint(path)
    try:
        cfg = Config.from_dict(ckpt["config"])
        model = build_checked(cfg, "the model")
    except ResourceError as e:  # a valid config, too large for this machine
        raise ResourceError(f"{path}: {e}") from None
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has an invalid config: {e}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the config's model ({str(e).splitlines()[0]})") from None
    metrics = ckpt["metrics"]
    note = unfinished_note(path, cfg, metrics)
    if note is not None:  # the per-epoch file of a run that stopped: was used silently
        print(f"warning: {note}", file=sys.stderr)
    return cfg, model.eval(), metrics


def unfinished_epochs(cfg: Config, metrics: dict[str, Any]) -> tuple[int, int] | None:
    """(epochs done, epochs) of a run's per-epoch checkpoint; None for a finished run's file
    (files exported from it say so: runtime.protocol.Protocol.unfinished)."""
    if metrics.get("finished") is not False:
        return None
    # every epoch done but BatchNorm not yet calibrated: done == epochs
    return len(metrics.get("history", [])), cfg.method.epochs


def unfinished_note(path: str | Path, cfg: Config, metrics: dict[str, Any]) -> str | None:
    """What to say of a run's per-epoch checkpoint (None: a finished run's file); load_checkpoint
    prints it, commands with ``--json`` also put it in their ``warnings``."""
    if (epochs := unfinished_epochs(cfg, metrics)) is None:
        return None
    done = epochs[0]
    processes = int((metrics.get("environment") or {}).get("processes", 1))  # older files: not recorded
    launch = f"torchrun --nproc_per_node={processes} -m trainer" if processes > 1 else "python -m trainer"
    why = " (the count it ran with: another changes summation order and BatchNorm statistics)"
    return (
        f"{path} is an unfinished run (after epoch {done} of {cfg.method.epochs}"
        + (", BatchNorm not calibrated yet" if cfg.model.bn and cfg.method.calib_batches > 0 else "")
        + f"): finish it with {launch} fit --resume {path} --out FINAL.pt"
        + (why if processes > 1 else "")
    )
