"""Choosing an exit policy honestly: on the validation split, for a stated accuracy budget.

Candidates: every fixed T in the allowed range; every exit rule (max softmax,
normalised entropy, top-1 minus top-2 margin) at every threshold that changes a decision,
every ``tmin`` and every horizon ``tmax`` up to the reference T; and every two-run cascade
(:class:`runtime.policies.Cascade`: all samples at T0, those that do not pass the rule's
threshold on that run's final readout again at T1 > T0, each T in the same range, the
steps of both runs counted). The model runs once per
horizon H on the validation split while a recording policy keeps every step's readout;
each rule is then replayed on those readouts. This is exact, not an approximation: an
early-exit run with ``tmax=H`` sees the same frames as fixed H (the horizon sets the
binning: with equal bins over the recording, the first steps of a run to H are not those
of a run to Tmax) and the same readouts, and only stops sooner. Among the candidates that
count against fixed ``tmax`` (the reference) on at most ``budget`` percent of the
validation samples (which bounds the accuracy lost there by the same amount), the one with
the fewest mean steps wins (ties: the higher validation accuracy, then the first in the
order fixed, then the rules as given). The test split is then run once with the winner,
and only reported. The event-driven run (:func:`event_step_readouts`) keeps the readout
at the end of each bin as :mod:`.event.exit` asks a policy there: the same replay, on
the readouts an event-driven deployment sees.

What counts against the budget (``criterion``): by default every *disagreement* with the
reference's prediction. Bounding only the accuracy difference lets early mistakes be
offset by early lucky fixes, and that does not carry over to unseen data (measured: on
N-MNIST, 80 validation samples, the accuracy rule kept the validation accuracy at 1.9 mean
steps and lost 12.5 points on the test split). Counting only *losses* (the reference right,
the candidate wrong) credits no lucky fix and still bounds the accuracy lost, but among
thousands of thresholds some lose nothing on 80 samples by chance (measured: N-MNIST seed 0,
budget 0.5, it chose a margin rule at 3.5 validation steps that lost 1.9 points on the test
split), so it is an option for large validation splits, not the default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import Dataset
from .evaluate import EVAL_BATCH_SIZE, ClockMode, run_batches, warn_unseen
from .policies import RULES as RULE_CLASSES
from .policies import Cascade, FixedT, PolicyError, passes
from .session import Session

if TYPE_CHECKING:
    from .event.engine import EventEngine  # numba: loaded by the event-driven runs only

# rule -> (score of a readout, True when a higher score means more certain)
RULES = {name: (cls.score, cls.higher) for name, cls in RULE_CLASSES.items()}
FIXED = "fixed"  # the candidates fixed:H, beside the rules
CASCADE = "cascade"  # two-run cascades T0 -> T1 under each rule
CHOICES = (FIXED, *RULES, CASCADE)
# criterion -> the samples a candidate's predictions count against the budget, as a bool
# array (..., N), given the reference's predictions and the labels
CRITERIA = {
    # the reference was right and the candidate is not: each is a point of accuracy lost,
    # and no early lucky fix offsets it (the exact one-sided bound on the accuracy lost)
    "losses": lambda pred, ref, labels: (pred != labels) & (ref == labels),
    # any other prediction, also where both are wrong (stricter: bounds the changes too)
    "disagreement": lambda pred, ref, labels: pred != ref,
}
_CELLS = 20_000_000  # thresholds x steps x samples replayed at once (bools: 20 MB)


@dataclass
class _Recorder:
    """A never-exiting policy that keeps the readout of every step (all samples stay)."""

    T: int
    logits: list[np.ndarray] = field(default_factory=list)

    def horizon(self, default_T: int) -> int:
        return self.T

    def should_exit(self, t: int, logits: np.ndarray) -> np.ndarray:
        self.logits.append(np.array(logits, np.float64))
        return np.zeros(len(logits), bool)


def step_readouts(
    session: Session, ds: Dataset, T: int, batch_size: int = EVAL_BATCH_SIZE, binning: str | None = None
) -> np.ndarray:
    """The readout after every step 1..T of every sample, run to horizon T: ``[T, N, classes]``
    (fixed bins that miss events: one warning for the split, :func:`.evaluate.warn_unseen`)."""
    parts = []
    mode = ClockMode(session, _Recorder(T), binning, counts=False)
    for start in range(0, len(ds), batch_size):
        mode.policy = rec = _Recorder(T)  # one recorder a batch, one count of missed events for all
        run_batches(mode, ds.subset(np.arange(start, min(start + batch_size, len(ds)))), batch_size)
        parts.append(np.stack(rec.logits))
    warn_unseen(mode, len(ds))
    return np.concatenate(parts, axis=1)


def event_step_readouts(engine: EventEngine, ds: Dataset, T: int, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """:func:`step_readouts` of the event-driven run (:mod:`.event.exit`): the readout at the
    end of each of the T bins of a run to horizon T, on the clock's scale, ``[T, N, classes]``."""
    from .event.evaluate import EventMode

    parts = []
    for start in range(0, len(ds), batch_size):
        rec = _Recorder(T)  # asked at every bin, about every stream of the batch, in order
        run_batches(
            EventMode(engine, policy=rec), ds.subset(np.arange(start, min(start + batch_size, len(ds)))), batch_size
        )
        parts.append(np.stack(rec.logits))
    return np.concatenate(parts, axis=1)


