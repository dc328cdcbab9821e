"""Online training (SLTT, SLTT-K, OTTT, NDOT): traces, gradients, memory, config and CLI.

Tiny CPU networks only; the gradients are checked against a hand-derived reference or
against brute-force autograd over the whole sequence.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from runtime.neuron import NeuronSpec
from tests.conftest import fit_checkpoint, one_error
from tests.conftest import run_trainer as run
from tests.export_helpers import run_steps
from trainer.checkpoint import load_checkpoint
from trainer.config import ONLINE_METHODS, Config, ConfigError, MethodConfig
from trainer.layers import NeuronLayer, Sequence, Stateless
from trainer.memory import Case, case_config, saved_bytes
from trainer.models import SpikingNet, build_model
from trainer.neurons import Neuron
from trainer.online import ONLINE, backward_steps, online_iteration, online_method, step_loss
from trainer.traces import ndot_ratio, ndot_trace, ottt_trace, traced_step
from trainer.weight_std import GAMMA, WeightStandardized, standardize

DECAY, V_TH = 0.5, 1.0


def tiny_cfg(method: str = "sltt", T: int = 4, norm: str = "bn-step", K: int = 0, name: str = "1C2FC") -> Config:
    cfg = Config()
    cfg.model.name, cfg.model.width, cfg.model.in_shape, cfg.model.stages = name, 4, (2, 8, 8), 1
    cfg.model.bn, cfg.model.bn_stats, cfg.model.weight_std = {
        "bn-step": (True, "step", False),
        "sws": (False, "sequence", True),
        "none": (False, "sequence", False),
    }[norm]
    cfg.method = MethodConfig(method, T=T, tmax=T, batch_size=6, K=K)
    return cfg.validate()


def spikes(T: int, B: int, shape, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, *shape, generator=g) * scale


# ---------------------------------------------------------------- registry and loss


def test_registry_matches_config_and_fails_loudly():
    assert tuple(ONLINE) == ONLINE_METHODS
    with pytest.raises(ConfigError, match="expected one of .*'sltt'.*'ndot-o'"):
        online_method("eprop")


def test_step_loss_mixes_ce_and_mse():
    out, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    ce = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(1 / (1 + math.e))) / 2
    mse = ((2 - 1) ** 2 + 0 + (0 - 1) ** 2 + 1) / 4
    assert step_loss(out, y, 0.1).item() == pytest.approx(0.9 * ce + 0.1 * mse, rel=1e-6)
    # SLTT S13: the MSE target is V_th * one-hot (here V_th = 0.5)
    mse_vth = ((2 - 0.5) ** 2 + 0 + (0 - 0.5) ** 2 + 1) / 4
    assert step_loss(out, y, 0.1, 0.5).item() == pytest.approx(0.9 * ce + 0.1 * mse_vth, rel=1e-6)


def test_paper_defaults_of_the_cli():
    """The fit CLI's defaults are the papers': SLTT's V_th target, SLTT-K over T, NDOT's
    ratio; OTTT/NDOT keep the one-hot target."""
    from trainer.cli import config_from_args, parser

    def method(*argv: str) -> MethodConfig:
        a = parser().parse_args(["fit", "--norm", "bn-step", *argv])
        return config_from_args(a, (2, 8, 8), "static", 0.0).method

    m = method("--method", "sltt-k", "--T", "4", "--K", "2")
    assert (m.target, m.k_scale, m.optimizer) == ("vth", "T", "adam")
    assert method("--method", "ndot-a", "--T", "4").target == "onehot"
    assert method("--method", "ndot-a", "--T", "4").ndot_ratio == "paper"
    m = method("--method", "sltt", "--T", "4", "--target", "onehot", "--optimizer", "sgd")
    assert (m.target, m.optimizer) == ("onehot", "sgd")


def test_sgd_optimizer_has_momentum_09():
    from trainer.train import make_optimizer

    w = nn.Parameter(torch.ones(2))
    opt = make_optimizer([w], MethodConfig("sltt", lr=0.1, optimizer="sgd"))
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    assert isinstance(make_optimizer([w], MethodConfig("sltt", lr=0.1)), torch.optim.Adam)


def test_lamb_moves_each_tensor_by_lr_times_its_clipped_norm():
    """LAMB (--optimizer lamb, T-RevSNN): per tensor ||dw|| = lr / (1 - beta1^t) * min(||w||, 10)
    whatever the gradient's scale (Adam's update times the trust ratio), so a small tensor
    and a large one move by the same fraction until the norm clip; Adam would not."""
    from trainer.train import make_optimizer

    torch.manual_seed(0)
    small, large = nn.Parameter(torch.randn(7, 5) * 0.01), nn.Parameter(torch.randn(50) * 3)
    opt = make_optimizer([small, large], MethodConfig("sdt", lr=1e-2, optimizer="lamb"))
    assert type(opt).__name__ == "Lamb"
    scale = torch.arange(35.0).view(7, 5)
    for t in range(1, 4):
        before = [small.detach().clone(), large.detach().clone()]
        opt.zero_grad()
        ((small * scale).sum() + (large**3).sum()).backward()
        opt.step()
        step = 1e-2 / (1 - 0.9**t)
        moved = [float((w.detach() - b).norm()) for w, b in zip((small, large), before)]
        assert moved[0] == pytest.approx(step * float(before[0].norm()), rel=1e-4), t
        assert float(before[1].norm()) > 10 and moved[1] == pytest.approx(step * 10.0, rel=1e-4), t


def test_lamb_without_its_package_is_one_config_error(monkeypatch):
    import sys

    from trainer.train import make_optimizer

    monkeypatch.setitem(sys.modules, "pytorch_optimizer", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="--optimizer lamb needs the pytorch_optimizer package"):
        make_optimizer([nn.Parameter(torch.ones(2))], MethodConfig("sdt", optimizer="lamb"))


def test_sltt_k_divides_by_T_as_the_paper():
    """SLTT Alg. 1: the K sampled steps' loss over T, so the gradient is K/T of the
    rule that divides by K (same draw of steps)."""
    grads = {}
    for scale in ("T", "K"):
        cfg = tiny_cfg("sltt-k", T=5, K=2)
        cfg.method.k_scale = scale
        torch.manual_seed(0)
        model = build_model(cfg).train()
        opt = Recorder(model.parameters(), lr=1.0)
        x, y = spikes(5, 6, (2, 8, 8), seed=3), torch.tensor([0, 1, 2, 3, 4, 5])
        online_iteration(model, opt, x, y, cfg.method, np.random.default_rng(7))
        grads[scale] = opt.grads
    assert any(g.abs().sum() > 0 for g in grads["K"])
    for g_t, g_k in zip(grads["T"], grads["K"]):
        torch.testing.assert_close(g_t, g_k * 2 / 5, rtol=1e-5, atol=1e-8)


def test_sltt_k_draws_k_distinct_steps():
    rng = np.random.default_rng(0)
    draws = [backward_steps(6, 2, rng) for _ in range(300)]
    assert all(len(d) == 2 and d[0] < d[1] and 0 <= d[0] and d[1] < 6 for d in draws)
    assert {t for d in draws for t in d} == set(range(6))


# ---------------------------------------------------------------- traces


def test_trace_recurrences_by_hand():
    a, out = torch.zeros(1), []
    for s in (1.0, 0.0, 1.0, 1.0):
        a = ottt_trace(a, torch.tensor([s]), 0.5)
        out.append(a.item())
    assert out == [1.0, 0.5, 1.25, 1.625]
    u_prev = torch.tensor([1.0, 0.0, 1.0, 1.0, -1.0, 1e-30, 1.0])
    u = torch.tensor([0.3, 3.0, 5.0, -5.0, 0.2, 3e38, float("nan")])
    # plain ratio, zero denominator, clamp above, clamp below, negative ratio, overflow, NaN
    clamped = ndot_ratio(u, u_prev, 0.5, clamp=True)
    assert clamped.tolist() == pytest.approx([0.3, 0.5, 0.5, -0.5, -0.2, 0.5, 0.5])
    # the paper's rule: λ only where the denominator is zero (or the ratio not finite)
    paper = ndot_ratio(u, u_prev, 0.5, clamp=False)
    assert paper.tolist() == pytest.approx([0.3, 0.5, 5.0, -5.0, -0.2, 0.5, 0.5])
    # first step: e_1 = u_1 (the paper's footnote, this code's u after reset), or λ clamped
    u1 = torch.tensor([0.7, -0.2, 0.0])
    assert ndot_ratio(u1, None, 0.5, clamp=False).tolist() == pytest.approx([0.7, -0.2, 0.0])
    assert ndot_ratio(u1, None, 0.5, clamp=True).tolist() == [0.5, 0.5, 0.5]
    assert ndot_trace(torch.tensor([1.0, 2.0]), torch.tensor([0.5, -0.25]), torch.tensor([0.0, 1.0])).tolist() == [
        0.5,
        0.5,
    ]


@pytest.mark.parametrize("rule", ["ottt", "ndot", "ndot-clamped"])
def test_traced_step_keeps_the_forward_and_follows_the_recurrence(rule):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(norm="none")).train()
    neurons = [m for m in model.modules() if isinstance(m, Neuron)]
    record: dict[Neuron, list] = {n: [] for n in neurons}
    for n in neurons:
        n.register_forward_hook(lambda mod, inp, out: record[mod].append((out[0], out[1][0])))
    x = spikes(5, 3, (2, 8, 8))
    states, traces, plain = [None] * model.n_states, [None] * model.n_states, [None] * model.n_states
    for t, x_t in enumerate(x):
        y, states, traces = traced_step(model, x_t, states, traces, rule)
        y_plain, plain = model.step(x_t, t, plain)
        torch.testing.assert_close(y, y_plain, rtol=0, atol=0)
    for i, n in enumerate(neurons):
        steps = record[n][::2]  # every step ran traced, then plain
        a = torch.zeros_like(steps[0][0])
        e = torch.full_like(a, DECAY)
        u_prev = None
        for s, u in steps:
            a = DECAY * a + s if rule == "ottt" else e * a + s
            e = hand_ratio(u, u_prev, clamp=rule == "ndot-clamped")
            u_prev = u
        assert steps[-1][0].sum() > 0  # the layer spikes: the check is not vacuous
        torch.testing.assert_close(traces[i].a, a.detach())


# ---------------------------------------------------------------- gradients


def mlp() -> SpikingNet:
    """Linear(6, 5) -> LIF -> Linear(5, 3), float64: small enough for a hand derivation."""
    torch.manual_seed(1)
    net = SpikingNet(
        [
            Sequence(
                [
                    Stateless(nn.Flatten()),
                    Stateless(nn.Linear(6, 5)),
                    NeuronLayer(NeuronSpec("LIF", DECAY, V_TH)),
                    Stateless(nn.Linear(5, 3)),
                ]
            )
        ],
        "mean",
    )
    with torch.no_grad():
        net.stages[0].layers[1].module.weight.mul_(3)
    return net.double()


def hand_ratio(u: torch.Tensor, u_prev: torch.Tensor | None, clamp: bool) -> torch.Tensor:
    """NDOT's e_t written out: the paper's (e_1 = u_1, λ only at u_{t-1} = 0) or clamped."""
    if u_prev is None:
        return torch.full_like(u, DECAY) if clamp else u
    r = u / u_prev
    r = r.clamp(-DECAY, DECAY) if clamp else r
    return torch.where((u_prev != 0) & (u / u_prev).isfinite(), r, torch.full_like(r, DECAY))


def hand_step(
    p: dict[str, torch.Tensor], x, y, u_prev, a_prev, e_prev, rule, n_learn, w, clamp=True, scale=1.0, first=False
):
    """One step's gradients of ``loss_t / n_learn`` by hand. Returns (grads, u, a, e)."""
    v = DECAY * u_prev + x @ p["W1"].T + p["b1"]
    s = (v >= V_TH).double()
    o = s @ p["W2"].T + p["b2"]
    B, C = o.shape
    Y = F.one_hot(y, C).double()
    g_o = ((1 - w) * (torch.softmax(o, 1) - Y) / B + w * 2 * (o - scale * Y) / (B * C)) / n_learn
    u = v - V_TH * s
    if rule == "ottt":
        a = DECAY * a_prev + s
    elif rule == "ndot":
        a = e_prev * a_prev + s
    else:
        a = s  # SLTT: the weight gradient sees this step's spikes
    e = hand_ratio(u, None if first else u_prev, clamp)
    g_v = (g_o @ p["W2"]) * torch.clamp(1 - (v - V_TH).abs(), min=0)  # triangle surrogate, h = 1
    grads = {"W2": g_o.T @ a, "b2": g_o.sum(0), "W1": g_v.T @ x, "b1": g_v.sum(0)}
    return grads, u, a, e


