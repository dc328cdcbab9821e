"""How far each online method's weight gradient points along the gradient it stands in for:
the cosine, per weight layer, between the online gradient of one batch (``trainer.online``:
OTTT_A, NDOT_A with the paper's ratio and with the clamped one) and the BPTT gradient of the
same per-step loss, and the ratio of their norms. The model is experiments/online_training.sh's
(2C1FC, width 16, ``--norm bn-step``, LIF, biases, T = 8), freshly initialised (seed 0); six
batches of 32 training recordings; the loss ``step_loss`` with MSE weight 0.1 for every method
(NDOT's default), averaged over the T steps. The first layer reads the data, which has no
trace: its gradient is the same for every method. Rerun (about a minute):

    OMP_NUM_THREADS=1 python experiments/ndot_gradient_alignment.py [--data nmnist:../shared/data/nmnist]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.data import load_dataset  # noqa: E402
from runtime.report import table, versions  # noqa: E402
from trainer.cli import fit_config  # noqa: E402
from trainer.models import build_model  # noqa: E402
from trainer.online import online_iteration, step_loss  # noqa: E402
from trainer.train import frames  # noqa: E402

T, BATCH, BATCHES, MSE = 8, 32, 6, 0.1
METHODS = {
    "OTTT_A": ("ottt-a", "paper"),
    "NDOT_A paper ratio": ("ndot-a", "paper"),
    "NDOT_A clamped": ("ndot-a", "clamped"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="nmnist:../shared/data/nmnist")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(a.data, "train")
    flags = ("--model", "2C1FC", "--width", "16", "--T", str(T), "--norm", "bn-step", "--neuron", "lif", "--bias")
    cfg = fit_config(ds, *flags, "--method", "ndot-a")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    weights = [(n, p) for n, p in model.named_parameters() if p.dim() > 1]
    rng = np.random.default_rng(0)

    def bptt(x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        states: list = [None] * model.n_states
        loss = torch.zeros(())
        for t in range(T):
            out, states = model.step(x[t], t, states)
            loss = loss + step_loss(out, y, MSE)
        (loss / T).backward()
        return [p.grad.clone() for _, p in weights]

    def online(x: torch.Tensor, y: torch.Tensor, name: str, ratio: str) -> list[torch.Tensor]:
        m = dataclasses.replace(cfg.method, name=name, ndot_ratio=ratio, mse_weight=MSE, target="onehot")
        online_iteration(model, torch.optim.SGD(model.parameters(), lr=0.0), x, y, m, rng)  # lr 0: grads only
        return [p.grad.clone() for _, p in weights]

    cos = lambda a, b: float((a * b).sum() / (a.norm() * b.norm()))
    norm = lambda gs: float(sum(g.norm() ** 2 for g in gs) ** 0.5)
    rows: dict[str, list[list[float]]] = {k: [] for k in METHODS}
    for _ in range(BATCHES):
        idx = rng.choice(len(ds), BATCH, replace=False)
        x, y = frames(ds, idx, T).float(), torch.as_tensor(ds.labels[idx]).long()
        ref = bptt(x, y)
        for label, (name, ratio) in METHODS.items():
            g = online(x, y, name, ratio)
            rows[label].append([cos(a, b) for a, b in zip(g, ref)] + [norm(g) / norm(ref)])
    print(f"{a.data}, {BATCHES} batches of {BATCH}, T = {T}, fresh model (seed 0): cosine with the BPTT gradient")
    headers = ["method", *(f"cos layer {i + 1}" for i in range(len(weights))), "norm / BPTT's"]
    print(table(headers, [[k, *(f"{v:.2f}" for v in np.mean(r, axis=0))] for k, r in rows.items()]))
    print(f"versions: {versions('torch', 'numpy')}")


if __name__ == "__main__":
    main()
