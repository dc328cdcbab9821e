"""Does early exit keep its saving? CPU time per sample of ``Session.run`` under each exit
policy against fixed Tmax, on the same frames, interleaved round by round (min over the
rounds): the actual saving ``1 - cpu(policy) / cpu(fixed)`` over the ideal ``1 - mean
steps / Tmax``. A multi-rate file (``export --config``) gets the first stage's T frames and
``--tmax`` is its last stage's T. ``--compact-at`` adds each policy once per value of
``runtime.session.COMPACT_AT`` (1: finished samples never leave the batch; a value above
the batch size: they leave at every exit), in the same interleaved rounds. Rerun:

    OMP_NUM_THREADS=1 python experiments/early_exit_saving.py MODEL.onnx \
        --data nmnist:../shared/data/nmnist --tmax 10 --limit 128 --batch-size 1 64 --rounds 5
"""

from __future__ import annotations

import os
import time

import numpy as np

import runtime
import runtime.session as session_module
from runtime import cliargs
from runtime.data import load_dataset
from runtime.report import emit_json, table, versions, versions_text


def main() -> None:
    p = cliargs.Parser(description=__doc__.splitlines()[0])  # the product's one-line errors, whole flag names
    p.add_argument("model", help="an ONNX file")
    p.add_argument("--data", required=True, help="the data spec whose test split is run")
    cliargs.add_steps(p, "default: the model's trained T", flag="--tmax")
    cliargs.add_limit(p, 128)
    cliargs.add_batch_size(p, [1, 64], "batch sizes compared")
    p.add_argument("--thresholds", type=cliargs.unit_float, nargs="+", default=[0.3, 0.5, 0.7], help="confidence")
    p.add_argument("--rounds", type=cliargs.positive_int, default=5, help="interleaved timing rounds")
    p.add_argument("--threads", type=cliargs.positive_threads, default=1, help="onnxruntime threads")
    p.add_argument(
        "--compact-at",
        type=cliargs.positive_int,
        nargs="+",
        default=[session_module.COMPACT_AT],
        help="finished rows a batch collects before it is compacted, each value compared",
    )
    cliargs.add_json(p)
    a = p.parse_args()
    s = runtime.load(a.model, threads=a.threads)
    a.tmax = a.tmax or s.protocol.default_T  # it was 10 whatever the model: fixed:10 on a model of T = 6
    ds = load_dataset(a.data, "test", a.limit)
    x = ds.frames(np.arange(len(ds)), s.protocol.input_steps(a.tmax))
    # a batch above the sample count runs them all in one batch: label it so (a "batch 1000"
    # row ran 32 samples, the figures of the batch-32 row)
    batches = list(dict.fromkeys(min(b, x.shape[1]) for b in a.batch_size))
    rules = [f"confidence:{t},tmin=1,tmax={a.tmax}" for t in a.thresholds]
    variants = [(f"fixed:{a.tmax}", session_module.COMPACT_AT), *((q, c) for q in rules for c in a.compact_at)]
    policies = [f"{q} compact_at={c}" for q, c in variants]
    out = {"model": a.model, "backend": s.backend, "threads": a.threads, "load_before": os.getloadavg(), "rows": []}
    for b in batches:
        cpu: dict[str, list[float]] = {q: [] for q in policies}
        steps: dict[str, float] = {}
        for r in range(a.rounds + 1):  # round 0 warms up
            for k in [*range(r % len(policies), len(policies)), *range(r % len(policies))]:
                q, (rule, compact_at) = policies[k], variants[k]
                session_module.COMPACT_AT = compact_at  # Session.run reads it at every exit
                c0, total = time.process_time(), []
                for i in range(0, x.shape[1], b):
                    total.append(s.run(x[:, i : i + b], rule, counts=False).steps)
                if r:
                    cpu[q].append((time.process_time() - c0) / x.shape[1])
                steps[q] = float(np.concatenate(total).mean())
        fixed = min(cpu[policies[0]])
        for q in policies:
            ideal, actual = 1 - steps[q] / a.tmax, 1 - min(cpu[q]) / fixed
            out["rows"].append(
                {
                    "batch": b,
                    "policy": q.split()[0],
                    "compact_at": int(q.split("=")[-1]),
                    "mean_steps": steps[q],
                    "cpu_ms_per_sample_min": 1e3 * min(cpu[q]),
                    "cpu_ms_per_sample_median": 1e3 * float(np.median(cpu[q])),
                    "ideal_saving": ideal,
                    "actual_saving": actual,
                    "fraction_of_ideal": actual / ideal if ideal > 0 else None,
                }
            )
    out["load_after"] = os.getloadavg()
    out["versions"] = versions("numpy", "onnxruntime", "numba")
    if a.json:
        emit_json(out)
        return
    cols = ["batch", "policy", "compact_at", "mean_steps", "cpu_ms_per_sample_min", "cpu_ms_per_sample_median"]
    cols += ["ideal_saving", "actual_saving", "fraction_of_ideal"]
    print(table(cols, [[r[c] if r[c] is not None else "-" for c in cols] for r in out["rows"]]))
    print(
        f"\n{a.model} ({s.backend}, {a.threads} thread(s)) on {len(ds)} samples of {a.data}; CPU ms per sample, "
        f"min and median of {a.rounds} interleaved rounds (after one warm-up); savings from the minima; load average "
        f"{out['load_before'][0]:.2f} before, {out['load_after'][0]:.2f} after; {versions_text(out['versions'])}"
    )


if __name__ == "__main__":
    main()