@pytest.mark.parametrize(
    "method, paper",
    [(m, False) for m in ("sltt", "ottt-a", "ottt-o", "ndot-a", "ndot-o")] + [("sltt", True), ("ndot-a", True)],
)
def test_gradient_matches_hand_derivation(method, paper):
    """``paper``: NDOT's paper ratio rule and SLTT's V_th-scaled target (the target scale
    passed is 0.5, unlike this net's V_th = 1, so a target left at one-hot fails)."""
    T, lr = 4, 0.1
    net = mlp()
    names = {
        "W1": "stages.0.layers.1.module.weight",
        "b1": "stages.0.layers.1.module.bias",
        "W2": "stages.0.layers.3.module.weight",
        "b2": "stages.0.layers.3.module.bias",
    }
    p = {k: net.state_dict()[v].clone() for k, v in names.items()}
    x = spikes(T, 7, (6,), seed=2).double()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    info = online_method(method)
    m = MethodConfig(method, T=T, mse_weight=online_method(method).mse_weight)
    if paper:
        m.ndot_ratio, m.target = "paper", info.target
    scale = 0.5 if m.target == "vth" else 1.0
    online_iteration(net, torch.optim.SGD(net.parameters(), lr=lr), x, y, m, np.random.default_rng(0), v_th=0.5)

    u = a = torch.zeros(7, 5, dtype=torch.float64)
    e = torch.full_like(u, DECAY)
    u_prev: torch.Tensor | None = None
    total = {k: torch.zeros_like(v) for k, v in p.items()}
    for t in range(T):
        g, u, a, e = hand_step(
            p, x[t], y, u, a, e, info.trace, T, m.mse_weight, clamp=not paper, scale=scale, first=u_prev is None
        )
        u_prev = u
        for k, g_k in g.items():
            if info.update == "step":
                p[k] = p[k] - lr * g_k
            total[k] += g_k
    assert total["W2"].abs().sum() > 0 and total["W1"].abs().sum() > 0
    for k, name in names.items():
        expected = p[k] if info.update == "step" else p[k] - lr * total[k]
        torch.testing.assert_close(net.state_dict()[name], expected, rtol=1e-10, atol=1e-12)