def horizon_readouts(
    runner: Session | EventEngine,
    ds: Dataset,
    horizons: Sequence[int],
    batch_size: int = EVAL_BATCH_SIZE,
    binning: str | None = None,
) -> dict[int, np.ndarray]:
    """:func:`step_readouts` (of an event engine: :func:`event_step_readouts`) for each
    horizon (one run each: the horizon sets the binning)."""
    if isinstance(runner, Session):
        return {H: step_readouts(runner, ds, H, batch_size, binning) for H in horizons}
    return {H: event_step_readouts(runner, ds, H, batch_size) for H in horizons}


def _passing(scores: np.ndarray, higher: bool, thresholds: np.ndarray) -> np.ndarray:
    """Bool ``[K, *scores.shape]``: where each score passes each of the K thresholds (above
    it, or below it when a lower score means more certain)."""
    return passes(scores[None], thresholds.reshape(-1, *(1,) * scores.ndim), higher)


def _stops(scores: np.ndarray, higher: bool, thresholds: np.ndarray, tmin: int) -> np.ndarray:
    """0-based stop step ``[K, N]`` for each threshold: the first step t >= tmin whose score
    passes, else the last step."""
    passed = _passing(scores, higher, thresholds)
    passed[:, : tmin - 1] = False
    passed[:, -1] = True
    return passed.argmax(axis=1)


def replay(readouts: np.ndarray, rule: str, threshold: float, tmin: int) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, steps) of exit rule ``rule`` at ``threshold`` on recorded readouts:
    the first step t >= tmin whose score passes, else the last step."""
    score_fn, higher = RULES[rule]
    scores = np.stack([score_fn(z) for z in readouts])  # [T, N]
    stop = _stops(scores, higher, np.array([threshold]), tmin)[0]
    return readouts[stop, np.arange(readouts.shape[1])].argmax(axis=1), stop + 1


def candidates(readouts: np.ndarray, rule: str) -> np.ndarray:
    """Every threshold that changes a decision: midpoints between sorted distinct scores."""
    score_fn, _ = RULES[rule]
    s = np.unique(np.concatenate([score_fn(z) for z in readouts]))
    mids = (s[:-1] + s[1:]) / 2 if len(s) > 1 else s
    return np.unique(np.clip(np.round(mids, 6), 0.0, 1.0))


def policy_string(c: Mapping[str, Any]) -> str:
    """The chosen candidate ``c`` as the policy text runs parse (the policies' own str)."""
    if c["rule"] == FIXED:
        return str(FixedT(c["tmax"]))
    if c["rule"] == CASCADE:
        return str(Cascade(RULE_CLASSES[c["score"]](c["threshold"]), (c["tmin"], c["tmax"])))
    return str(RULE_CLASSES[c["rule"]](c["threshold"], c["tmin"], c["tmax"]))


def replay_cascade(
    by_horizon: Mapping[int, np.ndarray], rule: str, threshold: float, T0: int, T1: int
) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, steps) of the cascade T0 -> T1 under ``rule`` at ``threshold``, what
    ``cascade:RULE:TH,T=T0+T1`` runs: the final readout of the run to T0 decides; the samples
    it does not stop take T1's prediction after T0 + T1 steps."""
    pred, steps = _cascades(by_horizon, rule, np.array([threshold]), T0, T1)
    return pred[0], steps[0]


