"""T-RevSNN: architecture, reversible gradients, activation memory, bad input, trainer CLI."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tests.conftest import fit_checkpoint, one_error
from tests.conftest import run_trainer as run
from trainer.config import ConfigError
from trainer.models import build_model, model_builder
from trainer.trev import ALPHA_MIN, DepthwiseConv, TRevNet, TRevOptions, clamp_abs_, depthwise, parse_options
from trainer.trev_memory import build, measure_T, trev_config

EVENTS = (2, 12, 12)
STATIC = (1, 12, 12)


def tiny(kind: str = "events", T: int = 4, name: str = "trev-tiny", width: int = 8) -> TRevNet:
    torch.manual_seed(0)
    net = build_model(trev_config(name, kind, EVENTS if kind == "events" else STATIC, T, width))
    assert isinstance(net, TRevNet)
    return net


def batch(net: TRevNet, T: int, B: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (2, 12, 12) if not net.static else (1, 12, 12)
    x = (torch.rand(T, B, *shape) < 0.4).float() * 2
    return x, torch.arange(B) % 10


def grads(net: TRevNet, x: torch.Tensor, y: torch.Tensor, reversible: bool) -> dict[str, torch.Tensor]:
    net.zero_grad(set_to_none=True)
    net.reversible = reversible
    net.loss(net(x), y).backward()
    return {n: p.grad for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["events", "static"])
@pytest.mark.parametrize("name", ["trev-tiny", "trev-tiny-h0.5"])
def test_reversible_gradients_equal_plain_backprop(kind, name):
    """The backward that recomputes c^{t-1} = (c^t - F(.)) / alpha gives the gradients of
    plain BPTT over the same network, within 1e-4, for every parameter (stems, every
    sub-network, alphas, heads)."""
    net = tiny(kind, 4, name)
    x, y = batch(net, 4)
    rev, plain = grads(net, x, y, True), grads(net, x, y, False)
    assert rev.keys() == plain.keys()
    # every sub-network and alpha is trained (sub-network 0 has no previous step: its U
    # gets no gradient in either form)
    assert any(n.startswith("subnets.3.alpha") for n in rev) and any(n.startswith("stems") for n in rev)
    for n in plain:
        torch.testing.assert_close(rev[n], plain[n], rtol=1e-4, atol=1e-4, msg=n)
    assert max(g.abs().max().item() for g in plain.values()) > 1e-3  # not all zero


def test_reversible_gradients_exact_in_float64():
    net = tiny("events", 4).double()
    x, y = batch(net, 4)
    rev, plain = grads(net, x.double(), y, True), grads(net, x.double(), y, False)
    for n in plain:
        torch.testing.assert_close(rev[n], plain[n], rtol=1e-10, atol=1e-12, msg=n)


@pytest.mark.parametrize("kind", ["events", "static"])
def test_step_by_step_equals_sequence(kind):
    """The one-step form (what export traces: sub-network t chosen by t, stem once for
    static input) computes exactly what training computes."""
    net = tiny(kind, 4).eval()
    x, _ = batch(net, 4)
    with torch.no_grad():
        seq = net(x)
        states, outs = [None] * net.n_states, []
        for t in range(4):
            y, states = net.step(x[t], t, states)
            outs.append(y)
    torch.testing.assert_close(torch.stack(outs), seq, rtol=0, atol=0)
    assert seq.shape == (4, 3, 10)


def test_static_input_is_encoded_once_and_split_by_channel():
    net = tiny("static", 4)
    calls = []
    net.stems[0].register_forward_hook(lambda *a: calls.append(1))
    x, _ = batch(net, 4)
    with torch.no_grad():
        net(x)
    assert len(net.stems) == 1 and len(calls) == 1
    assert net.group == 2 and net.widths == [2, 4, 6, 8]


def test_early_steps_run_the_first_sub_networks():
    """Fewer steps = the first sub-networks of the same model (early exit)."""
    net = tiny("events", 4).eval()
    x, _ = batch(net, 4)
    with torch.no_grad():
        full = net(x)
        states = [None] * net.n_states
        y0, _ = net.step(x[0], 0, states)
    torch.testing.assert_close(y0, full[0])
    with torch.no_grad():
        assert net(x[:2], [2]).shape == (2, 3, 10)


def test_alpha_is_kept_away_from_zero():
    a = torch.tensor([0.0, 1e-5, -1e-5, 0.3, -2.0])
    clamp_abs_(a, ALPHA_MIN)
    assert torch.equal(a, torch.tensor([ALPHA_MIN, ALPHA_MIN, -ALPHA_MIN, 0.3, -2.0]))
    net = tiny("events", 2)
    with torch.no_grad():
        net.subnets[1].alpha[2].fill_(0.0)
        net(batch(net, 2)[0])
    assert (net.subnets[1].alpha[2].abs() >= ALPHA_MIN).all()


def test_heads_on_earlier_steps_add_weighted_losses():
    net = tiny("events", 4, "trev-tiny-h0.5")
    y = torch.randn(3, 2, 10)
    labels = torch.tensor([1, 2])
    ce = torch.nn.functional.cross_entropy
    want = ce(y.mean(0), labels) + 0.5 * (ce(y[:1].mean(0), labels) + ce(y[:2].mean(0), labels))
    torch.testing.assert_close(net.loss(y, labels), want)
    assert net.head_weight == 0.5 and tiny("events", 4).head_weight == 0.0


def test_memory_reversible_saves_far_less_than_bptt():
    """Saved-for-backward bytes (saved_tensors_hooks): at least 3x less at T=4, and the
    reversible figure does not grow with T (stage outputs of the last step only)."""
    rows = {T: measure_T(trev_config("trev-tiny", "events", EVENTS, T, 8), batch_size=4)[0] for T in (2, 4, 8)}
    assert rows[4]["bptt_over_reversible"] >= 3.0
    for T in (2, 4, 8):
        assert rows[T]["reversible_saved_MiB"] < rows[T]["bptt_saved_MiB"]
    assert rows[8]["reversible_saved_MiB"] <= rows[2]["reversible_saved_MiB"] * 1.05


@pytest.mark.parametrize(
    "name, match",
    [
        ("trev-huge", "trev-SIZE.*tiny, small"),
        ("trev-tiny-hx", "trev-SIZE"),
    ],
)
def test_unknown_size_lists_the_valid_names(name, match):
    with pytest.raises(ConfigError, match=match):
        model_builder(name)


def test_bad_grouping_is_a_clear_error():
    with pytest.raises(ConfigError, match="cannot be split into T=3 equal groups"):
        build_model(trev_config("trev-tiny", "static", STATIC, 3, width=8))
    net = tiny("events", 4)
    x, _ = batch(net, 4)
    with pytest.raises(ConfigError, match="larger than the frame count 2"):
        net(x[:2], [4])
    with pytest.raises(ConfigError, match="4 frames cannot be split into T=3"):
        net(x, [3])
    with pytest.raises(ConfigError, match="has 4 sub-networks"):
        net(torch.cat([x, x]), [8])


def test_method_other_than_sdt_is_refused():
    cfg = trev_config("trev-tiny", "events", EVENTS, 4, 8)
    cfg.method.name = "mtt"
    with pytest.raises(ConfigError, match="use --method sdt"):
        build_model(cfg)


TINY = ["--method", "sdt", "--epochs", "1", "--limit-train", "60", "--limit", "30", "--batch-size", "30", "--quiet"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--model", "trev-huge", "--T", "2"], "trev-SIZE"),
        (["--model", "trev-tiny", "--T", "3", "--width", "8"], "cannot be split into T=3"),
        (["--model", "trev-tiny", "--T", "2", "--method", "mtt"], "use --method sdt"),
        # --tmax names sdt's one T when --T is not given: it trained at T = 4 and stored tmax 3
        (["--model", "trev-tiny", "--tmax", "3", "--width", "8"], "cannot be split into T=3"),
        # ... at its default value too (it trained at the trev default T = 4 instead)
        (["--model", "trev-tiny", "--tmax", "6", "--width", "8"], "cannot be split into T=6"),
        (["--model", "trev-tiny", "--T", "2", "--stages", "3"], "--stages applies to the MTT models"),
    ],
)
def test_cli_bad_input_exits_2(capsys, tmp_path, argv, match):
    code, _, err = run(capsys, "fit", "--data", "digits:static", *TINY, *argv, "--out", str(tmp_path / "m.pt"))
    assert code == 2 and re.search(match, err), err


def test_cli_fit_with_defaults_trains_by_sdt_at_its_own_T(capsys, tmp_path):
    """``fit --model trev-tiny`` and nothing else about the method: sdt at T = 4 (tmax's 6
    does not divide the width 32), the product's options; other models keep mtt."""
    cfg, model, _ = fit_checkpoint(
        capsys, tmp_path / "m.pt", "--data", "digits:static", "--model", "trev-tiny", *TINY[2:]
    )
    assert cfg.method.name == "sdt" and cfg.train_T == 4 and isinstance(model, TRevNet) and model.T == 4
    assert cfg.model.trev == parse_options([]).to_dict() and cfg.model.trev["backward"] == "bptt"
    # the paper's LIF, one spike a step: multi-spike IF made the cost grow with the exit step
    assert (cfg.neuron.spec.kind, cfg.neuron.spec.spike) == ("LIF", "single")
    other, _, _ = fit_checkpoint(capsys, tmp_path / "v.pt", "--data", "digits", "--model", "1C1FC", *TINY[2:])
    assert other.method.name == "mtt" and (other.neuron.spec.kind, other.neuron.spec.spike) == ("IF", "multi")


