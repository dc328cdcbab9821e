"""Facts about SynSense Speck 2e / 2f (as the sinabs 3.1 backend encodes them), as data.

Memories are counted in entries (one weight or one membrane per entry); ``Ki`` = 1024.
Every chip in :data:`CHIPS` has the same convolutional core array; the names differ only
in what samna calls the device (for :mod:`.deploy`).
"""

from __future__ import annotations

from dataclasses import dataclass

KI = 1024


@dataclass(frozen=True)
class Core:
    """One convolutional core: how many kernel (weight) and neuron (membrane) entries it holds."""

    index: int
    kernel_memory: int
    neuron_memory: int


@dataclass(frozen=True)
class ChipSpec:
    name: str
    samna_device: str  # the device type name samna reports for it
    cores: tuple[Core, ...]
    max_input: int = 128  # input height and width (DVS array and every layer's input)
    max_channels: int = 1024
    max_kernel: int = 16
    strides: tuple[int, ...] = (1, 2, 4, 8)
    max_padding: int = 7
    pools: tuple[int, ...] = (1, 2, 4)  # sum pooling, stride == kernel
    max_destinations: int = 2
    weight_bits: int = 8
    state_bits: int = 16  # membrane and threshold

    @property
    def max_kernel_memory(self) -> int:
        return max(c.kernel_memory for c in self.cores)

    @property
    def max_neuron_memory(self) -> int:
        return max(c.neuron_memory for c in self.cores)


def _cores(kernel_ki: tuple[int, ...], neuron_ki: tuple[int, ...]) -> tuple[Core, ...]:
    return tuple(Core(i, k * KI, n * KI) for i, (k, n) in enumerate(zip(kernel_ki, neuron_ki)))


SPECK_CORES = _cores((16, 16, 16, 32, 32, 64, 64, 16, 16), (64, 64, 64, 32, 32, 16, 16, 16, 16))

# Registry: chip name -> facts. The name is what `--chip` takes.
CHIPS: dict[str, ChipSpec] = {
    "speck2e": ChipSpec("speck2e", "Speck2eTestBoard", SPECK_CORES),
    "speck2edevkit": ChipSpec("speck2edevkit", "Speck2eDevKit", SPECK_CORES),
    "speck2fmodule": ChipSpec("speck2fmodule", "Speck2fModuleDevKit", SPECK_CORES),
    "speck2fdevkit": ChipSpec("speck2fdevkit", "Speck2fDevKit", SPECK_CORES),
}
DEFAULT_CHIP = "speck2fdevkit"


class ChipError(ValueError):
    """An unknown chip name; the message lists the valid ones."""


def chip(name: str) -> ChipSpec:
    if name not in CHIPS:
        raise ChipError(f"chip {name!r} is unknown; expected one of {sorted(CHIPS)}")
    return CHIPS[name]
