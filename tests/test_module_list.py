"""``trainer.module_list.ModuleListOf`` is a type checker's view only: at run time it is
``nn.ModuleList`` itself, so module trees, reprs and state dicts are as before."""

from __future__ import annotations

from torch import nn

from trainer.config import Config
from trainer.models import build_model
from trainer.module_list import ModuleListOf


def test_module_list_of_is_module_list_at_run_time():
    assert ModuleListOf is nn.ModuleList
    net = build_model(Config())
    assert type(net.stages) is nn.ModuleList
    assert all(type(stage.layers) is nn.ModuleList for stage in net.stages)
    assert "ModuleList(" in repr(net) and "ModuleListOf" not in repr(net)