def test_cli_fit_then_eval_and_bad_T(capsys, tmp_path):
    """fit --model trev-... writes the usual checkpoint; its config alone rebuilds the
    model; eval at a T beyond the sub-networks is a clear error (exit 2)."""
    path = tmp_path / "m.pt"
    cfg, model, metrics = fit_checkpoint(
        capsys, path, "--data", "digits", "--model", "trev-tiny-h0.5", "--T", "2", "--width", "8", *TINY
    )
    assert (
        cfg.model.name == "trev-tiny-h0.5"
        and isinstance(model, TRevNet)
        and model.T == 2
        and 0.0 <= metrics["test_accuracy"] <= 1.0
    )
    code, out, err = run(capsys, "eval", str(path), "--T", "1", "2", "--limit", "30")
    assert code == 0 and "m.pt" in out, err
    code, out, err = run(capsys, "eval", str(path), "--T", "3", "--limit", "30")
    one_error(code, err, "has 2 sub-networks")  # the error alone (a range warning came first)
    # beside another model the comparison runs: the T-RevSNN's cells beyond its T stay empty
    # (it was refused outright)
    import json
    import shutil

    other = tmp_path / "copy.pt"
    shutil.copy(path, other)
    code, out, err = run(capsys, "eval", str(path), str(other), "--T", "1", "3", "--limit", "30", "--json")
    assert code == 0, err
    assert f"warning: T=3 is not available: {path} has 2 sub-networks (T in 1..2); shown as -" in err
    got = json.loads(out)
    assert got["T"] == [1, 3] and [r["accuracy"][1] for r in got["runs"]] == [None, None], got
    assert None not in [r["accuracy"][0] for r in got["runs"]], got
    code, out, err = run(capsys, "eval", str(path), str(path), "--T", "3", "--limit", "30")
    one_error(code, err, "has 2 sub-networks")  # the same file twice is still one model