def brute_force_grads(model: SpikingNet, x, y, w: float, learn: list[int], detach: bool) -> dict[str, torch.Tensor]:
    """Autograd through the whole sequence: sum of the per-step losses of ``learn``
    over len(learn), with the membrane detached between steps (or not: full BPTT)."""
    model.zero_grad()
    states, total = [None] * model.n_states, 0.0
    for t in range(x.shape[0]):
        out, states = model.step(x[t], t, states)
        if t in learn:
            total = total + step_loss(out, y, w) / len(learn)
        if detach:
            states = [s.detach() for s in states]
    total.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


class Recorder(torch.optim.SGD):
    """Keeps the gradients of its one step instead of only applying them."""

    def step(self, closure=None):
        self.grads = [p.grad.clone() for g in self.param_groups for p in g["params"]]


@pytest.mark.parametrize("method, K", [("sltt", 0), ("sltt-k", 2)])
def test_sltt_equals_bptt_with_detached_membrane(method, K):
    cfg = tiny_cfg(method, T=5, K=K)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    ref_model = copy.deepcopy(model)
    x, y = spikes(5, 6, (2, 8, 8), seed=3), torch.tensor([0, 1, 2, 3, 4, 5])
    opt = Recorder(model.parameters(), lr=1.0)
    online_iteration(model, opt, x, y, cfg.method, np.random.default_rng(7))
    learn = backward_steps(5, K, np.random.default_rng(7)) if K else list(range(5))
    ref = brute_force_grads(ref_model, x, y, cfg.method.mse_weight, learn, detach=True)
    for (name, _), grad in zip(model.named_parameters(), opt.grads):
        torch.testing.assert_close(grad, ref[name], rtol=1e-5, atol=1e-7, msg=name)
    # and it is not BPTT: the temporal path changes the gradient
    bptt = brute_force_grads(copy.deepcopy(ref_model), x, y, cfg.method.mse_weight, learn, detach=False)
    assert any(not torch.allclose(bptt[n], ref[n], atol=1e-6) for n in ref)


