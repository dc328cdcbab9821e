"""Exit thresholds chosen on the validation split, the margin rule, and runs outside the
trained T range (hand-built models: no torch, no exporter)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import runtime
from runtime.data import load_dataset
from runtime.exit_calibration import (
    RULES,
    candidates,
    choose,
    no_saving_note,
    replay,
    replay_cascade,
    step_readouts,
)
from runtime.policies import Margin, PolicyError, parse_policy
from runtime.protocol import ModelError, read_model
from tests.runtime_fixtures import save, tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model_path(tmp_path):
    return save(tiny_model(classes=10, T=6), tmp_path / "m.onnx")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime", *args], cwd=ROOT, capture_output=True, text=True)


def test_splits_are_disjoint_and_val_is_part_of_train():
    train, val, rest, test = (load_dataset("digits:static", s) for s in ("train", "val", "train-minus-val", "test"))
    idx = {
        s: set(d.meta["index"].tolist()) for s, d in (("train", train), ("val", val), ("rest", rest), ("test", test))
    }
    assert idx["val"] | idx["rest"] == idx["train"] and not idx["val"] & idx["rest"]
    assert not idx["train"] & idx["test"] and all(i % 10 == 1 for i in idx["val"])
    assert len(val) == 180 and len(rest) == 1257 and len(test) == 360


def test_margin_rule():
    logits = np.log(np.array([[0.5, 0.4, 0.1], [0.8, 0.1, 0.1]]))
    assert Margin(0.3).confident(logits).tolist() == [False, True]
    assert parse_policy("margin:0.3,tmin=2,tmax=5") == Margin(0.3, 2, 5)
    with pytest.raises(PolicyError, match="margin threshold must be in"):
        parse_policy("margin:1.5")


@pytest.mark.parametrize("rule", list(RULES))
def test_replay_is_what_the_session_does(model_path, rule):
    """Replaying a rule on recorded readouts gives the session's own predictions and steps."""
    s = runtime.load(model_path)
    ds = load_dataset("digits:static", "val", 60)
    readouts = step_readouts(s, ds, 6, batch_size=16)
    assert readouts.shape == (6, 60, 10)
    th = float(np.median([RULES[rule][0](z) for z in readouts]))
    pred, steps = replay(readouts, rule, th, tmin=2)
    r = s.run(ds.images, f"{rule}:{th},tmin=2,tmax=6")
    assert steps.tolist() == r.steps.tolist() and pred.tolist() == r.predictions.tolist()
    assert 2 <= steps.min() and 1 < steps.mean() < 6  # the threshold does stop some, not all, samples


def test_choose_keeps_the_budget_and_minimises_steps():
    rng = np.random.default_rng(0)
    readouts = np.cumsum(rng.normal(0, 1, (6, 200, 4)), axis=0)
    labels = readouts[-1].argmax(1)
    labels[:20] = (labels[:20] + 1) % 4  # fixed T = 6 is 90% right
    c = choose({6: readouts}, labels, budget_points=2.0, tmin=1)
    assert c["fixed_accuracy"] == pytest.approx(0.9)
    ref_pred = readouts[-1].argmax(1)
    for rule in RULES:
        best = c["per_rule"][rule]
        pred, steps = replay(readouts, rule, best["threshold"], best["tmin"])
        assert (pred != ref_pred).mean() <= 0.02 + 1e-12 and steps.mean() == pytest.approx(best["mean_steps"])
        assert (pred == labels).mean() >= 0.88 - 1e-12  # disagreement bounds the accuracy lost
        assert best["disagreement"] == pytest.approx((pred != ref_pred).mean())
    assert c["per_rule"]["cascade"] is None  # one horizon: no second run to cascade to
    assert c["best"]["mean_steps"] == min(b["mean_steps"] for b in c["per_rule"].values() if b)
    strict = choose({6: readouts}, labels, budget_points=0.0, tmin=1)
    assert strict["best"]["mean_steps"] >= c["best"]["mean_steps"]


