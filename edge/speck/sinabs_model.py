"""The quantised network as sinabs layers (torch): what :mod:`.deploy` hands to sinabs'
Speck backend, and what the cross-check test runs time-stepped against our emulation.

Only samna-free sinabs modules are used here (``sinabs.layers``); torch and sinabs are
imported inside the function, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any

from .quantize import QuantNet


def sinabs_sequential(qnet: QuantNet, batch_size: int) -> Any:
    """``nn.Sequential``: [SumPool2d (sensor)] then per layer Conv2d (no bias, int weights)
    -> IAFSqueeze (multi-spike, subtract, integer threshold and clamp) [-> SumPool2d].
    Input ``[batch_size * T, C, H, W]`` (sinabs' squeezed time), output spike counts."""
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MembraneSubtract, MultiSpike
    from torch import nn

    net = qnet.net
    mods: list[nn.Module] = [sl.SumPool2d(net.input_pool)] if net.input_pool > 1 else []
    for L, q in zip(net.layers, qnet.layers):
        s = L.shape
        conv = nn.Conv2d(s.c_in, s.c_out, s.kernel, s.stride, s.padding, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(q.weight.astype("float32")))
        mods += [
            conv,
            sl.IAFSqueeze(
                batch_size=batch_size,
                spike_threshold=float(q.threshold),
                min_v_mem=float(q.v_min),
                spike_fn=MultiSpike,
                reset_fn=MembraneSubtract(),
            ),
        ]
        if s.pool[0] > 1:
            mods.append(sl.SumPool2d(s.pool[0]))
    return nn.Sequential(*mods)
