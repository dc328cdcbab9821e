"""The run configuration: one dataclass per contract section, saved in the checkpoint.

``Config.to_dict()`` is the ``config`` entry of DESIGN.md §3 (plain Python types only);
``Config.from_dict`` rebuilds it and validates every field, so a checkpoint's config alone
rebuilds the model through the model registry.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from runtime.neuron import NeuronSpec

from .surrogate import SURROGATES

STAGE_METHODS = ("sdt", "nmt", "mtt")                 # stage-T forward/backward over the whole sequence
ONLINE_METHODS = ("sltt", "sltt-k", "ottt-a", "ottt-o", "ndot-a", "ndot-o")  # step by step (trainer.online)
METHODS = STAGE_METHODS + ONLINE_METHODS
FIXED_T_METHODS = ("sdt",) + ONLINE_METHODS          # methods that train at the one T of MethodConfig.T
READOUTS = ("mean", "li", "spikes")  # spikes: the classifier ends in the model's spiking neuron (as on Speck)
BN_STATS = ("sequence", "step")
# conv normalisation by name (CLI --norm) -> ModelConfig (bn, bn_stats, weight_std)
NORMS = {"bn": (True, "sequence", False), "bn-step": (True, "step", False), "sws": (False, "sequence", True),
         "none": (False, "sequence", False)}


class ConfigError(ValueError):
    """A configuration value that is not valid; the message names it and the valid choices."""


@dataclass
class ModelConfig:
    name: str = "2C1FC"
    stages: int = 2          # number of MTT stages the network is split into
    width: int = 0           # 0: the family's default width
    bias: bool = True
    bn: bool = True
    readout: str = "mean"    # "mean": mean of the classifier output over steps; "li": LI neuron, last step
    num_classes: int = 10
    in_shape: tuple[int, int, int] = (2, 34, 34)
    bn_stats: str = "sequence"  # BatchNorm statistics over all T·B frames (tdBN) or per time step ("step")
    weight_std: bool = False   # scaled weight standardisation on the convs (replaces BatchNorm)


@dataclass
class NeuronConfig:
    kind: str = "LIF"
    decay: float = 0.5
    v_th: float = 1.0
    reset: str = "subtract"
    spike: str = "single"
    v_min: float = -math.inf
    dt: float = 1.0
    surrogate: str = "triangle"

    def spec(self, kind: str | None = None) -> NeuronSpec:
        kind = kind or self.kind
        decay = 1.0 if kind == "IF" else self.decay
        return NeuronSpec(kind, decay, self.v_th, self.reset, self.spike, self.v_min, self.dt)


@dataclass
class DataConfig:
    spec: str = "digits"
    kind: str = "events"              # "static" (repeat-encoded images) or "events"
    shape: tuple[int, int, int] = (2, 20, 20)
    classes: list[str] = field(default_factory=lambda: [str(i) for i in range(10)])
    binning: str = "equal"
    duration_us: float = 0.0
    train_split: str = "train"        # "train-minus-val": the validation split was held out


@dataclass
class MethodConfig:
    name: str = "mtt"
    T: int = 6                # sdt: training T; mtt/nmt: evaluation T in logs
    tmin: int = 1
    tmax: int = 6
    samples: int = 2          # nmt/mtt: sampled configurations per iteration
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    calib_batches: int = 10   # BN calibration at T = tmax; 0: off
    K: int = 0                # sltt-k: time steps with a backward per batch, in [1, T]; 0 for other methods
    mse_weight: float = 0.05  # online methods: per-step loss (1 - w) CE + w MSE(o_t, one-hot)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)

    def validate(self) -> Config:
        m, n = self.method, self.neuron
        if m.name not in METHODS:
            raise ConfigError(f"method {m.name!r} is unknown; expected one of {list(STAGE_METHODS)} "
                              f"or an online method {list(ONLINE_METHODS)}")
        for k in ("T", "tmin", "tmax", "samples", "epochs", "batch_size"):
            if getattr(m, k) <= 0:
                raise ConfigError(f"--{k.replace('_', '-')} must be a positive integer, got {getattr(m, k)}")
        if m.tmin > m.tmax:
            raise ConfigError(f"--tmin ({m.tmin}) must not exceed --tmax ({m.tmax})")
        if not m.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {m.lr}")
        self._validate_online()
        if self.model.bn_stats not in BN_STATS:
            raise ConfigError(f"bn_stats {self.model.bn_stats!r} is unknown; expected one of {list(BN_STATS)}")
        if self.model.bn and self.model.weight_std:
            raise ConfigError("weight standardisation replaces BatchNorm: use one of them (--norm sws or bn)")
        if self.model.stages <= 0:
            raise ConfigError(f"--stages must be a positive integer, got {self.model.stages}")
        if self.model.readout not in READOUTS:
            raise ConfigError(f"readout {self.model.readout!r} is unknown; expected one of {list(READOUTS)}")
        if n.surrogate not in SURROGATES:
            raise ConfigError(f"surrogate {n.surrogate!r} is unknown; expected one of {sorted(SURROGATES)}")
        try:
            n.spec()
        except ValueError as e:
            raise ConfigError(f"neuron: {e}") from None
        return self

    def _validate_online(self) -> None:
        m = self.method
        if m.name == "sltt-k":
            if not 1 <= m.K <= m.T:
                raise ConfigError(f"sltt-k needs --K in [1, T={m.T}], got {m.K}")
        elif m.K != 0:
            raise ConfigError(f"--K applies to sltt-k only, not to method {m.name!r}")
        if not 0.0 <= m.mse_weight <= 1.0:
            raise ConfigError(f"--mse-weight must be in [0, 1], got {m.mse_weight}")
        if m.name in ONLINE_METHODS and self.model.bn and self.model.bn_stats == "sequence":
            raise ConfigError(f"method {m.name!r} trains one time step at a time and cannot use BatchNorm "
                              "over all T steps (--norm bn); use --norm bn-step, sws or none")

    @property
    def train_T(self) -> int:
        """The T the model was trained for (sdt and online methods: T; nmt/mtt: the largest T)."""
        return self.method.T if self.method.name in FIXED_T_METHODS else self.method.tmax

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["neuron"]["v_min"] = "-inf" if self.neuron.v_min == -math.inf else self.neuron.v_min
        for sec in ("model", "data"):
            key = "in_shape" if sec == "model" else "shape"
            d[sec][key] = list(d[sec][key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        parts = {}
        for f in fields(cls):
            sub = d.get(f.name)
            sub_cls = {"model": ModelConfig, "neuron": NeuronConfig, "data": DataConfig,
                       "method": MethodConfig}[f.name]
            if not isinstance(sub, dict):
                raise ConfigError(f"config section {f.name!r} is missing")
            known = {g.name for g in fields(sub_cls)}
            unknown = set(sub) - known
            if unknown:
                raise ConfigError(f"config section {f.name!r} has unknown keys {sorted(unknown)}")
            sub = dict(sub)
            if f.name == "neuron" and "v_min" in sub:
                sub["v_min"] = float(sub["v_min"])
            for key in ("in_shape", "shape"):
                if key in sub:
                    sub[key] = tuple(sub[key])
            parts[f.name] = sub_cls(**sub)
        return cls(**parts).validate()
