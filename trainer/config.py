"""The run configuration: one dataclass per contract section, saved in the checkpoint.

``Config.to_dict()`` is the ``config`` entry of DESIGN.md §3 (plain Python types only);
``Config.from_dict`` rebuilds it and validates every field, so a checkpoint's config alone
rebuilds the model through the model registry.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from runtime.data.digits import CLASSES as DIGITS_CLASSES
from runtime.data.digits import SENSOR as DIGITS_SENSOR
from runtime.neuron import NeuronKind, NeuronSpec, SpecError, kind_of, kinds
from runtime.neuron.base import same_step

from .surrogate import DEFAULT_SURROGATE, SURROGATES

CALIB_BATCHES = 10  # BatchNorm re-estimation batches, after training and per configuration
ANCHORS = ("tmin", "none")
OPTIMIZERS = ("adam", "sgd", "lamb")
TARGETS = ("onehot", "vth")
K_SCALES = ("T", "K")
NDOT_RATIOS = ("paper", "clamped")
FIRST_STAGES = ("rebin", "first")
# sdt/nmt/mtt loss: cross-entropy of the readout of all T steps, or its mean over every
# prefix 1..t (the readouts early exit decides on; a per-step loss in the spirit of TET, Deng
# et al. 2022, whose terms are each step's own output, not the readout of steps 1..t)
LOSSES = ("readout", "prefix")
STAGE_METHODS = ("sdt", "nmt", "mtt")  # stage-T forward/backward over the whole sequence
ONLINE_METHODS = ("sltt", "sltt-k", "ottt-a", "ottt-o", "ndot-a", "ndot-o")  # step by step (trainer.online)
METHODS = STAGE_METHODS + ONLINE_METHODS
MTT_ORDERS = ("any", "nonincreasing")  # mtt stage configurations: free, or T_1 >= T_2 >= ... (MTT A.12)
FIXED_T_METHODS = ("sdt",) + ONLINE_METHODS  # methods that train at the one T of MethodConfig.T
DEFAULT_NEURON = "multi-if"  # fit's --neuron of every model family but trev (trainer.trev.DEFAULT_NEURON)
# fit's --bias default: event-driven runtimes and Speck refuse biases (ModelConfig's True is
# what a checkpoint without the field was trained with)
DEFAULT_BIAS = False
MIXED_T_METHODS = ("nmt", "mtt")  # a T drawn per batch from [tmin, tmax] (MTT; NMT: every stage alike)
TREV_PREFIX = "trev-"  # the T-RevSNN family's model names (trainer.trev)


def is_trev(model_name: str) -> bool:
    """Whether ``model_name`` names a T-RevSNN (one sub-network per step; trained by sdt)."""
    return model_name.startswith(TREV_PREFIX)


READOUTS = ("mean", "li", "spikes")  # spikes: the classifier ends in the model's spiking neuron (as on Speck)
PROTOCOL_READOUT = {
    "mean": "mean",
    "li": "last",
    "spikes": "mean",
}  # ModelConfig.readout -> the protocol's readout rule
BN_STATS = ("sequence", "step")
# conv normalisation by name (CLI --norm) -> ModelConfig (bn, bn_stats, weight_std)
NORMS = {
    "bn": (True, "sequence", False),
    "bn-step": (True, "step", False),
    "sws": (False, "sequence", True),
    "none": (False, "sequence", False),
}


BN_NORMS = tuple(name for name, (bn, _, _) in NORMS.items() if bn)


class ConfigError(ValueError):
    """A configuration value that is not valid; the message names it and the valid choices."""


@dataclass
class ModelConfig:
    name: str = "2C1FC"
    stages: int = 2  # number of MTT stages the network is split into
    width: int = 0  # 0: the family's default width
    bias: bool = True
    bn: bool = True
    readout: str = "mean"  # "mean": mean of the classifier output over steps; "li": LI neuron, last step
    num_classes: int = 10
    in_shape: tuple[int, ...] = (2, 34, 34)  # (C, H, W), or (features,) for sequences
    bn_stats: str = "sequence"  # BatchNorm statistics over all T·B frames (tdBN) or per time step ("step")
    weight_std: bool = False  # scaled weight standardisation on the convs (replaces BatchNorm)
    # T-RevSNN options (trainer.trev.TRevOptions, stored as plain types); empty in configs
    # written before issue 18: the rules of then (the CLI stores the current defaults)
    trev: dict[str, Any] = field(default_factory=dict)

    @property
    def norm(self) -> str:
        """The ``--norm`` name of this model's normalisation (the inverse of :data:`NORMS`)."""
        key = (self.bn, self.bn_stats if self.bn else "sequence", self.weight_std)
        return next(name for name, v in NORMS.items() if v == key)

    def image_shape(self) -> tuple[int, int, int]:
        """``in_shape`` as (C, H, W), for the conv families; sequences (one feature axis) are
        a clear error naming the family that takes them."""
        if len(self.in_shape) != 3:
            raise ConfigError(
                f"model {self.name} takes image-shaped input (channels, height, width); this data gives "
                f"shape {tuple(self.in_shape)}: use an fc model for it (e.g. --model fc-seq)"
            )
        c, h, w = self.in_shape
        return c, h, w


