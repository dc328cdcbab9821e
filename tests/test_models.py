"""Model registry, stage split, and the step form matching the sequence form."""

from __future__ import annotations

import pytest
import torch

from tests.export_helpers import run_steps
from trainer.config import Config, ConfigError
from trainer.models import build_model


def tiny(name: str, shape=(2, 12, 12), **model) -> Config:
    cfg = Config()
    cfg.model.name, cfg.model.in_shape, cfg.model.width = name, shape, 4
    for k, v in model.items():
        setattr(cfg.model, k, v)
    return cfg.validate()


FAMILIES = [
    tiny("2C1FC"),
    tiny("3C2FC", bn=False, bias=False),
    tiny("2C1FC", readout="li", stages=3),
    tiny("resnet10", (1, 8, 8), stages=3),
    tiny("resnet19", (1, 8, 8), stages=4),
]


@pytest.mark.parametrize("cfg", FAMILIES, ids=lambda c: f"{c.model.name}-{c.model.readout}-s{c.model.stages}")
def test_step_by_step_equals_sequence(cfg):
    """The one-step form (what export traces) computes exactly what training computes."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.rand(5, 3, *cfg.model.in_shape) * 2
    with torch.no_grad():
        seq = model(x)
        steps = run_steps(model, x)
    assert len(model.stages) == cfg.model.stages and model.n_states > 0
    torch.testing.assert_close(steps, seq, rtol=1e-5, atol=1e-5)


def test_stage_Ts_change_the_sequence_length_between_stages():
    model = build_model(tiny("3C1FC", stages=3))
    x = torch.rand(4, 2, 2, 12, 12)
    assert model(x, [4, 7, 2]).shape == (2, 2, 10)
    with pytest.raises(ValueError, match="one T per stage"):
        model(x, [4, 4])


@pytest.mark.parametrize("name", ["foo", "0C1FC", "2C0FC", "resnet50", "2c1fc"])
def test_unknown_model_lists_valid_names(name):
    with pytest.raises(ConfigError, match="resnet18"):
        build_model(tiny(name))


def test_more_stages_than_blocks_is_an_error():
    with pytest.raises(ConfigError, match="stages"):
        build_model(tiny("2C1FC", stages=4))


def test_width_and_bias_options_apply():
    cfg = tiny("2C1FC", bn=False, bias=False)
    cfg.model.width = 0
    cfg.model.name = "2C1FCW7"
    model = build_model(cfg)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [7, 7]
    assert all(m.bias is None for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_a_neuron_dt_other_than_the_datas_step_is_refused_and_with_step_dt_sets_it():
    """The neuron's dt (its time constants' unit, the event engine's leak) and the event
    data's step (recording / trained T) are written into one file: a config where they
    differ exported a file that the clock runtime and the event engine read as two models."""
    cfg = Config()
    cfg.data.duration_us = 300_000.0  # the recording in the trained T = 6 bins: 50 ms each
    with pytest.raises(ConfigError, match=r"neuron's dt is 1 µs but one step of this event data is 50000 µs"):
        cfg.validate()
    shared = cfg.neuron
    assert cfg.with_step_dt().validate().neuron.spec.dt == 50_000.0
    assert shared.spec.dt == 1.0  # a new NeuronConfig: configs built from one base do not change each other
    cfg.data.kind = "static"  # no time base: one step
    assert cfg.with_step_dt().validate().neuron.spec.dt == 1.0