# ---------------------------------------------------------------- memory


def test_online_memory_is_flat_in_T_and_bptt_grows_linearly():
    base = tiny_cfg(name="1C1FC")
    saved = {}
    for name, K in [("sdt", 0), *((n, 1 if n == "sltt-k" else 0) for n in ONLINE_METHODS)]:
        saved[name] = [saved_bytes(case_config(base, Case(name, K, T), 8)) for T in (2, 4, 8)]
    for name in ONLINE_METHODS:
        assert saved[name][0] == saved[name][2] > 0, (name, saved[name])
    s2, s4, s8 = saved["sdt"]
    assert s4 > s2 and s8 - s4 == 2 * (s4 - s2)  # every step adds the same bytes
    assert s8 > 3 * saved["sltt"][2]


# ---------------------------------------------------------------- normalisation


def test_stepwise_bn_sequence_equals_steps_in_training():
    x = spikes(4, 6, (2, 8, 8))
    for norm, equal in (("bn-step", True), ("bn", False)):
        cfg = tiny_cfg("sdt", norm="bn-step", name="1C1FC")
        cfg.model.bn_stats = "step" if norm == "bn-step" else "sequence"
        torch.manual_seed(0)
        model = build_model(cfg).train()
        with torch.no_grad():
            seq = model(x)
            steps = run_steps(model, x)
        assert seq.std(1).mean() > 0.01  # the outputs depend on the input (neurons spike)
        assert torch.allclose(steps, seq, atol=1e-5) == equal, norm