def _brute_force(by_horizon, labels, budget_points):
    """Every candidate replayed one by one: (mean steps, -accuracy) of the best within budget."""
    T = max(by_horizon)
    ref = by_horizon[T][-1].argmax(1)
    found = []
    for H, r in by_horizon.items():
        found.append((H, r[-1].argmax(1)))
        for rule in RULES:
            for th in candidates(r, rule):
                for tmin in range(1, H):
                    pred, steps = replay(r, rule, float(th), tmin)
                    found.append((steps.mean(), pred))
            for T1 in (H1 for H1 in by_horizon if H1 > H):
                for th in candidates(r[-1:], rule):
                    pred, steps = replay_cascade(by_horizon, rule, float(th), H, T1)
                    found.append((steps.mean(), pred))
    ok = [(s, -(p == labels).mean()) for s, p in found if (p != ref).mean() <= budget_points / 100 + 1e-12]
    return min(ok)


def test_choose_finds_the_cheapest_candidate_over_horizons_and_tmin():
    rng = np.random.default_rng(3)
    by_horizon = {H: np.cumsum(rng.normal(0, 1, (H, 30, 3)), axis=0) for H in range(1, 5)}
    labels = by_horizon[4][-1].argmax(1)
    labels[:4] = (labels[:4] + 1) % 3
    for budget in (0.0, 10.0, 20.0):
        c = choose(by_horizon, labels, budget)
        best = c["best"]
        assert (best["mean_steps"], -best["accuracy"]) == pytest.approx(_brute_force(by_horizon, labels, budget))
        # the stored policy string replays to the reported figures on its own horizon
        r = by_horizon[best["tmax"]]
        if best["rule"] == "fixed":
            pred, steps = r[-1].argmax(1), np.full(30, best["tmax"])
        elif best["rule"] == "cascade":
            pred, steps = replay_cascade(by_horizon, best["score"], best["threshold"], best["tmin"], best["tmax"])
        else:
            pred, steps = replay(r, best["rule"], best["threshold"], best["tmin"])
        assert parse_policy(best["policy"]).horizon(4) == best["tmax"]
        assert steps.mean() == pytest.approx(best["mean_steps"])
        assert (pred != by_horizon[4][-1].argmax(1)).mean() == pytest.approx(best["disagreement"])
        assert best["disagreement"] <= budget / 100 + 1e-12


