"""Registry of export formats: name -> (default file suffix, writer)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from trainer.config import Config
from trainer.models import SpikingNet

from .errors import ExportError

Unfinished = tuple[int, int] | None  # (epochs done, epochs) of a run that stopped early

# (checkpoint's config, model, path, per-stage T or None: one T for all stages, (epochs
# done, epochs) of an unfinished run or None) -> path
Writer = Callable[[Config, SpikingNet, Path, "list[int] | None", Unfinished], Path]


def _onnx(cfg: Config, model: SpikingNet, path: Path, config: list[int] | None, unfinished: Unfinished = None) -> Path:
    from trainer.trev import TRevNet

    if isinstance(model, TRevNet):  # one sub-network per step: weights chosen by t
        from .trev_onnx import export_trev_onnx

        return export_trev_onnx(cfg, model, path, unfinished=unfinished)
    from .onnx_export import export_onnx

    return export_onnx(cfg, model, path, config, unfinished=unfinished)


def _torchscript(
    cfg: Config, model: SpikingNet, path: Path, config: list[int] | None, unfinished: Unfinished = None
) -> Path:
    from .torch_formats import export_torchscript

    return export_torchscript(cfg, model, path, config, unfinished=unfinished)


def _pt2(cfg: Config, model: SpikingNet, path: Path, config: list[int] | None, unfinished: Unfinished = None) -> Path:
    from trainer.trev import TRevNet

    from .torch_formats import export_pt2, export_trev_pt2

    if isinstance(model, TRevNet):  # its step reads t: the module its ONNX file is traced from
        if config is not None:
            raise ExportError("--config sets a T per stage of an MTT model; a T-RevSNN has one sub-network per step")
        return export_trev_pt2(cfg, model, path, unfinished=unfinished)
    return export_pt2(cfg, model, path, config, unfinished=unfinished)


def _nir(cfg: Config, model: SpikingNet, path: Path, config: list[int] | None, unfinished: Unfinished = None) -> Path:
    from .nir_export import export_nir

    if config is not None:  # the CLI refuses it first; a caller of the registry too
        raise ExportError(NIR_HAS_NO_STAGES)
    return export_nir(cfg, model, path, unfinished=unfinished)


# NIR's graph has no notion of a step count, let alone one per stage
NIR_HAS_NO_STAGES = (
    "--config runs each stage at its own T, which a NIR graph cannot say (its neurons step at one dt); "
    "expected --format onnx, torchscript or pt2"
)


# Writers import their libraries lazily: exporting ONNX does not need nir, and so on.
FORMATS: dict[str, tuple[str, Writer]] = {
    "onnx": (".onnx", _onnx),
    "torchscript": (".torchscript.pt", _torchscript),
    "pt2": (".pt2", _pt2),
    "nir": (".nir", _nir),
}


def get_format(name: str) -> tuple[str, Writer]:
    try:
        return FORMATS[name]
    except KeyError:
        raise ExportError(f"format {name!r} is unknown; expected one of {list(FORMATS)}") from None


def default_output(checkpoint: str | Path, fmt: str, config: list[int] | None = None) -> Path:
    """``model.pt`` -> ``model.onnx`` (etc.) beside the checkpoint; a multi-rate ``config``
    -> ``model_4,2.onnx`` (it replaced the uniform ``model.onnx`` without a word)."""
    suffix, _ = get_format(fmt)
    checkpoint = Path(checkpoint)
    tag = "" if config is None else "_" + ",".join(map(str, config))
    return checkpoint.with_name(checkpoint.stem + tag + suffix)


class CheckedOutput:
    """Where a file that ``--check`` judges is written: with ``check``, beside ``out`` under
    a hidden name, moved to ``out`` by :meth:`publish` once it passed and removed otherwise
    (a failed check left a file that ran without a word); without, ``out`` itself."""

    def __init__(self, out: Path, check: bool):
        self.out = out
        self.path = out.with_name(f".{out.name}.unchecked{out.suffix}") if check else out

    def publish(self) -> None:
        if self.path != self.out:
            os.replace(self.path, self.out)

    def __enter__(self) -> CheckedOutput:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.path != self.out:
            self.path.unlink(missing_ok=True)