def test_cli_trev_memory_table(capsys):
    code, out, err = run(
        capsys,
        "trev-memory",
        "--in-shape",
        "2",
        "12",
        "12",
        "--width",
        "8",
        "--T",
        "2",
        "4",
        "--batch-size",
        "2",
        "--repeats",
        "1",
    )
    assert code == 0, err
    assert "bptt_over_reversible" in out and "saved at T=4 / T=2" in out
    assert "bptt_ms_per_iter_min" in out and "(interleaved)" in out
    code, out, err = run(capsys, "trev-memory", "--model", "2C1FC", "--T", "2")
    assert code == 2 and "trev-" in err


def test_trev_memory_measures_the_network_fit_trains(tmp_path, capsys):
    """trev-memory built the options of before issue 18 (widths 1,2,3,4, plain down,
    layer scale 1) while fit trains trainer.trev.PRODUCT: its table was of another net."""
    from trainer.checkpoint import load_checkpoint

    path = tmp_path / "t.pt"
    fit = ["fit", "--data", "digits", "--model", "trev-tiny", "--width", "8", "--method", "sdt", "--T", "2"]
    code, _, err = run(
        capsys, *fit, "--epochs", "1", "--limit-train", "40", "--limit", "20", "--quiet", "--out", str(path)
    )
    assert code == 0, err
    cfg, fitted, _ = load_checkpoint(path)
    argv = ["trev-memory", "--in-shape", *map(str, cfg.model.in_shape), "--width", "8", "--T", "2", "--repeats", "1"]
    code, out, err = run(capsys, *argv, "--batch-size", "2", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["trev"] == {k: v for k, v in cfg.model.trev.items() if k != "backward"} and got["bias"] is False
    (row,) = got["rows"]
    assert all(0 < row[f"{m}_ms_per_iter_min"] <= row[f"{m}_ms_per_iter"] for m in ("reversible", "bptt"))
    code, out, err = run(capsys, *argv, "--batch-size", "2", "--trev", "widths=1,2,3,4")
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("network: --trev "))
    items = line.removeprefix("network: --trev ").split(", ")[0].split()  # pasted back: the same options
    assert parse_options(items) == parse_options(["widths=1,2,3,4"]) and line.endswith(", no biases")
    measured = build(trev_config("trev-tiny", "events", tuple(cfg.model.in_shape), 2, 8, parse_options([])))
    shapes = {k: tuple(v.shape) for k, v in measured.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in fitted.state_dict().items()}
    code, _, err = run(capsys, *argv, "--trev", "backward=reversible")
    one_error(code, err, "measures both backwards")


