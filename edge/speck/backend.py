"""The backend interface: a converted network and a chip in, a :class:`Plan` out (which
core runs which layer, and every limit broken). Pure: no hardware, no vendor SDK."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .chip import ChipSpec
from .constraints import LayerShape, Violation, check_layer, ki, memory
from .convert import SpeckNet
from .mapping import map_layers


@dataclass(frozen=True)
class LayerPlan:
    shape: LayerShape
    kernel_memory: int
    neuron_memory: int
    core: int | None
    violations: tuple[Violation, ...]


@dataclass(frozen=True)
class Plan:
    chip: ChipSpec
    layers: tuple[LayerPlan, ...]
    violations: tuple[Violation, ...]  # all of them: layers, neurons, input, mapping

    @property
    def fits(self) -> bool:
        return not self.violations

    @property
    def cores(self) -> list[int | None]:
        return [p.core for p in self.layers]


def plan_shapes(shapes: Sequence[LayerShape], chip: ChipSpec) -> Plan:
    """Check every layer shape and map the layers to cores."""
    per_layer = [tuple(check_layer(s, chip)) for s in shapes]
    needs = [memory(s) if min(s.out_size) >= 1 else (chip.max_kernel_memory + 1, 0) for s in shapes]
    cores = map_layers(needs, chip.cores)
    extra: list[Violation] = []
    if len(shapes) > len(chip.cores):
        extra.append(
            Violation("(network)", "number of layers", len(shapes), f"at most {len(chip.cores)} (one per core)")
        )
    for s, need, core, own in zip(shapes, needs, cores, per_layer):
        if core is None and not own:  # fits some core alone, but every such core went to another layer
            extra.append(
                Violation(
                    s.name,
                    "core",
                    f"none free for {ki(need[0])} kernel + {ki(need[1])} neuron memory",
                    "one layer per core: the cores this layer fits are taken by other layers",
                )
            )
    layers = tuple(LayerPlan(s, n[0], n[1], c, v) for s, n, c, v in zip(shapes, needs, cores, per_layer))
    return Plan(chip, layers, tuple(v for vs in per_layer for v in vs) + tuple(extra))


def plan(net: SpeckNet, chip: ChipSpec) -> Plan:
    """:func:`plan_shapes` of the converted layers, plus the sensor input and the neurons."""
    p = plan_shapes([L.shape for L in net.layers], chip)
    c, h, w = net.input_shape
    inputs: list[Violation] = []
    if max(h, w) > chip.max_input:
        inputs.append(Violation("(input)", "input size", f"{h}x{w}", f"at most {chip.max_input}x{chip.max_input}"))
    if c > chip.max_channels:
        inputs.append(Violation("(input)", "input channels", c, f"at most {chip.max_channels}"))
    if net.input_pool not in chip.pools:
        inputs.append(Violation("(input)", "sum pooling", net.input_pool, f"one of {list(chip.pools)}"))
    return Plan(chip, p.layers, tuple(inputs) + tuple(net.violations) + p.violations)