def test_weight_standardisation_by_hand_and_folding():
    w = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
    gain = torch.tensor([1.0, 0.5])
    r0 = GAMMA * torch.tensor([-1.0, 0.0, 1.0]) / math.sqrt(2 / 3 * 3 + 1e-4)
    mean1, var1 = 4 / 3, ((4 / 3) ** 2 * 2 + (8 / 3) ** 2) / 3
    r1 = 0.5 * GAMMA * (torch.tensor([0.0, 0.0, 4.0]) - mean1) / math.sqrt(var1 * 3 + 1e-4)
    torch.testing.assert_close(standardize(w, gain), torch.stack([r0, r1]))
    torch.manual_seed(0)
    layer = WeightStandardized(nn.Conv2d(2, 3, 3, padding=1))
    with torch.no_grad():
        layer.gain.copy_(torch.tensor([1.0, 2.0, 0.5]))
    x = torch.randn(2, 2, 5, 5)
    plain = layer.folded()
    assert type(plain) is nn.Conv2d
    torch.testing.assert_close(plain(x), layer(x))


def test_sws_model_round_trips_through_config(tmp_path):
    from trainer.checkpoint import save_checkpoint

    cfg = tiny_cfg("ndot-a", norm="sws")
    model = build_model(cfg)
    assert any(isinstance(m, WeightStandardized) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    save_checkpoint(tmp_path / "m.pt", cfg, model, {})
    cfg2, model2, _ = load_checkpoint(tmp_path / "m.pt")
    assert cfg2 == cfg and cfg2.model.weight_std
    x = spikes(3, 2, (2, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(model2(x), model.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "sltt", "norm": "bn"}, "cannot use BatchNorm over all T steps"),
        ({"name": "sltt-k", "K": 0}, "in [1, T=4], got 0"),
        ({"name": "sltt-k", "K": 5}, "in [1, T=4], got 5"),
        ({"name": "ottt-a", "K": 2}, "--K applies to sltt-k, not to method"),
        ({"name": "ndot-o", "mse_weight": 1.5}, "--mse-weight must be in [0, 1]"),
        # NDOT's ratio is of u - v_th s, the state only after a subtract reset with no floor:
        # with a zero reset e_1 was 0 where the formula gives u_1 - v_th (a stranger's 0.40)
        ({"name": "ndot-a", "reset": "zero"}, "reads its ratio u_t - v_th s_t off the membrane state"),
        (
            {"name": "ndot-o", "v_min": -1.0},
            "only with --reset subtract and no --v-min; got reset 'subtract', v_min -1",
        ),
    ],
)
def test_config_rejects_invalid_online_settings(change, message):
    cfg = tiny_cfg("sdt")
    if change.pop("norm", None) == "bn":
        cfg.model.bn_stats = "sequence"
    neuron = {k: change.pop(k) for k in ("reset", "v_min") if k in change}
    cfg.neuron.spec = dataclasses.replace(cfg.neuron.spec, **neuron)
    for k, v in change.items():
        setattr(cfg.method, k, v)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
        cfg.check_trainable()  # how it trains: fit's rules (a stored model of it still reads)
    assert message in str(err.value)
    if neuron:  # NDOT's: a checkpoint trained so before the rule still loads, evaluates and exports
        assert Config.from_dict(cfg.to_dict()).neuron.spec == cfg.neuron.spec