# ---------------------------------------------------------------- paper details (issue 18)


def with_opts(kind: str = "events", T: int = 4, width: int = 8, **opts) -> TRevNet:
    cfg = trev_config("trev-tiny", kind, EVENTS if kind == "events" else STATIC, T, width)
    cfg.model.trev = TRevOptions(**opts).to_dict()
    torch.manual_seed(0)
    net = build_model(cfg.validate())
    assert isinstance(net, TRevNet)
    return net


def test_paper_widths_and_layer_scale():
    """Stage widths W·(1, 2, 4, 6)/T (the paper's), each block's gamma at 0: blocks start
    as the identity (ConvNeXt layer scale)."""
    net = with_opts("static", 4, 8, widths=(1, 2, 4, 6), layer_scale=0.0)
    assert net.widths == [2, 4, 8, 12]
    gammas = [b.gamma for sub in net.subnets for st in sub.stages for b in st.blocks]
    assert gammas and all(torch.equal(g, torch.zeros_like(g)) for g in gammas)
    block = net.subnets[0].stages[1].blocks[0]
    z = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(block(z), z, rtol=0, atol=0)
    assert tiny("static", 4).widths == [2, 4, 6, 8]  # configs before issue 18: (1, 2, 3, 4)


def test_loss_rules_by_hand():
    """mean: CE(mean of y); last: CE(y_n) (the paper's text); steps: sum (t+1)/n CE(y_t)
    (the public code's intermediate supervision)."""
    ce = torch.nn.functional.cross_entropy
    y, labels = torch.randn(3, 2, 10), torch.tensor([1, 2])
    assert torch.allclose(with_opts(loss="mean").loss(y, labels), ce(y.mean(0), labels))
    assert torch.allclose(with_opts(loss="last").loss(y, labels), ce(y[2], labels))
    want = ce(y[0], labels) / 3 + 2 * ce(y[1], labels) / 3 + ce(y[2], labels)
    torch.testing.assert_close(with_opts(loss="steps").loss(y, labels), want)


