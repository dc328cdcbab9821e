"""``python -m export model.nir [-o model.onnx] [--from S] [--dt-us US] [--T N] [--window-us D] [--check]``:
import a NIR graph as the product's one-step ONNX file (export/nir_import.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime import cliargs
from runtime.fileio import check_output
from runtime.report import emit_json, table

from .errors import ExportError
from .formats import CheckedOutput
from .nir_import import describe, import_nir


def run_import(a: argparse.Namespace) -> int:
    if a.format != "onnx":
        raise ExportError(f"a .nir input is imported as ONNX; --format {a.format!r} does not apply")
    if a.T is not None and a.T <= 0 or a.batch_size <= 0:
        raise ExportError(f"--T and --batch-size must be positive integers, got {a.T} and {a.batch_size}")
    given = {
        "--config": a.config is not None,
        "--data": a.data is not None,
        "--calib-batches": a.calib_batches is not None,
    }
    if flags := [flag for flag, set_ in given.items() if set_]:  # they were accepted and ignored
        raise ExportError(
            f"{' and '.join(flags)} apply to a checkpoint (model.pt), not to a .nir import; leave them out"
        )
    cliargs.refuse_unread("--check", a.check, {"--batch-size": cliargs.given(a, "batch_size")}, ExportError)
    src = Path(a.checkpoint)
    # before any work, as export
    out = check_output(a.out if a.out else src.with_suffix(".onnx"), src, kind=(".onnx", "an ONNX file"))
    # NIR's unit; / 1e6 then * 1e6 gives the µs back exactly (* 1e-6 did not: 99.99999999999999)
    dt_s = None if a.dt_us is None else a.dt_us / 1e6
    with CheckedOutput(out, a.check) as target:
        imported, _ = import_nir(src, target.path, a.source, dt_s, a.T, a.window_us)
        info = describe(imported)
        report = {
            "output": str(out),
            "format": "onnx",
            "input": str(src),
            "bytes": target.path.stat().st_size,
            "T_trained": imported.cfg.train_T,
            **info,
        }
        result = None
        if a.check:
            from .check import check_onnx, criterion, tie_note

            result = check_onnx(imported.cfg, imported.model, target.path, a.T, a.batch_size)
            report["check"] = result.summary
            if result.ok:
                target.publish()
            else:
                report["output"] = None  # nothing written: as export of a checkpoint says it
    if a.json:
        emit_json(report)
    else:
        dt = "" if imported.dt is None else f", dt = {imported.dt * 1e6:g} µs"  # as --dt-us
        where = f"{out} ({report['bytes']} bytes)" if report["output"] else f"{out}: not written, the check failed"
        print(f"imported {src} (source {imported.source}{dt}) -> {where}")
        print(f"written by {imported.source}, known from: {imported.how}")
        print(f"convention: {imported.convention}")
        for w in info["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
        for note in imported.notes:
            print(f"note: {note}")
        # every spec field, a kind's own (CubaLIF's decay_syn and syn_gain, ALIF's beta) after
        # the common ones: an imported syn_gain 0.5 showed nowhere
        common = ["kind", "decay", "v_th", "reset", "spike", "v_min", "dt"]
        own = sorted({k for spec in info["neurons"] for k in spec} - set(common))
        rows = [[i, *(spec.get(k, "-") for k in common + own)] for i, spec in enumerate(info["neurons"])]
        dt_head = "dt µs" if imported.cfg.data.kind == "events" else "dt (1: one step)"  # NeuronSpec.dt's unit
        print(table(["layer", *common[:-1], dt_head, *own], rows))
        print(f"T_trained (the runtime's default T) = {imported.cfg.train_T}; readout {imported.model.readout_rule}")
        if result is not None:
            print(table(result.headers, [[f"{v:.1e}" if isinstance(v, float) else v for v in r] for r in result.rows]))
            if (tie := tie_note(result.summary)) is not None:
                print(f"note: {tie}")
            print(
                "check " + ("passed: " + criterion(result.summary) if result.ok else f"FAILED; {out} was not written")
            )
    return 0 if result is None or result.ok else 1