# ---------------------------------------------------------------- CLI

TINY = ("--data digits --epochs 1 --limit-train 64 --limit 32 --width 4 --batch-size 32 --T 3 --quiet").split()


@pytest.mark.parametrize("method, norm", [("sltt-k", "bn-step"), ("ndot-o", "sws")])
def test_fit_online_writes_a_checkpoint_that_rebuilds(method, norm, capsys, tmp_path):
    out = tmp_path / "m.pt"
    extra = ["--K", "1"] if method == "sltt-k" else []
    extra += ["--calib-batches", "1"] if norm.startswith("bn") else []  # refused without BatchNorm
    cfg, _, metrics = fit_checkpoint(capsys, out, *TINY, "--method", method, "--norm", norm, *extra)
    assert cfg.method.name == method and cfg.train_T == 3 and len(metrics["history"]) == 1
    assert cfg.method.mse_weight == online_method(method).mse_weight
    assert (cfg.model.bn_stats == "step") == (norm == "bn-step") and cfg.model.weight_std == (norm == "sws")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "--method", "bptt"], "or an online method ['sltt', 'sltt-k', 'ottt-a', 'ottt-o', 'ndot-a', 'ndot-o']"),
        (["fit", "--method", "sltt", "--norm", "bn"], "cannot use BatchNorm over all T steps (--norm bn)"),
        (["fit", "--method", "sltt-k", "--norm", "bn-step"], "in [1, T=3]; it has no default"),
        (["fit", "--method", "sltt-k", "--norm", "bn-step", "--K", "4"], "got 4"),
        (["fit", "--method", "sltt-k", "--norm", "bn-step", "--K", "-1"], "got -1"),
        (["fit", "--method", "sltt", "--norm", "sws", "--K", "2"], "--K applies to sltt-k, not to method"),
        (["fit", "--norm", "layernorm"], "expected one of ['bn', 'bn-step', 'sws', 'none']"),
        (["fit", "--method", "sltt", "--mse-weight", "2"], "--mse-weight must be a number in [0.0, 1.0], got 2"),
        (["memory", "--norm", "bn"], "online methods can use"),
        (["memory", "--methods", "mtt"], "memory compares sdt"),
        (["memory", "--methods", "sltt-k"], "sltt-k:K"),
        (["memory", "--methods", "sltt-k:9"], "--methods sltt-k:9: K must be in [1, T] for every --T 2"),
        (["memory", "--model", "trev-tiny"], "measured by `python -m trainer trev-memory`"),
        # an fc net has no conv (--width 2 is the memory commands' extra here): both were ignored
        (["memory", "--model", "fc-16", "--norm", "sws"], "model fc-16 has no conv layers: --norm sws"),
    ],
)
def test_bad_online_arguments_exit_2_with_one_line(argv, message, capsys):
    extra = TINY if argv[0] == "fit" else ["--T", "2", "--no-rss", "--width", "2", "--in-shape", "2", "8", "8"]
    code, _, err = run(capsys, argv[0], *extra, *argv[1:])
    one_error(code, err, message)