@dataclass
class NeuronConfig:
    """The hidden layers' neuron (one :class:`NeuronSpec`, any registered kind) and the
    surrogate gradient that trains it."""

    spec: NeuronSpec = field(default_factory=NeuronSpec)
    surrogate: str = DEFAULT_SURROGATE

    def readout_spec(self) -> NeuronSpec:
        """The LI readout ("membrane voting") that goes with it: same decay and step."""
        s = self.spec
        return NeuronSpec("LI", s.decay, s.v_th, s.reset, s.spike, s.v_min, s.dt)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "surrogate": self.surrogate}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronConfig:
        if set(d) != {"spec", "surrogate"}:
            raise ConfigError(f"config section 'neuron' must have the keys ['spec', 'surrogate'], got {sorted(d)}")
        try:
            return cls(NeuronSpec.from_dict(d["spec"]), d["surrogate"])
        except SpecError as e:
            raise ConfigError(f"neuron: {e}") from None


@dataclass
class DataConfig:
    spec: str = "digits"
    kind: str = "events"  # "static" (repeat-encoded images), "events" or "sequence" (recorded sequences)
    shape: tuple[int, ...] = DIGITS_SENSOR  # the default data set's (spec "digits")
    classes: list[str] = field(default_factory=lambda: list(DIGITS_CLASSES))
    binning: str = "equal"
    duration_us: float = 0.0
    durations: str = "dataset"  # equal binning over the data set's duration, or each recording's
    transforms: list[dict] = field(default_factory=list)  # runtime.data.transforms, in stored form
    # the recordings' (C, H, W) before the transforms, which act on its pixels; None in
    # checkpoints written before it was kept (then it is `shape` where no transform ran)
    sensor: tuple[int, ...] | None = None
    train_split: str = "train"  # "train-minus-val": the validation split was held out