def _cascades(
    by_horizon: Mapping[int, np.ndarray], rule: str, thresholds: np.ndarray, T0: int, T1: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`replay_cascade` at each of K ``thresholds``: predictions and steps ``[K, N]``."""
    final = by_horizon[T0][-1]
    stop = _passes(final, rule, thresholds)
    pred = np.where(stop, final.argmax(axis=1), by_horizon[T1][-1].argmax(axis=1))
    return pred, np.where(stop, T0, T0 + T1)


def _passes(final: np.ndarray, rule: str, thresholds: np.ndarray) -> np.ndarray:
    """Bool ``[K, N]``: which samples a readout ``[N, classes]`` stops at each threshold."""
    score_fn, higher = RULES[rule]
    return _passing(score_fn(final), higher, thresholds)


def _cascade_best(
    by_horizon: Mapping[int, np.ndarray],
    labels: np.ndarray,
    ref_pred: np.ndarray,
    tmin: int,
    allowed: float,
    criterion: str,
) -> dict[str, Any] | None:
    """The best two-run cascade (rule, threshold, T0 < T1) within the budget, or None."""
    top: dict[str, Any] | None = None
    Ts = sorted(H for H in by_horizon if H >= tmin)
    for rule in RULES:
        for T0 in Ts:
            ths = candidates(by_horizon[T0][-1][None], rule)
            for T1 in (T for T in Ts if T > T0):
                pred, steps = _cascades(by_horizon, rule, ths, T0, T1)
                f = _figures(pred, ref_pred, labels)
                head = {"rule": CASCADE, "score": rule}
                top = _best_of(top, head, ths, T0, T1, steps.mean(axis=1), f, allowed, criterion)
    return top


def _best_of(
    top: dict[str, Any] | None,
    head: Mapping[str, Any],
    thresholds: np.ndarray,
    tmin: int,
    tmax: int,
    steps: np.ndarray,
    figures: Mapping[str, np.ndarray],
    allowed: float,
    criterion: str,
) -> dict[str, Any] | None:
    """``top``, or the best of K thresholds (``steps`` and ``figures`` per threshold) that
    keep the budget when it is :func:`_better`: fewest mean steps, then the higher accuracy,
    then the first threshold (a stable sort keeps their order)."""
    ok = np.flatnonzero(figures[criterion] <= allowed)
    if not ok.size:
        return top
    k = ok[np.lexsort((-figures["accuracy"][ok], steps[ok]))[0]]
    c = {**head, "threshold": float(thresholds[k]), "tmin": tmin, "tmax": tmax, "mean_steps": float(steps[k])}
    c |= {key: float(v[k]) for key, v in figures.items()}
    return c if _better(c, top) else top


def _better(a: Mapping[str, Any], b: Mapping[str, Any] | None) -> bool:
    """Fewer mean steps; at equal steps the higher validation accuracy; else the first kept."""
    return b is None or (a["mean_steps"], -a["accuracy"]) < (b["mean_steps"], -b["accuracy"])


def _figures(pred: np.ndarray, ref: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Validation accuracy, losses and disagreement of predictions ``(..., N)``."""
    return {
        "accuracy": (pred == labels).mean(axis=-1),
        "losses": CRITERIA["losses"](pred, ref, labels).mean(axis=-1),
        "disagreement": CRITERIA["disagreement"](pred, ref, labels).mean(axis=-1),
    }


def _fixed(H: int, figures: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The candidate fixed:H with its validation figures."""
    c: dict[str, Any] = {"rule": FIXED, "threshold": None, "tmin": H, "tmax": H, "mean_steps": float(H)}
    return c | {k: float(v) for k, v in figures.items()}


def _rule_best(
    readouts: np.ndarray,
    labels: np.ndarray,
    ref_pred: np.ndarray,
    rule: str,
    tmins: range,
    allowed: float,
    criterion: str,
) -> dict[str, Any] | None:
    """The best (threshold, tmin) of ``rule`` at this horizon within the budget, or None."""
    score_fn, higher = RULES[rule]
    scores = np.stack([score_fn(z) for z in readouts])  # [H, N]
    preds = readouts.argmax(axis=2)  # [H, N]
    H, N = scores.shape
    ths = candidates(readouts, rule)
    chunk = max(1, _CELLS // (H * N))
    top: dict[str, Any] | None = None
    for tmin in tmins:
        for start in range(0, len(ths), chunk):
            th = ths[start : start + chunk]
            stop = _stops(scores, higher, th, tmin)  # [K, N]
            f = _figures(preds[stop, np.arange(N)], ref_pred, labels)
            steps = (stop + 1).mean(axis=1)
            top = _best_of(top, {"rule": rule}, th, tmin, H, steps, f, allowed, criterion)
    return top


def choose(
    by_horizon: Mapping[int, np.ndarray],
    labels: np.ndarray,
    budget_points: float,
    tmin: int = 1,
    rules: Sequence[str] = CHOICES,
    criterion: str = "disagreement",
) -> dict:
    """The candidate with the fewest mean validation steps that loses at most
    ``budget_points`` percent of the validation samples against fixed ``max(by_horizon)``
    (the reference), so that its validation accuracy is at most that far below the
    reference's. ``criterion`` says what counts against the budget: ``disagreement`` (any
    other prediction) or ``losses`` (only samples the reference gets right and the
    candidate wrong). ``by_horizon[H]``: the readouts ``[H, N, classes]`` of a run to horizon H;
    candidates are fixed H for every H given, each rule with ``tmax`` = every H given
    and ``tmin`` from ``tmin`` to H - 1 (``tmin`` = H is fixed H), and the cascades
    T0 -> T1 for every two H >= ``tmin`` given (``tmin``/``tmax`` T0 and T1, ``score`` the
    rule). The reference itself
    always keeps the budget, so there is always a choice; ``saving`` is False when it is
    the reference."""
    for r in rules:
        if r not in CHOICES:
            raise PolicyError(f"exit rule {r!r} is unknown; expected one of {list(CHOICES)}")
    if criterion not in CRITERIA:
        raise PolicyError(f"criterion {criterion!r} is unknown; expected one of {list(CRITERIA)}")
    T = max(by_horizon)
    ref_pred = by_horizon[T][-1].argmax(axis=1)
    allowed = budget_points / 100 + 1e-12
    fixed = {H: _fixed(H, _figures(r[-1].argmax(axis=1), ref_pred, labels)) for H, r in by_horizon.items()}
    reference = fixed[T]
    per_rule: dict[str, dict[str, Any] | None] = {}
    for rule in rules:
        if rule == CASCADE:  # over every pair of horizons
            per_rule[rule] = _cascade_best(by_horizon, labels, ref_pred, tmin, allowed, criterion)
            continue
        top: dict[str, Any] | None = None
        for H in sorted(by_horizon):
            if H < tmin:
                continue
            c: dict[str, Any] | None
            if rule == FIXED:
                c = dict(fixed[H]) if fixed[H][criterion] <= allowed else None
            else:
                c = _rule_best(by_horizon[H], labels, ref_pred, rule, range(tmin, H), allowed, criterion)
            if c is not None and _better(c, top):
                top = c
        per_rule[rule] = top
    best = reference
    for top in per_rule.values():
        if top is not None and _better(top, best):
            best = top
    for cand in [*per_rule.values(), best]:
        if cand is not None:
            cand["policy"] = policy_string(cand)
    return {
        "fixed_accuracy": reference["accuracy"],
        "criterion": criterion,
        "best": best,
        "per_rule": per_rule,
        "saving": best is not reference,
    }


def no_saving_note(n: int, budget_points: float, T: int, criterion: str) -> str:
    """The warning when only the reference keeps the budget: what was asked, why nothing fits."""
    k = int(np.floor(n * budget_points / 100 + 1e-9))
    what = "loses against" if criterion == "losses" else "differs from"
    return (
        f"no policy cheaper than fixed:{T} keeps the budget on the validation split: every candidate "
        f"{what} fixed:{T} on more than {budget_points}% of the {n} samples (at most {k} allowed); "
        f"the stored default is fixed:{T}, no saving. A larger --budget or more validation data may find one"
    )
