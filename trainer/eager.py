"""Torch eager's per-step latency of a checkpoint's model, the reference that
``python -m runtime bench --checkpoint`` compares the ONNX runtime against."""

from __future__ import annotations

import time

import numpy as np
import torch

from .checkpoint import load_checkpoint


def step_ms(checkpoint: str, x: np.ndarray, frames: bool, steps: int, repeats: int, threads: int) -> float:
    """The same loop in torch eager: ``model.step`` on the same inputs (``x[t]`` if
    ``frames``, else ``x`` at every step), no autograd."""
    _, model, _ = load_checkpoint(checkpoint)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x)
    try:
        with torch.inference_mode():

            def loop() -> float:
                states = [None] * model.n_states
                start = time.perf_counter()
                for t in range(steps):
                    _, states = model.step(xt[t] if frames else xt, t, states)
                return (time.perf_counter() - start) / steps

            loop()
            return 1e3 * float(np.median([loop() for _ in range(repeats)]))
    finally:
        torch.set_num_threads(old)