@dataclass
class MethodConfig:
    name: str = "mtt"
    T: int = 6  # sdt: training T; mtt/nmt: evaluation T in logs
    tmin: int = 1
    tmax: int = 6
    samples: int = 2  # nmt/mtt: T configurations each batch trains at (MTT's s; --configs-per-batch)
    epochs: int = 10  # the CLI's defaults (`trainer fit -h`), read from here
    batch_size: int = 64
    lr: float = 3e-3  # every model family but trev (trainer.trev.DEFAULT_LR)
    weight_decay: float = 0.0
    seed: int = 0
    calib_batches: int = CALIB_BATCHES  # BN calibration at T = tmax; 0: off
    K: int = 0  # sltt-k: time steps with a backward per batch, in [1, T]; 0 for other methods
    mse_weight: float = 0.05  # online methods: per-step loss (1 - w) CE + w MSE(o_t, target)
    order: str = "any"  # mtt: stage configurations in any order, or non-increasing (MTT_ORDERS)
    # nmt/mtt: "tmin": the first of the s configurations of every iteration is uniform Tmin
    # (trainer.methods); "none" in checkpoints written before it existed
    anchor: str = "none"
    # paper-exact choices (docs/online_training.md, "Paper details"); defaults as in older
    # checkpoints, which lack these keys. The CLI's defaults follow trainer.online.ONLINE.
    target: str = "onehot"  # online MSE target: "onehot" (SLTT S14, OTTT) or "vth" (V_th-scaled, SLTT S13)
    k_scale: str = "K"  # sltt-k: divide the summed loss by "T" (SLTT Alg. 1) or by "K"
    ndot_ratio: str = "clamped"  # ndot: "paper" (e_1 = u_1, clamp only at u_{t-1} = 0) or "clamped"
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9, as the SLTT/OTTT/NDOT papers)
    first_stage: str = "rebin"  # nmt/mtt events at T: "rebin" into T frames, or the "first" T of Tmax (A.2)
    loss: str = "readout"  # sdt/nmt/mtt: LOSSES ("readout" in checkpoints written before it existed)
    # the T whose BatchNorm statistics the weights hold: fit's calibration (train_T) or
    # `trainer calibrate --T`; one set fits one T, so eval and the exported file say so at
    # another. None: not calibrated (no BatchNorm, --calib-batches 0, or before calibration)
    bn_T: int | None = None


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)

    def validate(self) -> Config:
        m, n = self.method, self.neuron
        if m.name not in METHODS:
            raise ConfigError(
                f"method {m.name!r} is unknown; expected one of {list(STAGE_METHODS)} "
                f"or an online method {list(ONLINE_METHODS)}"
            )
        for k in ("T", "tmin", "tmax", "samples", "epochs", "batch_size"):
            if getattr(m, k) <= 0:
                flag = "--configs-per-batch" if k == "samples" else f"--{k.replace('_', '-')}"  # fit's name of it
                raise ConfigError(f"{flag} (MethodConfig.{k}) must be a positive integer, got {getattr(m, k)}")
        if m.bn_T is not None and not (type(m.bn_T) is int and m.bn_T > 0):  # not a bool
            raise ConfigError(f"MethodConfig.bn_T must be a positive integer or None, got {m.bn_T!r}")
        if m.order not in MTT_ORDERS:
            raise ConfigError(f"--mtt-order {m.order!r} is unknown; expected one of {list(MTT_ORDERS)}")
        if m.order != "any" and m.name != "mtt":
            raise ConfigError(f"--mtt-order {m.order} applies to method mtt only, not to {m.name!r}")
        if m.anchor not in ANCHORS:
            raise ConfigError(f"--anchor {m.anchor!r} is unknown; expected one of {list(ANCHORS)}")
        if m.anchor != "none" and (m.name not in MIXED_T_METHODS or m.samples < 2):
            raise ConfigError(
                f"--anchor {m.anchor} replaces one of several nmt/mtt configurations: it needs method nmt or "
                f"mtt with --configs-per-batch >= 2, got {m.name!r} with --configs-per-batch {m.samples}"
            )
        if m.tmin > m.tmax:
            raise ConfigError(f"--tmin ({m.tmin}) must not exceed --tmax ({m.tmax})")
        if not m.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {m.lr}")
        self._validate_online()
        dt_us = self.dt_us
        if dt_us and not same_step(self.neuron.spec.dt, dt_us):
            # an exported file stores both: the clock runtime bins by one, the event engine
            # leaks by the other (runtime.protocol refuses a file where they differ); dt_us 0:
            # event data of unknown duration, no time base
            raise ConfigError(
                f"the neuron's dt is {self.neuron.spec.dt:g} µs but one step of this event data is {dt_us:g} µs "
                f"(the recording's {self.data.duration_us:g} µs in T={self.train_T} bins); they must be one value "
                "(Config.with_step_dt sets it)"
            )
        classes = self.data.classes
        if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
            # a damaged checkpoint's null was a TypeError traceback in eval and export
            raise ConfigError(f"data classes {classes!r}; expected a list of 2 or more class names")
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
        if not isinstance(n.spec, NeuronSpec):
            raise ConfigError(f"neuron spec must be a NeuronSpec, got {type(n.spec).__name__}")
        return self

    def _validate_online(self) -> None:
        m = self.method
        if m.name == "sltt-k":
            if not 1 <= m.K <= m.T:
                raise ConfigError(f"sltt-k needs --K (time steps with a backward per batch) in [1, T={m.T}], got {m.K}")
        elif m.K != 0:
            raise ConfigError(f"--K applies to sltt-k, not to method {m.name!r}")
        for key, valid in (
            ("target", TARGETS),
            ("k_scale", K_SCALES),
            ("ndot_ratio", NDOT_RATIOS),
            ("optimizer", OPTIMIZERS),
        ):
            if getattr(m, key) not in valid:
                raise ConfigError(
                    f"--{key.replace('_', '-')} {getattr(m, key)!r} is unknown; expected one of {list(valid)}"
                )
        if m.loss not in LOSSES:
            raise ConfigError(f"--loss {m.loss!r} is unknown; expected one of {list(LOSSES)}")
        if m.loss != "readout" and (m.name not in STAGE_METHODS or is_trev(self.model.name)):
            raise ConfigError(
                f"--loss {m.loss} applies to sdt, nmt and mtt on non-trev models (online methods have a "
                f"per-step loss of their own, trev models --trev loss=...), not to {m.name!r} on {self.model.name!r}"
            )
        if m.first_stage not in FIRST_STAGES:
            raise ConfigError(f"--first-stage {m.first_stage!r} is unknown; expected one of {list(FIRST_STAGES)}")
        if not 0.0 <= m.mse_weight <= 1.0:
            raise ConfigError(f"--mse-weight must be in [0, 1], got {m.mse_weight}")
        if m.name in ONLINE_METHODS and kind_of(self.neuron.spec.kind).trace_decay(self.neuron.spec) is None:
            able = [k for k in kinds() if type(kind_of(k)).trace_decay is not NeuronKind.trace_decay]
            raise ConfigError(
                f"method {m.name!r} keeps eligibility traces of a single membrane u = decay * u_prev + I; "
                f"{self.neuron.spec.kind} neurons are not one (states {list(kind_of(self.neuron.spec.kind).states)}); "
                f"expected one of {able}, or use sdt, nmt or mtt"
            )
        d = self.data
        if m.first_stage == "first" and d.kind == "events" and d.durations == "dataset" and d.binning != "fixed":
            # what the model is run on: A.2's first T of Tmax bins are fixed bins of the trained width
            raise ConfigError(
                f"--first-stage first trains on the first T of Tmax bins, fixed bins of the trained width: the "
                f"data's binning (DataConfig.binning) must be 'fixed' (fit_config sets it), got {d.binning!r}"
            )
        if m.name in ONLINE_METHODS and self.model.bn and self.model.bn_stats == "sequence":
            raise ConfigError(
                f"method {m.name!r} trains one time step at a time and cannot use BatchNorm "
                "over all T steps (--norm bn); use --norm bn-step, sws or none"
            )

    def check_trainable(self) -> None:
        """Rules of how this config trains, beyond what a stored model needs to run
        (:meth:`validate`, which every checkpoint reader applies): a trained model of
        either is an ordinary model, readable and exportable."""
        m, spec, d = self.method, self.neuron.spec, self.data
        if m.name.startswith("ndot") and (spec.reset != "subtract" or spec.v_min != -math.inf):
            # NDOT's e_t = (u_t - v_th s_t) / (u_{t-1} - v_th s_{t-1}) is read off the state, which
            # is that quantity only after a subtract reset with no floor: a zero reset left u = 0
            # at a spike (e_1 = 0, not 0.4), a floor lifts it
            raise ConfigError(
                f"method {m.name!r} reads its ratio u_t - v_th s_t off the membrane state, which is that only with "
                f"--reset subtract and no --v-min; got reset {spec.reset!r}, v_min {spec.v_min:g}"
            )
        if m.first_stage == "first" and d.kind == "events" and d.durations == "recording":
            raise ConfigError(
                f"--first-stage first takes the first T of each recording's Tmax bins; {d.spec!r} bins each "
                "recording over its own span, which no runtime binning reproduces at T < Tmax (fixed bins have one "
                "width): use --first-stage rebin"
            )

    @property
    def train_T(self) -> int:
        """The T the model was trained for (sdt and online methods: T; nmt/mtt: the largest T)."""
        return self.method.T if self.method.name in FIXED_T_METHODS else self.method.tmax

    @property
    def dt_us(self) -> float | None:
        """The trained bin width of event data (µs): the recording in ``train_T`` bins; what
        fixed binning steps by at any T (the protocol's ``dt_us``); None for other data."""
        return float(self.data.duration_us / self.train_T) if self.data.kind == "events" else None

    def with_step_dt(self) -> Config:
        """This config with its neuron's ``dt`` one step: :attr:`dt_us` for event data (the
        per-step decay is then the event-driven time constant in µs), else 1 (no time base).
        Set after the method (its ``train_T``) and the data are; :meth:`validate` holds a
        config to it (event data of unknown duration, ``duration_us`` 0, gets 1)."""
        # a new NeuronConfig: configs built from one base share its object
        self.neuron = dataclasses.replace(self.neuron, spec=dataclasses.replace(self.neuron.spec, dt=self.dt_us or 1.0))
        return self

    @property
    def T_range(self) -> tuple[int, int]:
        """The steps (per stage) the model was trained over: [T, T] for the one-T methods."""
        if self.method.name in FIXED_T_METHODS:
            return self.train_T, self.train_T
        return self.method.tmin, self.method.tmax

    def t_range_warning(self, path: str, Ts: list[int]) -> str | None:
        """A note when some T lies outside :attr:`T_range` (None: all inside)."""
        lo, hi = self.T_range
        outside = sorted({T for T in Ts if not lo <= T <= hi})
        if not outside:
            return None
        which = f"T={outside[0]} lies" if len(outside) == 1 else f"T={outside} lie"
        return f"{path} was trained for T in [{lo}, {hi}]; {which} outside that range"

    def bn_T_warning(self, path: str, Ts: list[int]) -> str | None:
        """A note when some T is not the one the BatchNorm statistics were calibrated at
        (None: all are, or none was calibrated)."""
        T = self.method.bn_T
        other = sorted({t for t in Ts if t != T}) if T is not None else []
        if not other:
            return None
        which = f"T={other[0]} runs" if len(other) == 1 else f"T={other} run"
        return (
            f"{path}'s BatchNorm statistics were calibrated at T={T} (one set fits one T); {which} with them: "
            "recalibrate at the T you deploy (trainer calibrate --T N)"
        )

    def to_dict(self) -> dict[str, Any]:
        d = {
            f.name: self.neuron.to_dict() if f.name == "neuron" else asdict(getattr(self, f.name)) for f in fields(self)
        }
        d["model"]["in_shape"] = list(d["model"]["in_shape"])
        for key in ("shape", "sensor"):
            if d["data"][key] is not None:
                d["data"][key] = list(d["data"][key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        parts: dict[str, Any] = {}  # section name -> its config (keyword arguments of Config)
        for f in fields(cls):
            sub = d.get(f.name)
            if f.name == "neuron" and isinstance(sub, dict):
                parts["neuron"] = NeuronConfig.from_dict(sub)
                continue
            sub_cls = {"model": ModelConfig, "neuron": NeuronConfig, "data": DataConfig, "method": MethodConfig}[f.name]
            if not isinstance(sub, dict):
                raise ConfigError(f"config section {f.name!r} is missing")
            known = {g.name for g in fields(sub_cls)}
            unknown = set(sub) - known
            if unknown:
                raise ConfigError(f"config section {f.name!r} has unknown keys {sorted(unknown)}")
            sub = dict(sub)
            for key in ("in_shape", "shape", "sensor"):
                if sub.get(key) is not None:
                    sub[key] = tuple(sub[key])
            parts[f.name] = sub_cls(**sub)
        return cls(**parts).validate()
