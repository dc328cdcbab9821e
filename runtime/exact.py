"""The fixed-order executor (backend ``exact``): the synaptic segments between neuron layers
computed by numba kernels whose arithmetic is the same on every machine, so predictions,
steps, spike counts and readouts are bit-identical on x86-64 (any SIMD level) and aarch64.

Why: onnxruntime's convolution and GEMM kernels (MLAS) block and sum in an order chosen per
instruction set, so the same model on the same input gives readouts that differ in the
last bits between AVX-512 and NEON, and now and then a spike (a membrane within rounding
of its threshold; docs/edge.md, "Raspberry Pi"). Here each output element is

    y = round_f32( (((0 + w_0 x_0) + w_1 x_1) + ... + w_{n-1} x_{n-1}) + b )

summed in float64 in the op's natural index order (Conv: input channel, kernel row,
kernel column; Gemm/MatMul: the inner index), then rounded to float32 once. A product of
two float32 values is exact in float64 (24 + 24 significand bits <= 53), so whether the
compiler fuses ``acc + w * x`` into an FMA or not, the result is the same: each addition
is one IEEE float64 rounding in a fixed order. No fast-math: LLVM may then neither
reassociate the sums nor contract the other multiply-adds (alpha, the pooling's division);
the vectorised loops run over independent output elements. AveragePool sums its window in
float64 (row, column) and divides by the count. Add, Reshape, Flatten and Identity run in
numpy (a single IEEE operation per element, or none). The neuron layers are the split
executor's numba kernels (runtime/neuron/kernels.py), float32 in the function bodies' order.

Against onnxruntime (float32 sums in its own order) the readouts differ in the last bits
and a spike can differ where a membrane lies within rounding of its threshold; this path
is the more accurate (one rounding per output instead of one per float32 addition).
Single-threaded (``--threads`` sets onnxruntime's threads only). numba is imported only by
:func:`compile_segment`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
import onnx
from onnx import numpy_helper

from .split import NotSplittable

Op = Callable[..., np.ndarray]


@cache
def _kernels() -> dict[str, Callable]:
    from .jit import cached_njit

    jit = cached_njit(nogil=True, boundscheck=False)

    @jit
    def conv2d(x, wt, bias, sh, sw, pt, pl, dh, dw, out):
        """out[b, o] = round_f32(sum over (c, ky, kx) ascending of x * w, then + bias[o]);
        ``wt`` is the weight as float64 [C, KH, KW, O]. Scattered from each non-zero input
        (a zero adds +-0, which changes no sum: it starts at +0 and never becomes -0), in
        (c, iy, ix) order, which is (c, ky, kx) order for every output it reaches."""
        B, C, H, W = x.shape
        _, KH, KW, O = wt.shape
        Ho, Wo = out.shape[2], out.shape[3]
        acc = np.empty((Ho, Wo, O), np.float64)
        for b in range(B):
            acc[:] = 0.0
            for c in range(C):
                for iy in range(H):
                    for ix in range(W):
                        xv = np.float64(x[b, c, iy, ix])
                        if xv == 0.0:
                            continue
                        for ky in range(KH):
                            ty = iy + pt - ky * dh  # = oy * sh
                            if ty < 0 or ty % sh != 0 or ty // sh >= Ho:
                                continue
                            oy = ty // sh
                            for kx in range(KW):
                                tx = ix + pl - kx * dw
                                if tx < 0 or tx % sw != 0 or tx // sw >= Wo:
                                    continue
                                a = acc[oy, tx // sw]
                                w = wt[c, ky, kx]
                                for o in range(O):
                                    a[o] += xv * w[o]
            for o in range(O):
                for oy in range(Ho):
                    for ox in range(Wo):
                        out[b, o, oy, ox] = np.float32(acc[oy, ox, o] + bias[o])

    @jit
    def gemm(a, wt, bias, alpha, out):
        """out[b, j] = round_f32(alpha * sum_k a[b, k] * wt[k, j] + bias[j]), k ascending
        (``wt`` and ``bias`` float64)."""
        B, K = a.shape
        N = wt.shape[1]
        acc = np.empty(N, np.float64)
        for b in range(B):
            acc[:] = 0.0
            for k in range(K):
                av = np.float64(a[b, k])
                if av == 0.0:  # +-0 changes no sum (see conv2d)
                    continue
                for j in range(N):
                    acc[j] += av * wt[k, j]
            for j in range(N):
                out[b, j] = np.float32(alpha * acc[j] + bias[j])

    @jit
    def avgpool2d(x, kh, kw, sh, sw, pt, pl, include_pad, out):
        B, C, H, W = x.shape
        Ho, Wo = out.shape[2], out.shape[3]
        for b in range(B):
            for c in range(C):
                for oy in range(Ho):
                    for ox in range(Wo):
                        s = 0.0
                        n = 0
                        for ky in range(kh):
                            iy = oy * sh - pt + ky
                            for kx in range(kw):
                                ix = ox * sw - pl + kx
                                if 0 <= iy < H and 0 <= ix < W:
                                    s += np.float64(x[b, c, iy, ix])
                                    n += 1
                        out[b, c, oy, ox] = np.float32(s / np.float64(kh * kw if include_pad else n))

    return {"conv2d": conv2d, "gemm": gemm, "avgpool2d": avgpool2d}


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _refuse(node: onnx.NodeProto, why: str) -> NotSplittable:
    return NotSplittable(f"{node.op_type} node {node.name!r} {why}")


def _conv(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> tuple[Op, list[str]]:
    a = _attrs(node)
    if node.input[1] not in consts or (len(node.input) > 2 and node.input[2] and node.input[2] not in consts):
        raise _refuse(node, "has weights that are not initializers")
    w = np.asarray(consts[node.input[1]], np.float32)
    if w.ndim != 4 or a.get("group", 1) != 1 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise _refuse(node, "is not a 2-D convolution with group 1 and explicit pads")
    bias = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
    b64 = np.asarray(bias, np.float32).astype(np.float64)
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    if not np.isfinite(w).all():
        raise _refuse(node, "has weights that are not finite")  # inf * 0 is NaN: zeros are skipped
    kh, kw = w.shape[2:]
    wt = np.ascontiguousarray(w.astype(np.float64).transpose(1, 2, 3, 0))  # [C, KH, KW, O]
    k = _kernels()["conv2d"]

    def run(x: np.ndarray) -> np.ndarray:
        H, W = x.shape[2:]
        Ho, Wo = (H + pt + pb - dh * (kh - 1) - 1) // sh + 1, (W + pl + pr - dw * (kw - 1) - 1) // sw + 1
        out = np.empty((x.shape[0], w.shape[0], Ho, Wo), np.float32)
        k(np.ascontiguousarray(x), wt, b64, sh, sw, pt, pl, dh, dw, out)
        return out

    return run, [node.input[0]]


def _gemm(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> tuple[Op, list[str]]:
    a = _attrs(node) if node.op_type == "Gemm" else {}
    if node.input[1] not in consts or (len(node.input) > 2 and node.input[2] and node.input[2] not in consts):
        raise _refuse(node, "has weights that are not initializers")
    w = np.asarray(consts[node.input[1]], np.float32)
    if a.get("transA", 0) or w.ndim != 2:
        raise _refuse(node, "is not [B, K] x [K, N] (transA = 0, a 2-D weight)")
    if not np.isfinite(w).all():
        raise _refuse(node, "has weights that are not finite")  # inf * 0 is NaN: zeros are skipped
    wt = np.ascontiguousarray((w.T if a.get("transB", 0) else w).astype(np.float64))  # [K, N]: inner loop over N
    c = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(wt.shape[1], np.float32)
    # beta * C once, in float64 (an IEEE product; broadcast to [N])
    bias = np.broadcast_to(
        np.float64(a.get("beta", 1.0)) * np.asarray(c, np.float32).astype(np.float64), (wt.shape[1],)
    )
    bias, alpha = np.ascontiguousarray(bias), np.float64(np.float32(a.get("alpha", 1.0)))
    k = _kernels()["gemm"]

    def run(x: np.ndarray) -> np.ndarray:
        if x.ndim != 2:
            raise NotSplittable(f"{node.op_type} node {node.name!r} got a {x.ndim}-D input; expected [B, K]")
        out = np.empty((x.shape[0], wt.shape[1]), np.float32)
        k(np.ascontiguousarray(x), wt, bias, alpha, out)
        return out

    return run, [node.input[0]]


def _avgpool(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> tuple[Op, list[str]]:
    a = _attrs(node)
    kh, kw = a["kernel_shape"]
    if (
        len(a["kernel_shape"]) != 2
        or a.get("ceil_mode", 0)
        or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
    ):
        raise _refuse(node, "is not a 2-D pool with explicit pads and ceil_mode 0")
    sh, sw = a.get("strides", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    include = bool(a.get("count_include_pad", 0))
    k = _kernels()["avgpool2d"]

    def run(x: np.ndarray) -> np.ndarray:
        H, W = x.shape[2:]
        out = np.empty((x.shape[0], x.shape[1], (H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1), np.float32)
        k(np.ascontiguousarray(x), kh, kw, sh, sw, pt, pl, include, out)
        return out

    return run, [node.input[0]]


def _reshape(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> tuple[Op, list[str]]:
    if node.op_type == "Flatten":
        axis = _attrs(node).get("axis", 1)
        return (lambda x: x.reshape(int(np.prod(x.shape[:axis])), -1)), [node.input[0]]
    if node.op_type == "Identity":
        return (lambda x: x), [node.input[0]]
    if node.input[1] not in consts:
        raise _refuse(node, "has a shape that is not a constant")
    shape, allowzero = [int(d) for d in consts[node.input[1]]], _attrs(node).get("allowzero", 0)

    def run(x: np.ndarray) -> np.ndarray:  # ONNX: 0 copies the input's dimension unless allowzero
        return x.reshape([x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(shape)])

    return run, [node.input[0]]


def _add(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> tuple[Op, list[str]]:
    ins = list(node.input)
    vals = [np.asarray(consts[i], np.float32) if i in consts else None for i in ins]

    def run(*xs: np.ndarray) -> np.ndarray:
        it = iter(xs)
        a, b = (v if v is not None else next(it) for v in vals)
        return np.add(a, b, dtype=np.float32)  # one IEEE float32 addition per element

    return run, [i for i, v in zip(ins, vals) if v is None]


BUILDERS: dict[str, Callable[[onnx.NodeProto, dict[str, np.ndarray]], tuple[Op, list[str]]]] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _gemm,
    "AveragePool": _avgpool,
    "Add": _add,
    "Reshape": _reshape,
    "Flatten": _reshape,
    "Identity": _reshape,
}
SUPPORTED_OPS = (*BUILDERS, "Constant")  # Constant nodes are folded into the weights


class ExactSegment:
    """One segment (``src`` -> ``dst``) as a list of fixed-order ops; :meth:`bind` returns a
    call that computes ``dst`` from ``src`` into the caller's buffers."""

    def __init__(self, src: str, dst: str, ops: Sequence[tuple[Op, list[str], str]]):
        self.src, self.dst, self.ops = src, dst, list(ops)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        values = {self.src: x}
        for op, ins, out in self.ops:
            values[out] = op(*(values[i] for i in ins))
        return values[self.dst]

    def bind(self, inp: np.ndarray, out: np.ndarray) -> Callable[[], None]:
        return lambda: np.copyto(out, self(inp).reshape(out.shape))


def compile_segment(seg: onnx.ModelProto, src: str, dst: str) -> ExactSegment:
    """The segment's nodes as fixed-order ops; :class:`NotSplittable` names an op outside
    :data:`SUPPORTED_OPS` (or a form of one that is not covered)."""
    consts = {i.name: numpy_helper.to_array(i) for i in seg.graph.initializer}
    ops = []
    for node in seg.graph.node:
        if node.op_type == "Constant":
            a = _attrs(node)
            if "value" not in a:
                raise _refuse(node, "is not a tensor constant")
            consts[node.output[0]] = numpy_helper.to_array(a["value"])
            continue
        build = BUILDERS.get(node.op_type)
        if node.domain not in ("", "ai.onnx") or build is None:
            raise _refuse(node, f"is not covered by the exact backend ({', '.join(SUPPORTED_OPS)})")
        op, ins = build(node, consts)
        ops.append((op, ins, node.output[0]))
    return ExactSegment(src, dst, ops)
