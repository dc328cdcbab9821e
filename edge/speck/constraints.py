"""Speck constraints on one layer, as pure functions of its shape (no weights, no ONNX).

A Speck layer is: convolution (no bias) -> IF neurons -> sum pooling -> up to
``max_destinations`` next layers. Memory per layer (sinabs 3.1 formulas)::

    kernel memory = c_in * 2^(ceil(log2(kx * ky)) + ceil(log2(c_out)))
    neuron memory = c_out * 2^(ceil(log2(H_out)) + ceil(log2(W_out)))

with the floored convolution output size ``(H + 2 p - k) // s + 1``. The powers of two are
how the chip addresses its memories: a kernel and a channel index (or a row and a
column) are concatenated bit fields, so each is rounded up to a whole number of bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chip import KI, ChipSpec


@dataclass(frozen=True)
class LayerShape:
    """What the checker needs to know about one layer (sizes are (height, width))."""

    name: str
    c_in: int
    in_size: tuple[int, int]
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    pool: tuple[int, int] = (1, 1)  # sum pooling of the output (kernel == stride)
    destinations: int = 1

    @property
    def out_size(self) -> tuple[int, int]:
        """Floored convolution output size (before pooling: what the neurons hold)."""
        return tuple(
            (n + 2 * p - k) // s + 1 for n, p, k, s in zip(self.in_size, self.padding, self.kernel, self.stride)
        )  # type: ignore[return-value]


@dataclass(frozen=True)
class Violation:
    """One broken limit: which layer, which limit, the value found and the limit."""

    layer: str
    limit: str
    value: object
    allowed: object

    def __str__(self) -> str:
        return f"layer {self.layer!r}: {self.limit} is {self.value}, Speck allows {self.allowed}"


def bits(n: int) -> int:
    """ceil(log2(n)) for n >= 1, in integers (no float rounding at exact powers of two)."""
    return (n - 1).bit_length()


def kernel_memory(c_in: int, kernel: tuple[int, int], c_out: int) -> int:
    return c_in * 2 ** (bits(kernel[0] * kernel[1]) + bits(c_out))


def neuron_memory(c_out: int, out_size: tuple[int, int]) -> int:
    return c_out * 2 ** (bits(out_size[0]) + bits(out_size[1]))


def memory(shape: LayerShape) -> tuple[int, int]:
    """(kernel memory, neuron memory) of a layer, in entries."""
    return kernel_memory(shape.c_in, shape.kernel, shape.c_out), neuron_memory(shape.c_out, shape.out_size)


def ki(entries: int) -> str:
    """Entries as people read them: ``16 Ki``, ``0.5 Ki``, or a plain count below 512."""
    return f"{entries / KI:g} Ki" if entries >= KI // 2 else str(entries)


def check_layer(s: LayerShape, chip: ChipSpec) -> list[Violation]:
    """Every limit of ``chip`` that layer ``s`` breaks (empty: it fits some core alone)."""
    v: list[Violation] = []
    add = lambda limit, value, allowed: v.append(Violation(s.name, limit, value, allowed))
    if max(s.in_size) > chip.max_input:
        add("input size", f"{s.in_size[0]}x{s.in_size[1]}", f"at most {chip.max_input}x{chip.max_input}")
    for what, c in (("input channels", s.c_in), ("output channels", s.c_out)):
        if c > chip.max_channels:
            add(what, c, f"at most {chip.max_channels}")
    if s.kernel[0] != s.kernel[1]:
        add("kernel shape", f"{s.kernel[0]}x{s.kernel[1]}", "square kernels only")
    if max(s.kernel) > chip.max_kernel:
        add("kernel size", max(s.kernel), f"at most {chip.max_kernel}")
    if any(x not in chip.strides for x in s.stride):
        add("stride", s.stride, f"each of {list(chip.strides)}")
    if max(s.padding) > chip.max_padding:
        add("padding", s.padding, f"at most {chip.max_padding}")
    if s.pool[0] != s.pool[1]:
        add("pooling shape", f"{s.pool[0]}x{s.pool[1]}", "square sum pooling only")
    if any(p not in chip.pools for p in s.pool):
        add(
            "sum pooling",
            s.pool[0] if s.pool[0] == s.pool[1] else s.pool,
            f"one of {list(chip.pools)} (stride == kernel)",
        )
    if s.destinations > chip.max_destinations:
        add("destination layers", s.destinations, f"at most {chip.max_destinations}")
    if min(s.out_size) < 1:
        add("output size", s.out_size, "at least 1x1 (the kernel is larger than the padded input)")
        return v  # memories of an empty output are meaningless
    k, n = memory(s)
    if k > chip.max_kernel_memory:  # say what would fit: c_in scales the memory linearly
        fit = chip.max_kernel_memory // (k // s.c_in)
        add(
            "kernel memory",
            ki(k),
            f"at most {ki(chip.max_kernel_memory)} (the largest core; with this kernel and "
            f"{s.c_out} output channels, at most {fit} input channels)",
        )
    if n > chip.max_neuron_memory:
        fit = chip.max_neuron_memory // (n // s.c_out)
        add(
            "neuron memory",
            ki(n),
            f"at most {ki(chip.max_neuron_memory)} (the largest core; at "
            f"{s.out_size[0]}x{s.out_size[1]} output, at most {fit} channels)",
        )
    return v