def test_shared_weights_one_set_and_reversible_gradients_equal_bptt():
    """shared: one sub-network's weights at every step (the paper's Fig. 1); the
    reversible backward sums its gradients over steps exactly once, as plain BPTT does."""
    net = with_opts("events", 4, 8, shared=True, layer_scale=0.5, down="sws").double()
    assert all(sub is net.subnets[0] for sub in net.subnets)
    separate = with_opts("events", 4, 8)
    n_sub = sum(p.numel() for p in separate.subnets[0].parameters())
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in separate.parameters()) - 2 * n_sub
    x, y = batch(net, 4)
    x = x.double()
    rev, bptt = grads(net, x, y, True), grads(net, x, y, False)
    assert rev.keys() == bptt.keys() and any(g.abs().sum() > 0 for g in rev.values())
    for k in bptt:
        torch.testing.assert_close(rev[k], bptt[k], rtol=1e-9, atol=1e-12, msg=k)


def test_sws_down_convs_and_zero_heads_keep_spikes_alive():
    """The product's choices: with plain D_i convs the spikes die after stage 0 (the loss
    stayed at ln 10); with sWS they reach stage 3, and zero heads start at ln C."""
    x, y = batch(with_opts(), 4)
    rates = {}
    for down in ("plain", "sws"):
        net = with_opts("events", 4, 8, down=down, layer_scale=0.0, head_init="zero")
        seen: list[float] = []
        net.subnets[3].stages[3].down.sn.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o[0].mean()))
        with torch.no_grad():
            out = net(x)
        rates[down] = float(seen[-1])
        assert all(not h.fc.weight.any() for h in net.heads)  # zero heads: y_t is the bias alone
        torch.testing.assert_close(out[0, 0], net.heads[0].fc.bias)
    assert rates["sws"] > 0 and rates["sws"] > 10 * rates["plain"]


def test_trev_option_errors_list_the_valid_choices():
    with pytest.raises(ConfigError, match="expected one of .*'last'"):
        parse_options(["loss=avg"])
    with pytest.raises(ConfigError, match="unknown key 'fusion'"):
        parse_options(["fusion=all"])
    with pytest.raises(ConfigError, match="widths must be 4"):
        parse_options(["widths=1,2,4"])
    with pytest.raises(ConfigError, match="backward 'rev' is unknown; expected one of .*'bptt'"):
        parse_options(["backward=rev"])
    for bad in ("widths=a", "shared=maybe", "layer_scale=x"):  # the example each error gives parses
        with pytest.raises(ConfigError, match=r"bad value for \w+ \(e\.g\. (\S+)\)") as e:
            parse_options([bad])
        example = re.search(r"\(e\.g\. (\S+)\)", str(e.value)).group(1)  # was widths=[1, 2, 4, 6]
        parse_options([example])
    assert parse_options(["shared=true", "loss=steps"]) == TRevOptions(
        widths=(1, 2, 4, 6),
        layer_scale=0.0,
        loss="steps",
        shared=True,
        down="sws",
        head_init="zero",
        dw_scale=True,
        backward="bptt",
    )


