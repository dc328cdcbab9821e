"""MTT's temporal transformation module against the paper's rule, written literally."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.temporal import group_bounds, transform


def paper_bounds(l: int, k: int, eps: float = 1e-6) -> list[int]:
    """b_i = round((i - 1) * l / k - eps) + 1, i = 1 .. k + 1 (1-based)."""
    return [round((i - 1) * l / k - eps) + 1 for i in range(1, k + 2)]


@pytest.mark.parametrize("l", range(1, 13))
@pytest.mark.parametrize("k", range(1, 13))
def test_bounds_follow_the_paper(l, k):
    n, m = max(l, k), min(l, k)
    assert [b + 1 for b in group_bounds(n, m)] == paper_bounds(n, m)


def test_downsampling_sums_groups_and_keeps_total():
    x = torch.arange(1.0, 11.0).view(10, 1, 1)  # frames 1..10
    y = transform(x, 3)  # groups {1,2,3}, {4..7}, {8,9,10}
    assert y.flatten().tolist() == [6.0, 22.0, 27.0]
    assert y.sum() == x.sum()


def test_upsampling_replicates_each_frame_into_its_group():
    x = torch.tensor([1.0, 2.0, 3.0]).view(3, 1)
    assert transform(x, 7).flatten().tolist() == [1, 1, 2, 2, 2, 3, 3]  # bounds 0, 2, 5, 7
    assert transform(x, 3) is x


def test_transform_keeps_gradient():
    x = torch.ones(5, 2, requires_grad=True)
    transform(x, 2).sum().backward()
    assert torch.equal(x.grad, torch.ones(5, 2))


# ---- the Tmin anchor (trainer.methods) ------------------------------------------------


@pytest.mark.parametrize("method", ["mtt", "nmt"])
def test_tmin_anchor_makes_the_first_configuration_uniform_tmin(method):
    from trainer.config import MethodConfig
    from trainer.methods import sample_configs

    m = MethodConfig(method, T=6, tmin=1, tmax=6, samples=3, anchor="tmin")
    rng = np.random.default_rng(0)
    draws = [sample_configs(m, 2, rng) for _ in range(300)]
    assert all(len(d) == 3 and d[0] == [1, 1] for d in draws)
    rest = [c for d in draws for c in d[1:]]
    assert all(1 <= t <= 6 for c in rest for t in c)
    assert {t for c in rest for t in c} == set(range(1, 7))  # the other draws still cover [tmin, tmax]
    free = MethodConfig(method, T=6, tmin=1, tmax=6, samples=3)  # anchor "none": the paper's rule
    assert sum(d[0] == [1, 1] for d in (sample_configs(free, 2, rng) for _ in range(300))) < 60


def test_tmin_anchor_cost_and_where_it_applies():
    from trainer.config import Config, ConfigError, MethodConfig
    from trainer.methods import expected_cost_ratio

    m = MethodConfig("mtt", T=6, tmin=1, tmax=6, samples=2, anchor="tmin")
    assert expected_cost_ratio(m) == pytest.approx((3.5 + 1) / 6)  # one drawn config, one at Tmin
    for bad in (MethodConfig("sdt", anchor="tmin"), MethodConfig("mtt", samples=1, anchor="tmin")):
        with pytest.raises(ConfigError, match="--anchor tmin"):
            Config(method=bad).validate()


@pytest.mark.parametrize(
    "argv, anchor",
    [
        ([], "tmin"),
        (["--method", "sdt"], "none"),
        (["--configs-per-batch", "1"], "none"),
        (["--anchor", "none"], "none"),
    ],
)
def test_fit_cli_anchors_mtt_by_default(argv, anchor):
    from trainer.cli import config_from_args, parser

    a = parser().parse_args(["fit", *argv])
    assert config_from_args(a, (2, 20, 20), "events", 1.0).method.anchor == anchor