def test_memory_command_json(capsys):
    import json

    before = torch.get_num_threads()
    code, out, err = run(
        capsys,
        "memory",
        "--model",
        "1C1FC",
        "--width",
        "2",
        "--in-shape",
        "2",
        "8",
        "8",
        "--T",
        "2",
        "4",
        "2",  # each case once (a repeat gave two rows of one shared timing)
        "--methods",
        "sdt",
        "sltt",
        "sdt",
        "--batch-size",
        "2",
        "--repeats",
        "1",
        "--no-rss",
        "--threads",
        "2",
        "--json",
    )
    assert code == 0, err
    obj = json.loads(out)
    # the net measured, named as fit names it, with the width it was built with (a stranger read
    # "width": 0, the flag's "the model's default", on a page that measured width 32)
    assert (obj["model"], obj["width"]) == ("1C1FCW2", 2)
    assert obj["threads"] == 2  # the count the times were measured with
    assert obj["seed"] == 0 and obj["load_average"] >= 0 and obj["versions"]["torch"]  # what a rerun needs
    assert torch.get_num_threads() == before  # and the caller's count is restored
    assert [(r["method"], r["T"]) for r in obj["rows"]] == [("sdt", 2), ("sdt", 4), ("sltt", 2), ("sltt", 4)]
    assert obj["ratios"]["sltt"]["saved_T4_over_T2"] == 1.0
    assert all(0 < r["ms_per_iter_min"] <= r["ms_per_iter"] for r in obj["rows"])  # min and median
    assert obj["ratios"]["sdt"]["saved_T4_over_T2"] > 1.5
    # an fc net measures without normalisation by default (bn-step would be ignored: refused)
    code, out, err = run(
        capsys, "memory", "--model", "fc-16", "--in-shape", "1", "1", "12", "--T", "2", "--methods", "sdt",
        "--batch-size", "2", "--repeats", "1", "--no-rss", "--threads", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["norm"] == "none"


def test_memory_times_every_case_once_a_round():
    """The cases' timings are interleaved (each was timed in its own block, so a load that
    came and went favoured one method): warm-ups, then every case once a round, rotated."""
    from runtime.bench import Loop
    from trainer.memory import timed_loops

    calls: list[str] = []
    times = timed_loops({k: Loop(lambda: None, lambda k=k: calls.append(k)) for k in "abc"}, reps=3, progress=False)
    assert calls == list("abcabcbcacab")
    assert set(times) == set("abc") and all(0 < t["ms_per_iter_min"] <= t["ms_per_iter"] for t in times.values())


def test_memory_measures_the_network_fit_trains(tmp_path, capsys, monkeypatch):
    """memory built Config()'s network (LIF decay 0.5 with biases: what old checkpoints
    hold) while fit trains multi-spike IF without biases by default: it now builds fit's."""
    import trainer.memory as memory
    from trainer.checkpoint import load_checkpoint

    path = tmp_path / "m.pt"
    fit = ["fit", "--data", "digits", "--model", "1C1FC", "--width", "2", "--stages", "1", "--epochs", "1"]
    code, _, err = run(capsys, *fit, "--limit-train", "40", "--limit", "20", "--quiet", "--out", str(path))
    assert code == 0, err
    fitted, _, _ = load_checkpoint(path)
    built = []
    monkeypatch.setattr(memory, "measure", lambda base, *args: built.append(base) or [])
    monkeypatch.setattr(memory, "ratios", lambda rows: {})
    argv = ["memory", "--model", "1C1FC", "--width", "2", "--in-shape", "2", "20", "20", "--T", "2", "--no-rss"]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    (base,) = built
    assert base.neuron.spec.to_dict() == {**fitted.neuron.spec.to_dict(), "dt": 1.0}  # dt: one step, no recording
    assert base.model.bias is fitted.model.bias is False and json.loads(out)["neuron"] == "multi-if"


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimizer_foreach_update_equals_the_per_tensor_loop(optimizer):
    """make_optimizer's foreach kernels (speed, many parameter tensors) give the loop's
    update bit for bit."""
    from trainer.train import make_optimizer

    m = MethodConfig("sltt", lr=0.1, optimizer=optimizer, weight_decay=1e-3)
    ref_cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    extra = {"momentum": 0.9} if optimizer == "sgd" else {}
    results = []
    for make in (
        lambda ps: make_optimizer(ps, m),
        lambda ps: ref_cls(ps, lr=0.1, weight_decay=1e-3, foreach=False, **extra),
    ):
        torch.manual_seed(0)
        ps = [nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(5))]
        opt = make(ps)
        assert opt.defaults["foreach"] is not None
        for k in range(3):
            opt.zero_grad()
            sum(((p - k) ** 2).sum() * (i + 1) for i, p in enumerate(ps)).backward()
            opt.step()
        results.append([p.detach().clone() for p in ps])
    assert all(torch.equal(a, b) for a, b in zip(*results))
    torch.manual_seed(0)
    assert not torch.equal(results[0][0], torch.randn(3, 4))  # the steps moved the weights