def _blank(horizons: range, N: int, C: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Labels 0, 1, .., C - 1, 0, ... and all-zero readouts ``[H, N, C]`` per horizon H."""
    return np.arange(N) % C, {H: np.zeros((H, N, C)) for H in horizons}


def test_choose_picks_a_smaller_fixed_T_when_it_keeps_the_budget_more_cheaply():
    """Horizon 2 predicts what horizon 6 does; step 1 of any horizon is confidently wrong on
    a tenth of the samples (so no rule may exit there at budget 0): fixed:2 is the cheapest."""
    N, C = 50, 4
    labels, by_horizon = _blank(range(1, 7), N, C)
    wrong = np.arange(N) % 10 == 0
    for r in by_horizon.values():
        r[:, np.arange(N), labels] = 1.0  # a mild lead for the right class
        r[0, wrong] = 0.0
        r[0, wrong, (labels[wrong] + 1) % C] = 5.0  # confidently wrong at step 1
    c = choose(by_horizon, labels, budget_points=0.5)
    assert c["best"]["policy"] == "fixed:2" and c["saving"]
    assert c["best"]["accuracy"] == 1.0 and c["best"]["disagreement"] == 0.0
    assert c["per_rule"]["fixed"]["policy"] == "fixed:2"
    # without fixed T, a rule must wait for step 2 as well: no cheaper, not chosen over fixed:2
    assert min(c["per_rule"][r]["mean_steps"] for r in RULES) >= 2.0
    # at a budget that lets the wrong tenth go, exiting at step 1 wins (fixed:1 or a rule)
    assert choose(by_horizon, labels, budget_points=10.0)["best"]["mean_steps"] == 1.0


def test_losses_count_only_what_the_reference_got_right():
    """fixed:2 differs from fixed:4 on 4 of 40 samples, all of which fixed:4 gets wrong:
    no loss (chosen under ``losses``), but 10% disagreement (refused under ``disagreement``)."""
    N, C = 40, 4
    labels, by_horizon = _blank(range(2, 5), N, C)
    for H, r in by_horizon.items():
        r[:, np.arange(N), labels] = 1.0
        r[-1, :4] = 0.0
        r[-1, np.arange(4), (labels[:4] + (1 if H == 4 else 2)) % C] = 1.0  # wrong at 4, otherwise wrong at 2, 3
    loose = choose(by_horizon, labels, 1.0, rules=["fixed"], criterion="losses")
    assert loose["best"]["policy"] == "fixed:2" and loose["best"]["losses"] == 0.0
    assert loose["best"]["disagreement"] == pytest.approx(0.1)
    assert choose(by_horizon, labels, 1.0, rules=["fixed"])["best"]["policy"] == "fixed:4"
    with pytest.raises(PolicyError, match="criterion 'accuracy' is unknown"):
        choose(by_horizon, labels, 1.0, criterion="accuracy")


def test_choose_says_when_nothing_cheaper_keeps_the_budget():
    N, C = 30, 3
    labels, by_horizon = _blank(range(1, 7), N, C)
    for H, r in by_horizon.items():
        r[:, np.arange(N), (labels + 1) % C] = 2.0  # every step before the last says otherwise
        r[-1] = 0.0
        r[-1, np.arange(N), labels] = 2.0 if H == 6 else 0.0
        r[-1, np.arange(N), (labels + 2) % C] = 0.0 if H == 6 else 2.0
    c = choose(by_horizon, labels, budget_points=3.0)
    assert not c["saving"] and c["best"]["policy"] == "fixed:6" and c["best"]["mean_steps"] == 6.0
    note = no_saving_note(N, 3.0, 6, "disagreement")
    assert "no policy cheaper than fixed:6" in note and "(at most 0 allowed)" in note and "30 samples" in note
    # the reference is right everywhere, so every disagreement is a loss: the same verdict
    assert not choose(by_horizon, labels, budget_points=3.0, criterion="losses")["saving"]
    with pytest.raises(PolicyError, match="expected one of"):
        choose(by_horizon, labels, 1.0, rules=["fixed", "sometimes"])


def test_calibrate_exit_cli_stores_the_policy_as_the_default(model_path, tmp_path):
    out = tmp_path / "exit.onnx"
    p = _cli(
        "calibrate-exit",
        model_path,
        "--data",
        "digits:static",
        "--limit",
        "60",
        "--budget",
        "1",
        "--out",
        str(out),
        "--json",
    )
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["chosen_on"].startswith("digits:static split val") and r["test"]["n"] == 60
    assert any("trained on the validation recordings" in w for w in r["warnings"])  # the tiny model does not say
    assert r["validation"]["accuracy"] >= r["validation"]["fixed_accuracy"] - 0.01 - 1e-12
    _, proto = read_model(out)
    assert proto.exit_policy == r["policy"]
    # the file's protocol is the input's plus the exit object (built through Protocol, not by hand)
    _, before = read_model(model_path)
    assert dataclasses.replace(proto, exit_policy=None, exit_record=None) == before
    kept = {k: r[k] for k in ("chosen_on", "budget_points", "criterion", "validation", "test")}
    assert proto.exit_record == {"mode": "clock", **kept} and proto.exit_chosen_for == "clock"
    meta = json.loads(dict((q.key, q.value) for q in onnx.load(out).metadata_props)["flexsnn.protocol"])
    assert meta["exit"] == {"policy": r["policy"], **proto.exit_record}
    assert proto.exit_policy != "fixed:6" and r["test"]["mean_steps"] < 6 and r["saving"]
    assert r["horizons"] == [1, 6] and set(r["validation"]["per_rule"]) == {"fixed", *RULES, "cascade"}
    run = json.loads(_cli("run", str(out), "--data", "digits:static", "--limit", "60", "--json").stdout)
    assert run["policy"] == r["policy"] and run["mean_steps"] == pytest.approx(r["test"]["mean_steps"])
    assert onnx.load(model_path).metadata_props[0].value.find('"exit"') == -1  # input untouched
    same = _cli("calibrate-exit", model_path, "--data", "digits:static", "--out", model_path)
    assert same.returncode == 2 and "writing it would destroy the input" in same.stderr
    bad = _cli("calibrate-exit", model_path, "--data", "digits:static", "--rules", "fixed", "often", "--out", str(out))
    assert bad.returncode == 2 and "error: exit rule(s) ['often'] unknown" in bad.stderr


def test_calibrate_exit_keeps_protocol_keys_it_does_not_know(model_path, tmp_path):
    """Written anew through the protocol object, the file lost what this version does not
    know (a newer writer's or another tool's keys, at the top and inside `input`)."""
    from runtime.integrity import stamp_onnx

    m = onnx.load(model_path)
    props = {q.key: q.value for q in m.metadata_props}
    meta = json.loads(props["flexsnn.protocol"])
    meta["provenance"] = {"author": "me"}
    meta["input"]["sensor_note"] = "DVS128"
    meta["neurons"][0]["hw_note"] = "core 3"  # inside list entries too
    meta["states"][0]["dtype"] = "float32"
    meta["exit"] = {"policy": "fixed:6", "stale": "from an earlier calibration"}
    onnx.helper.set_model_props(m, {**props, "flexsnn.protocol": json.dumps(meta)})
    extra = tmp_path / "extra.onnx"
    onnx.save(stamp_onnx(m), extra)
    out = tmp_path / "exit.onnx"
    p = _cli("calibrate-exit", str(extra), "--data", "digits:static", "--limit", "60", "--out", str(out))
    assert p.returncode == 0, p.stderr
    got = json.loads(dict((q.key, q.value) for q in onnx.load(out).metadata_props)["flexsnn.protocol"])
    assert got["provenance"] == {"author": "me"} and got["input"]["sensor_note"] == "DVS128"
    assert got["neurons"][0]["hw_note"] == "core 3" and got["states"][0]["dtype"] == "float32"
    assert "stale" not in got["exit"]  # one calibration's record, replaced whole


def test_a_bad_stored_policy_is_refused(tmp_path):
    m = tiny_model()
    meta = json.loads(m.metadata_props[0].value)
    meta["exit"] = {"policy": "sometimes"}
    onnx.helper.set_model_props(m, {"flexsnn.protocol": json.dumps(meta)})
    with pytest.raises(ModelError, match="'exit' must be an object with a valid 'policy'"):
        read_model(save(m, tmp_path / "bad.onnx"))


def test_runs_outside_the_trained_T_range_warn(model_path):
    p = _cli("run", model_path, "--data", "digits:static", "--limit", "10", "--policy", "fixed:20", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["warnings"] == ["this run uses T=20, outside the trained range T in [1, 6]"]
    assert "warning: this run uses T=20" in p.stderr
    p = _cli(
        "run", model_path, "--data", "digits:static", "--limit", "10", "--policy", "confidence:0.9,tmax=10", "--json"
    )
    assert "T in [1, 10], outside the trained range" in json.loads(p.stdout)["warnings"][0]
    p = _cli("run", model_path, "--data", "digits:static", "--limit", "10", "--json")
    assert json.loads(p.stdout)["warnings"] == [] and p.stderr == ""
    # a threshold sweep up to a tmax beyond the trained range warns too (it did not)
    sweep = ["tradeoff", model_path, "--data", "digits:static", "--limit", "10", "--thresholds", "0.9", "--json"]
    p = _cli(*sweep, "--tmax", "10")
    assert json.loads(p.stdout)["warnings"] == ["this run uses T in [1, 10], outside the trained range T in [1, 6]"]
    p = _cli(*sweep)
    assert json.loads(p.stdout)["warnings"] == [] and p.stderr == ""


def test_choose_picks_a_cascade_when_a_small_T_run_sees_enough():
    """Every run's last readout is what counts: at T = 1..3 it is confidently right on 80%
    of the samples and mildly wrong on the rest, at T = 4 confidently right; the steps before
    a run's last are uninformative, so no per-step rule can stop before step 4. The cascade
    1 -> 4 costs 1 + 0.2 * 4 = 1.8 steps and changes no prediction of fixed:4."""
    N, C = 50, 4
    labels, by_horizon = _blank(range(1, 5), N, C)
    hard = np.arange(N) % 5 == 0
    for H, r in by_horizon.items():
        r[-1, np.arange(N), labels] = 3.0
        if H < 4:
            r[-1, hard] = 0.0
            r[-1, np.flatnonzero(hard), (labels[hard] + 1) % C] = 0.5
    c = choose(by_horizon, labels, budget_points=0.0)
    best = c["best"]
    assert best["policy"].startswith("cascade:") and best["policy"].endswith(",T=1+4")
    assert best["mean_steps"] == pytest.approx(1.8) and best["disagreement"] == 0.0
    assert min(c["per_rule"][r]["mean_steps"] for r in RULES) == 4.0
    pred, steps = replay_cascade(by_horizon, best["score"], best["threshold"], 1, 4)
    assert steps.mean() == pytest.approx(1.8) and (pred == labels).all()
    assert parse_policy(best["policy"]) == parse_policy(f"cascade:{best['score']}:{best['threshold']},T=1+4")
    assert "cascade" not in choose(by_horizon, labels, 0.0, rules=["fixed", *RULES])["best"]["policy"]
