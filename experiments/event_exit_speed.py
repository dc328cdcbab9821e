"""Event-driven runs under an exit policy next to whole streams: wall ms per sample of
``run_event_dataset`` on one data set, each thread count's two runs interleaved round by
round (``runtime.bench.interleaved``: min and median), with the load before and after
(docs/event_driven.md, "Early exit"). ``fixed:T`` at the trained T does the same work as
whole streams (every event, the same synaptic operations), so their ratio is what the
bin-by-bin advance costs: a feed, a flush and a read per stream and bin. Rerun:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python experiments/event_exit_speed.py model.onnx --data digits
"""

from __future__ import annotations

import os

from runtime import cliargs
from runtime.bench import Loop, interleaved
from runtime.event import load_event
from runtime.event.engine import use_threads
from runtime.event.evaluate import run_event_dataset
from runtime.report import emit_json, table, versions, versions_text


def main() -> None:
    p = cliargs.Parser(description=__doc__.splitlines()[0])  # the product's one-line errors, whole flag names
    p.add_argument("model", help="exported model (.onnx)")
    cliargs.add_data(p)
    cliargs.add_limit(p, None, "the test split: the streams timed")
    p.add_argument("--policy", default=None, help="the policy timed (default: fixed at the trained T)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="numba thread counts, one row pair each")
    cliargs.add_repeats(p, "interleaved rounds (min and median)")
    cliargs.add_json(p)
    a = p.parse_args()
    engine = load_event(a.model)
    ds = cliargs.model_data(a, engine.protocol, needs="the event engine")
    policy = a.policy or f"fixed:{engine.protocol.T_trained}"
    loops = {}
    for n in a.threads:
        for name, asked in (("whole streams", None), (policy, policy)):
            loops[f"{n} thread(s), {name}"] = Loop(
                lambda n=n: use_threads(n), lambda asked=asked: run_event_dataset(engine, ds, policy=asked)
            )
    load_before = os.getloadavg()[0]
    times = interleaved(loops, len(ds), a.repeats, progress=True, desc="event runs")
    load_after = os.getloadavg()[0]
    rows = []
    for n in a.threads:
        whole, timed = times[f"{n} thread(s), whole streams"], times[f"{n} thread(s), {policy}"]
        rows.append(
            [
                n,
                f"{timed['wall_ms_min']:.2f} / {timed['wall_ms_median']:.2f}",
                f"{whole['wall_ms_min']:.2f} / {whole['wall_ms_median']:.2f}",
                f"{timed['wall_ms_median'] / whole['wall_ms_median']:.2f}",
            ]
        )
    v = versions("numpy", "numba", "onnx")
    if a.json:
        emit_json(
            {
                "model": a.model,
                "data": ds.spec,
                "n": len(ds),
                "policy": policy,
                "times_ms": times,
                "load": [load_before, load_after],
                "versions": v,
            }
        )
        return
    print(f"{a.model} on {ds.spec} ({len(ds)} streams): wall ms per sample, min / median of {a.repeats} rounds")
    print(table(["threads", policy, "whole streams", "ratio of medians"], rows))
    print(f"load (1 min) {load_before:.2f} before, {load_after:.2f} after; {versions_text(v)}")


if __name__ == "__main__":
    main()
