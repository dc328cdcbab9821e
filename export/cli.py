"""``python -m export model.pt [-o OUT] [--format F] [--config 4,2,2,3] [--check] [--json]``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime import cliargs
from runtime.data import DataError, spec_paths
from runtime.fileio import OutputPathError, check_output
from runtime.neuron import SpecError
from runtime.report import emit_json, guarded, table
from trainer.checkpoint import CheckpointError, load_checkpoint, unfinished_epochs, unfinished_note
from trainer.config import CALIB_BATCHES, Config, ConfigError
from trainer.models import SpikingNet, architecture
from trainer.search_cli import CALIB_BATCH_SIZE, CALIB_RUNS_AVERAGED, DEFAULT_CALIB_RUNS

from .errors import ExportError
from .formats import FORMATS, NIR_HAS_NO_STAGES, CheckedOutput, default_output, get_format

if TYPE_CHECKING:
    from .check import CheckResult

USER_ERRORS = (ExportError, CheckpointError, DataError, SpecError, OutputPathError, ConfigError)

CHECK_BATCH = 4  # --check's samples


def parser() -> argparse.ArgumentParser:
    p = cliargs.Parser(
        prog="python -m export",
        description=(
            "Export a flexsnn checkpoint: ONNX (one time step, stateful snn neuron ops), "
            "TorchScript, torch.export (pt2) or NIR."
        ),
    ).add_version()
    p.add_argument(
        "checkpoint",
        help="a model.pt written by python -m trainer fit, or a NIR graph (.nir) to "
        "import as ONNX (docs/nir_mapping.md)",
    )
    cliargs.add_out(p, "output file (default: beside the checkpoint)")
    p.add_argument("--format", default="onnx", help=f"one of {', '.join(FORMATS)} (default onnx)")
    p.add_argument(
        "--check",
        action="store_true",
        help="onnx: run the file in onnxruntime next to torch for T steps; fail if they differ",
    )
    cliargs.add_steps(
        p,
        "--check: time steps (default: the trained T); .nir import: the file's trained T too (default: the graph's "
        "own, 10 for a foreign graph)",
    )
    p.add_argument(
        "--config",
        type=cliargs.stage_steps,
        default=None,
        help="one T per stage, e.g. 4,2,2,3: onnx, a multi-rate file whose stages the runtime runs each at its "
        "own T (docs/onnx_protocol.md); torchscript/pt2, the whole sequence frames[T0,B,...] -> y[T_last,B,classes]; "
        "BatchNorm models: calibrated for it as trainer eval --config does",
    )
    cliargs.add_data(
        p, fallback="the checkpoint's", what="--config on BatchNorm models: the data whose training split calibrates"
    )
    cliargs.add_calib_batches(
        p, None, f"for --config (default {CALIB_BATCHES}, as trainer eval --config)", f"{CALIB_BATCH_SIZE} samples"
    )
    cliargs.add_calib_runs(p, DEFAULT_CALIB_RUNS, f"--config: {CALIB_RUNS_AVERAGED}, as trainer eval --config")
    cliargs.add_batch_size(p, CHECK_BATCH, "--check: samples")
    cliargs.add_json(p, "one JSON object instead of a table")
    p.add_argument(
        "--from",
        dest="source",
        default=None,
        help=".nir import: the framework that wrote the graph: sinabs, "
        "snntorch, norse or nir (default: flexsnn when the graph's metadata says so)",
    )
    p.add_argument(
        "--dt-us",
        type=cliargs.positive_float,
        default=None,
        help=".nir import: µs per step (a NIR graph's time constants are in seconds), for sources whose "
        "convention takes one (norse, nir)",
    )
    p.add_argument(
        "--window-us",
        type=cliargs.positive_float,
        default=None,
        help=".nir import of a foreign graph: the model takes event frames, each window of this many µs "
        "(one sample, as runtime stream's --window-us) split into T bins (default: static input)",
    )
    return p


def run(a: argparse.Namespace) -> int:
    if Path(a.checkpoint).suffix == ".nir":
        from .nir_cli import run_import

        return run_import(a)
    if a.source is not None or a.dt_us is not None or a.window_us is not None:
        raise ExportError("--from, --dt-us and --window-us apply to a .nir input only")
    _, write = get_format(a.format)  # an unknown format fails before any work
    if a.check and a.format != "onnx":
        raise ExportError(f"--check runs the ONNX graph in onnxruntime; it needs --format onnx, not {a.format!r}")
    if a.config is None and (given := calibration_flags(a)):
        raise ExportError(f"{' and '.join(given)} calibrate BatchNorm for a --config; give --config too")
    if a.config is not None and a.format == "nir":
        raise ExportError(NIR_HAS_NO_STAGES)
    if a.config is not None and a.T is not None:
        raise ExportError("--config's file is checked at its own T per stage; leave out --T")
    cliargs.refuse_unread(
        "--check", a.check, {"--T": a.T is not None, "--batch-size": cliargs.given(a, "batch_size")}, ExportError
    )
    if Path(a.checkpoint).suffix.lower() == ".onnx":
        raise ExportError(
            f"{a.checkpoint} is an ONNX file, the exporter's output; export reads a checkpoint (model.pt "
            "from trainer fit) or a .nir graph"
        )
    cfg, model, metrics = load_checkpoint(a.checkpoint)  # what the input is, before where its output goes
    suffix = "." + get_format(a.format)[0].rsplit(".", 1)[-1]  # .torchscript.pt: .pt
    out = check_output(
        a.out if a.out is not None else default_output(a.checkpoint, a.format, a.config),
        a.checkpoint,
        *spec_paths(a.data),
        kind=(suffix, f"the {a.format} file"),
    )
    calibration = None
    if a.config is not None:
        model, calibration = configured(a, cfg, model)
    with CheckedOutput(out, a.check) as target:
        unfinished = unfinished_epochs(cfg, metrics)
        report, result = write_and_check(a, cfg, model, target.path, calibration, write, unfinished)
        if note := unfinished_note(a.checkpoint, cfg, metrics):  # printed by the load; --json's too
            report["warnings"].insert(0, note)
        if result is not None and result.ok:
            target.publish()
    written = result is None or result.ok
    report["output"] = str(out) if written else None
    if a.json:
        emit_json(report)
        return 0 if written else 1
    seconds = report["seconds"]
    if written:
        print(f"wrote {out} ({a.format}, {report['bytes']} bytes) in {seconds:.2f} s")
    if a.config is not None:
        how = "none (no BatchNorm, or --calib-batches 0)"
        if calibration:
            b = calibration["batches"]
            how = f"{b} batch{'' if b == 1 else 'es'} of {calibration['batch_size']} from {calibration['data']}"
            if calibration["runs"] > 1:
                how += f", statistics averaged over {calibration['runs']} runs"
        print(f"configuration {','.join(map(str, a.config))} (T per stage); BatchNorm calibration: {how}")
    if result is not None:
        from .check import criterion, tie_note

        s = result.summary
        steps = f"T per stage {s['config']}" if "config" in s else f"T={s['T']}"
        print(f"check: onnxruntime vs torch, {steps}, batch {s['batch']}, input: {s['input']}")
        print(table(result.headers, [[f"{v:.1e}" if isinstance(v, float) else v for v in r] for r in result.rows]))
        expected = criterion(s)
        if (note := tie_note(s)) is not None:
            print(f"note: {note}")
        if written:
            print(f"check passed: {expected}")
        else:
            failed = [str(r[0]) for r in result.rows if r[-1] == "FAIL"]
            print(
                f"check FAILED at {', '.join(failed)} (expected {expected}); {out} was not written "
                "(export without --check to write it anyway)"
            )
    return 0 if written else 1


def write_and_check(
    a: argparse.Namespace,
    cfg: Config,
    model: Any,
    path: Path,
    calibration: dict | None,
    write: Callable,
    unfinished: tuple[int, int] | None,
) -> tuple[dict, CheckResult | None]:
    """Write ``model`` to ``path`` (``--config``: its multi-rate file; ``unfinished``: the
    (epochs done, epochs) the file says of a run that stopped early) and, with ``--check``,
    compare it with torch; the report of both, and the check's result (None: not asked)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # e.g. what a NIR peer runs differently
        warnings.simplefilter("always", UserWarning)
        write(cfg, model, path, a.config, unfinished)
    seconds = time.perf_counter() - t0
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    report = {
        "output": str(path),
        "format": a.format,
        "input": a.checkpoint,  # as a .nir import's report
        # the architecture (`trainer fit --model`); "model" is a model file in the runtime's JSON
        "architecture": architecture(cfg.model),
        "seconds": round(seconds, 3),
        "bytes": path.stat().st_size,
        "warnings": [str(w.message) for w in caught],  # also on stderr: a program reading --json sees them
    }
    if a.config is not None:
        report.update(config=a.config, bn_calibration=calibration)
    if not a.check:
        return report, None
    from trainer.trev import TRevNet

    from .check import check_onnx, check_stages_onnx
    from .trev_onnx import check_trev_onnx

    if a.config is not None:
        result = check_stages_onnx(cfg, model, path, a.config, a.batch_size)
    else:
        check = check_trev_onnx if isinstance(model, TRevNet) else check_onnx
        result = check(cfg, model, path, a.T, a.batch_size)
    report["check"] = result.summary
    return report, result


