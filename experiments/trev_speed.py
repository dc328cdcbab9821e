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
import os

import numpy as np
import torch

from runtime import cliargs
from runtime.bench import Loop, interleaved
from runtime.data import load_dataset
from runtime.report import emit_json, versions, versions_text
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
    cliargs.add_json(p)
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
    few = train.subset(np.arange(min(64, len(train))))
    for cfg in cfgs.values():  # untimed warm-up
        short = copy.deepcopy(cfg)
        short.method.epochs = 1
        fit(short, few, test.subset(np.arange(min(16, len(test)))), progress=False)
    load_before, trained = os.getloadavg()[0], {}  # the model each name trained last

    def one_fit(name: str) -> Loop:
        return Loop(lambda: None, lambda: trained.__setitem__(name, fit(cfgs[name], train, test, progress=False)[0]))

    # the models rotated round by round, each round's time per epoch; min and median over rounds
    times = interleaved({name: one_fit(name) for name in cfgs}, a.epochs, a.rounds, warm_up=False)
    rows = []
    for name, model in trained.items():  # the last round's model of each
        accs = evaluate(model, test, list(range(1, a.T + 1)))
        t = {k.replace("_ms_", "_s_per_epoch_"): v / 1e3 for k, v in times[name].items()}
        rows.append({"model": name, "parameters": sum(p.numel() for p in model.parameters()), "accuracy": accs, **t})
    environment = {
        "seed": next(iter(cfgs.values())).method.seed,  # fit's default, every model's
        "threads": 1,
        "rounds": a.rounds,
        "load_average": [load_before, os.getloadavg()[0]],
        "versions": versions("torch", "numpy"),
    }
    if a.json:
        emit_json({"data": a.data, "T": a.T, "epochs": a.epochs, **environment, "rows": rows})
        return
    print(
        "| model | parameters | test accuracy at T = 1..T (%) | CPU s/epoch min / median | wall s/epoch min / median |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        accs = " / ".join(f"{100 * x:.1f}" for x in r["accuracy"])
        cpu = f"{r['cpu_s_per_epoch_min']:.2f} / {r['cpu_s_per_epoch_median']:.2f}"
        wall = f"{r['wall_s_per_epoch_min']:.1f} / {r['wall_s_per_epoch_median']:.1f}"
        print(f"| `{r['model']}` | {r['parameters'] / 1000:.1f}k | {accs} | {cpu} | {wall} |")
    print(
        f"\n{a.rounds} rounds, the models rotated each round; seed {environment['seed']}, 1 torch thread, load "
        f"average {load_before:.2f} before, {environment['load_average'][1]:.2f} after; "
        + versions_text(environment["versions"])
    )


if __name__ == "__main__":
    main()
