"""trev-tiny next to VGGs: CPU and wall seconds per epoch of ``fit`` (the CLI's function,
data loaded once), the models alternating in one process round by round, and the test
accuracy of each at T = 1..T (docs/trev.md, "Training time next to a VGG"). A model
``NAME,KEY=VALUE`` is NAME with ``--trev KEY=VALUE``; ``--neuron`` pins the hidden
neuron of every model (default: each model's own default). One untimed round of one epoch
on 64 samples warms every model up first (the first timed round ran 20-69% slower).
Rerun:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python experiments/trev_speed.py \
        --models trev-tiny trev-tiny,backward=reversible 3C1FCW96 2C1FC --rounds 2
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from runtime import cliargs
from runtime.data import load_dataset
from trainer.cli import config_from_args, parser
from trainer.train import evaluate, fit


def main() -> None:
    p = cliargs.Parser(description=__doc__.splitlines()[0])  # the product's one-line errors, whole flag names
    p.add_argument(
        "--models",
        nargs="+",
        default=["trev-tiny", "trev-tiny,backward=reversible", "3C1FCW96", "2C1FC"],
        help="trainer fit --model of each row",
    )
    p.add_argument("--data", default="digits:static", help="trainer fit --data")
    cliargs.add_steps(p, "training T", 4)
    p.add_argument("--epochs", type=cliargs.positive_int, default=3, help="epochs per model")
    p.add_argument("--rounds", type=cliargs.positive_int, default=2, help="interleaved rounds")
    p.add_argument("--neuron", default=None, help="trainer fit --neuron for every model (default: its own)")
    a = p.parse_args()
    torch.set_num_threads(1)
    # the fit CLI's default training split (validation recordings held out)
    train, test = load_dataset(a.data, "train-minus-val"), load_dataset(a.data, "test")
    cfgs = {}
    for name in a.models:
        model, *opts = name.split(",")
        trev = [arg for kv in opts for arg in ("--trev", kv)]
        neuron = ["--neuron", a.neuron] if a.neuron else []
        args = parser().parse_args(
            ["fit", "--data", a.data, "--model", model, "--method", "sdt", "--T", str(a.T), "--epochs", str(a.epochs)]
            + trev
            + neuron
        )
        cfgs[name] = config_from_args(args, train.shape, train.kind, train.duration_us, train)
    cpu: dict[str, list[float]] = {n: [] for n in cfgs}
    wall: dict[str, list[float]] = {n: [] for n in cfgs}
    rows = {}
    few = train.subset(np.arange(min(64, len(train))))
    for cfg in cfgs.values():  # untimed warm-up
        short = copy.deepcopy(cfg)
        short.method.epochs = 1
        fit(short, few, test.subset(np.arange(min(16, len(test)))), progress=False)
    for _ in range(a.rounds):
        for name, cfg in cfgs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            model, _ = fit(cfg, train, test, progress=False)
            cpu[name].append((time.process_time() - c0) / a.epochs)
            wall[name].append((time.perf_counter() - w0) / a.epochs)
            accs = evaluate(model, test, list(range(1, a.T + 1)))
            rows[name] = (sum(p.numel() for p in model.parameters()), " / ".join(f"{100 * x:.1f}" for x in accs))
    print("| model | parameters | test accuracy at T = 1..T (%) | CPU s/epoch | wall s/epoch |")
    print("|---|---|---|---|---|")
    for name in cfgs:
        params, accs = rows[name]
        c = ", ".join(f"{x:.2f}" for x in cpu[name])
        w = ", ".join(f"{x:.1f}" for x in wall[name])
        print(f"| `{name}` | {params / 1000:.1f}k | {accs} | {c} | {w} |")


if __name__ == "__main__":
    main()