def configured(a: argparse.Namespace, cfg: Config, model: object) -> tuple[SpikingNet, dict | None]:
    """The model ``--config`` deploys: checked as ``trainer eval --config`` checks it and,
    with BatchNorm, calibrated for the configuration exactly as it calibrates (same data,
    batches and seed); returns it and how it was calibrated (None: not)."""
    from trainer.search_cli import (
        calibration_data,
        calibration_record,
        check_config,
        check_stages,
        for_config,
        refuse_runs_without_batches,
    )
    from trainer.train import has_bn

    net = check_stages(a.checkpoint, model)
    check_config(a.checkpoint, cfg, len(net.stages), a.config)
    refuse_runs_without_batches(a, ExportError)
    batches = CALIB_BATCHES if a.calib_batches is None else a.calib_batches
    if not has_bn(net) and calibration_flags(a):
        raise ExportError(  # they were accepted, unread
            f"--data, --calib-batches and --calib-runs calibrate BatchNorm for the configuration; {a.checkpoint} "
            "has no BatchNorm layers: leave them out"
        )
    calib = calibration_data(a.checkpoint, cfg, net, a.data) if batches > 0 else None
    if calib is None:
        return net, None
    how = {"data": calib.spec, "split": cfg.data.train_split, **calibration_record(batches, len(calib), a.calib_runs)}
    return for_config(net, calib, a.config, batches, a.calib_runs, cfg.data.binning, cfg.dt_us), how


def calibration_flags(a: argparse.Namespace) -> list[str]:
    """The flags given that calibrate BatchNorm for a ``--config`` (refused without one, and
    on a model without BatchNorm: they were accepted and ignored)."""
    given = {
        "--data": a.data is not None,
        "--calib-batches": a.calib_batches is not None,
        "--calib-runs": cliargs.given(a, "calib_runs"),
    }
    return [flag for flag, set_ in given.items() if set_]


def main(argv: list[str] | None = None) -> None:
    a = cliargs.parse(parser, argv)
    raise SystemExit(guarded(USER_ERRORS, lambda: run(a)))