def test_backward_option_picks_reversible_or_bptt(monkeypatch):
    """``backward``: the product trains by plain BPTT, ``backward=reversible`` by the
    O(L)-memory recomputation, and a config written before the option (no ``backward``)
    rebuilds with the reversible backward it was trained with. Only training uses it."""
    import trainer.trev as trev

    calls = []
    real = trev.reversible_c3
    monkeypatch.setattr(trev, "reversible_c3", lambda subnets, xs: calls.append(len(subnets)) or real(subnets, xs))
    for opts, want in (({"backward": "bptt"}, False), ({"backward": "reversible"}, True), ({}, True)):
        net = with_opts(**opts)
        assert net.reversible is want
        x, y = batch(net, 4)
        net.loss(net(x), y).backward()
        assert calls == ([4] if want else []), opts
        with torch.no_grad():
            net(x)  # evaluation never recomputes
        assert calls == ([4] if want else []), opts
        calls.clear()
    assert trev.PRODUCT.backward == "bptt" and parse_options([]).backward == "bptt"


def test_fusion_reads_the_next_level_of_the_previous_step_only():
    """The public code's rule (docs/trev.md, Fusion): stage i's input from step t-1 is
    U_i(c_{i+1}^{t-1}) alone, so a change of c_3^{t-1} reaches stage 2 (directly) and the
    stages above it through the same step, but never stages 0 and 1."""
    net = with_opts("events", 4, 8)
    sub = net.subnets[1]
    x = net.encode(batch(net, 4)[0], 4)[1]
    torch.manual_seed(1)
    prev = [torch.randn(3, w, *s) for w, s in zip(net.widths, net.sizes)]
    changed = [*prev[:3], prev[3] + 5.0]
    with torch.no_grad():
        a, b = sub(x, prev), sub(x, changed)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[2], b[2])


@pytest.mark.parametrize("k", [3, 5])
def test_depthwise_conv_on_a_1x1_map_is_the_conv(k):
    """The 1x1-map shortcut (centre tap times the input, plus the bias) gives the conv's
    output (up to one rounding: the conv may fuse the multiply and the bias add) and its
    gradients (the weight's only through the centre tap); larger maps take the conv itself."""
    torch.manual_seed(k)
    dw = depthwise(6, k)
    ref = torch.nn.Conv2d(6, 6, k, padding=k // 2, groups=6)
    ref.load_state_dict(dw.state_dict())
    assert isinstance(dw, DepthwiseConv)
    for hw in (1, 2, 4):
        x = torch.randn(5, 6, hw, hw, dtype=torch.float32, requires_grad=True)
        x2 = x.detach().clone().requires_grad_(True)
        a, b = dw(x), ref(x2)
        if hw == 1:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(a, b), hw
        g = torch.randn_like(a)
        a.backward(g)
        b.backward(g)
        assert torch.equal(x.grad, x2.grad), hw
        torch.testing.assert_close(dw.weight.grad, ref.weight.grad, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(dw.bias.grad, ref.bias.grad, rtol=1e-6, atol=1e-6)
        if hw == 1:  # only the centre tap meets data
            off = dw.weight.grad.clone()
            off[:, 0, k // 2, k // 2] = 0
            assert not off.any() and dw.weight.grad.abs().sum() > 0
        dw.zero_grad()
        ref.zero_grad()
    with pytest.raises(ValueError, match="odd size"):
        depthwise(4, 2)


def test_dw_scale_is_the_products_and_old_configs_keep_the_conv():
    """``dw_scale``: the product's blocks take the 1x1 shortcut; a config written before the
    option (field default) rebuilds plain convs, so it trains bit for bit as it did."""
    kinds = lambda net: {type(m) for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    assert kinds(with_opts(dw_scale=True)) == {DepthwiseConv}
    assert kinds(with_opts()) == {torch.nn.Conv2d} and parse_options(["dw_scale=false"]).dw_scale is False
    assert parse_options([]).dw_scale is True