def test_stage_counting_sees_weight_standardised_layers_once():
    """An sWS layer's synaptic operations are counted at the WeightStandardized wrapper
    (its inner conv runs without a call, so no hook of its own), once: the first conv of
    a static input gives dense MACs = outputs x fan-in."""
    from trainer.stage_cost import counting

    torch.manual_seed(0)
    model = build_model(tiny_cfg("sltt", norm="sws"))
    x = spikes(3, 2, (2, 8, 8), scale=1.5)
    first = next(m for m in model.modules() if isinstance(m, WeightStandardized))
    out: list[torch.Tensor] = []
    h = first.register_forward_hook(lambda _m, _i, o: out.append(o))
    with counting(model, dense_input=True) as counts:
        model(x, [3])
    h.remove()
    dense = sum(float(o.numel()) for o in out) * float(first.module.weight[0].numel())
    assert dense > 0 and counts.stages[0].macs == dense


@pytest.mark.parametrize(
    "argv, case",
    [
        (["memory", "--methods", "sdt", "sltt", "--T", "2", "--no-rss"], "sdt at T=2, --batch-size 100000 needs about"),
        (["memory", "--methods", "sltt", "--T", "2", "--no-rss"], "sltt at T=2, --batch-size 100000 needs about"),
        (["trev-memory", "--T", "2"], "T=2, --batch-size 100000 needs about"),
    ],
)
def test_memory_commands_refuse_a_batch_that_cannot_fit_before_building_it(argv, case, capsys, monkeypatch):
    """`trainer memory --batch-size 1000000` was the kernel's OOM kill (22 GB, no error line);
    with FLEXSNN_MAX_MEMORY=1G both commands allocated and failed in torch's allocator."""
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "1G")
    code, out, err = run(capsys, *argv, "--batch-size", "100000", "--threads", "1")
    assert code == 2 and out == "" and case in err and "1.0 GiB is available" in err, err


def test_memory_refuses_interleaved_timings_whose_inputs_together_cannot_fit(capsys, monkeypatch):
    """Interleaved, every case's input batch is held at once: each case alone fits here
    (about 50 MB), the six input batches together (about 600 MB) do not."""
    monkeypatch.setenv("FLEXSNN_MAX_MEMORY", "200M")
    argv = ["memory", "--model", "fc-16", "--in-shape", "1", "1", "12", "--methods", "sltt", "--no-rss"]
    code, out, err = run(capsys, *argv, "--T", "2", "4", "8", "16", "32", "64", "--batch-size", "100000")
    assert code == 2 and out == "" and "timing 6 cases interleaved" in err and "200.0 MiB is available" in err, err
