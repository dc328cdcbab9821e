"""Argument types and flags shared by every CLI parser: a bad number or output path is
refused while the command line is parsed (argparse prints one ``error:`` line and exits 2),
before any data is loaded or any file is touched; a flag that several commands take is
defined once (``add_*``), so it has one name, type and wording everywhere.

The upper bounds are sanity limits, far above any real use, that keep a typo (an extra
zero or an exponent) from becoming a MemoryError or a run that never ends.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .errors import InputError
from .fileio import place_problem
from .limits import MAX_T
from .report import fail

if TYPE_CHECKING:
    from .data.datasets import Dataset
    from .protocol import Protocol

MAX_BATCH = 1_000_000  # samples per batch (the memory estimate refuses smaller ones when they do not fit)
MAX_WIDTH = 65_536  # channels
MAX_SIDE = 16_384  # input side length / channels of an input shape
MAX_COUNT = 1_000_000_000  # epochs, limits, repeats and other plain counts


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with every flag's default (unless its text already says it), descriptions as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        d = action.default
        if (
            "default" in text
            or d is None
            or d is False
            or d is argparse.SUPPRESS
            or d == []
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


# flags renamed to the one name of their concept: old name -> new name(s), said in the message
# an old command line gets where its sub-command has a new one (every name the one-vocabulary
# changes retired); an old name two concepts shared has a new name for each
RENAMED: dict[str, tuple[str, ...]] = {
    "--steps": ("--T",),
    "--reps": ("--repeats",),
    "--batches": ("--calib-batches",),
    "--batch": ("--batch-size",),  # export --check, runtime bench
    "--limit-test": ("--limit",),  # trainer fit
    "--threads": ("--max-threads (1..N threads measured)",),  # edge pi-bench; elsewhere --threads is N used
    "--source": ("--from",),
    "--output": ("--out",),
    "--dt": ("--dt-us (in µs, not seconds)",),  # export's NIR import took seconds
    # "samples" are data samples everywhere else (--batch-size, --limit)
    "--samples": (
        "--configs-per-batch (T configurations trained per batch)",  # trainer fit
        "--fit-configs (configurations the accuracy model is fitted on)",  # trainer search
    ),
    "--validate": ("--validate-configs",),  # trainer search
    "--no-bn": ("--norm none",),  # trainer fit: one flag for the normalisation
    "--events-us": ("--window-us (µs of events one decision reads)",),  # export's NIR import
    "--format": ("--event-format (evt2, evt3, dat or aedat4)",),  # runtime stream; export's --format stays
    "--kind": ("--data-kind",),  # trainer trev-memory
}
# a concept other commands name by a flag that a command expresses another way (the hint
# for a script that passed the usual flag)
HERE_AS: dict[str, tuple[str, ...]] = {
    "--T": ("--policy fixed:T",),  # runtime run and stream: a fixed T is one exit policy
}


NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-inf(inity)?$", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are the product's one ``error:`` line (exit 2), not
    argparse's usage block; ``-h`` still shows the usage, every default and ``--version``.
    A flag is taken by its whole name only: argparse's prefixes made ``--dt`` mean
    ``--dt-us`` (seconds read as µs), hid a renamed flag's hint, and a flag added later
    would turn a script's prefix ambiguous (sub-commands are built by this class too)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # a value, not a flag: argparse took only -3 and -.5 so, and `--v-min -inf` (the help's
        # "no clamp") or `--v-min -1e-3` was "expected one argument"
        self._negative_number_matcher = NEGATIVE_NUMBER

    def add_version(self) -> Parser:
        """``--version`` on a top-level parser: the installed flexsnn version."""
        from .report import versions

        v = versions("flexsnn")["flexsnn"] or "unknown (not installed)"  # a checkout never installed
        self.add_argument("--version", action="version", version=f"flexsnn {v}")
        return self

    def error(self, message: str) -> NoReturn:
        # "argument --T: must be ..." (our types' wording) reads as "--T must be ..."
        message = re.sub(r"^argument ([^:]+): must ", r"\1 must ", message)
        if os.environ.get("TORCHELASTIC_RUN_ID") and os.environ.get("RANK", "0") != "0":
            raise SystemExit(2)  # under torchrun every rank parses the same argv; rank 0 says what is wrong
        fail(message + f" (see {self.prog} -h)")


def _shown(text: str) -> str:
    """The value as typed; quoted only when it would not be visible (empty, spaces)."""
    return text if text.strip() == text and text else repr(text)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            f = float(text)  # "1e3" is a fine integer; "1.5" is not
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {_shown(text)}") from None
        if not math.isfinite(f) or f != int(f):
            raise argparse.ArgumentTypeError(f"must be an integer, got {_shown(text)}") from None
        return int(f)


def int_range(lo: int, hi: int, what: str = "") -> Callable[[str], int]:
    """An integer in ``[lo, hi]``."""

    def parse(text: str) -> int:
        v = _int(text)
        if not lo <= v <= hi:
            kind = {0: "a non-negative integer", 1: "a positive integer"}.get(lo, f"an integer >= {lo}")
            raise argparse.ArgumentTypeError(
                f"must be {kind} (at most {hi}" + (f"; {what}" if what else "") + f"), got {_shown(text)}"
            )
        return v

    parse.__name__ = "integer"
    return parse


positive_int = int_range(1, MAX_COUNT)
nonneg_int = int_range(0, MAX_COUNT)
steps = int_range(1, MAX_T, "time steps")
batch = int_range(1, MAX_BATCH, "samples per batch")
width = int_range(0, MAX_WIDTH, "0: the model's default")
side = int_range(1, MAX_SIDE)
threads = int_range(0, 1024, "0: all cores")
positive_threads = int_range(1, max(64, 4 * (os.cpu_count() or 1)), "threads")
seed = int_range(0, 2**32 - 1, "a numpy/torch seed")


def stage_steps(text: str) -> list[int]:
    """A per-stage configuration ``4,2,2,3``: one number of time steps per stage, each in
    ``[1, MAX_T]`` (the model's stage count and Tmax are checked once it is loaded)."""
    parts = [p.strip() for p in text.split(",")]
    out = []
    for p in parts:
        try:
            out.append(steps(p))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated time steps, one per stage, each an integer in [1, {MAX_T}] "
                f"(e.g. 4,2,2,3), got {_shown(text)}"
            ) from None
    return out


def float_range(lo: float, hi: float, lo_open: bool = False, what: str = "") -> Callable[[str], float]:
    """A finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); NaN and inf refused."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {_shown(text)}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {_shown(text)}")
        if v < lo or v > hi or (lo_open and v == lo):
            left = "(" if lo_open else "["
            right = ")" if math.isinf(hi) else "]"  # "(0.0, inf]" offered what the finite check refuses
            raise argparse.ArgumentTypeError(
                f"must be a number in {left}{lo}, {hi}{right}"
                + (f" ({what})" if what else "")
                + f", got {_shown(text)}"
            )
        return v

    parse.__name__ = "number"
    return parse


positive_float = float_range(0.0, math.inf, lo_open=True)
nonneg_float = float_range(0.0, math.inf)
unit_float = float_range(0.0, 1.0)


def output_path(text: str) -> str:
    """A non-empty file path whose folder exists and which is not a folder itself."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must be a file name, got an empty path")
    problem = place_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def png_path(text: str) -> str:
    """An output path for a plot; it must end in ``.png`` (matplotlib would otherwise add
    the suffix and the report would name a file that was not written)."""
    output_path(text)
    if Path(text).suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"must be a path ending in .png, got {_shown(text)}")
    return text


# The flags that several commands share, each defined once here so that one concept has
# one name, one type and one wording in every CLI (tests/test_cli_vocabulary.py); a
# command only says what differs (its default, what the flag applies to).


def given_dests(make_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str]) -> set[str]:
    """The destinations ``argv`` sets explicitly, a value equal to the default included
    (comparing with the defaults cannot tell ``--seed 0`` from no ``--seed``)."""
    p, unset = make_parser(), object()
    accumulating: set[str] = set()  # append/count actions add to their default: None marks them unset

    def mark(q: argparse.ArgumentParser) -> None:
        for act in q._actions:
            if isinstance(act, argparse._SubParsersAction):
                for sub in act.choices.values():
                    mark(sub)
            elif isinstance(act, (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction)):
                act.default = None
                accumulating.add(act.dest)
            elif act.default is not argparse.SUPPRESS:
                act.default = unset
        q._defaults = dict.fromkeys(q._defaults, unset)

    mark(p)
    parsed = vars(p.parse_args(list(argv)))
    return {k for k, v in parsed.items() if v is not unset and not (k in accumulating and v is None)}


GIVEN = "_given"  # in a parsed namespace: the destinations the command line set explicitly


def parse(make_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None) -> argparse.Namespace:
    """``make_parser().parse_args(argv)``, with the destinations argv set explicitly kept
    (:func:`given`): a flag given at its default value is still given."""
    argv = sys.argv[1:] if argv is None else list(argv)
    p = make_parser()
    a, extra = p.parse_known_args(argv)
    if extra:  # said by the sub-command that was given: its -h, and a flag's new name where it has one
        sub = next(
            (act.choices[getattr(a, act.dest)] for act in p._actions if isinstance(act, argparse._SubParsersAction)),
            p,
        )
        flags = {e.split("=", 1)[0] for e in extra}  # --dt=0.001 names --dt too
        renamed = [
            f"{old} is {'now ' if table is RENAMED else ''}{new}{'' if table is RENAMED else ' here'}"
            for table in (RENAMED, HERE_AS)
            for old, news in table.items()
            for new in news
            if old in flags and new.split()[0] in sub._option_string_actions
        ]
        sub.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(renamed)})" if renamed else ""))
    setattr(a, GIVEN, given_dests(make_parser, argv))
    return a


def given(a: argparse.Namespace, dest: str) -> bool:
    """Whether the command line set ``dest`` (a namespace not from :func:`parse`: never)."""
    return dest in getattr(a, GIVEN, ())


def add_json(p: argparse.ArgumentParser, what: str = "one JSON object") -> None:
    """``--json``: machine-readable output instead of the table."""
    p.add_argument("--json", action="store_true", help=what)


def add_data(
    p: argparse.ArgumentParser,
    default: str | None = None,
    fallback: str = "the data the model was trained on, as its file says",
    what: str = "data spec",
) -> None:
    """``--data SPEC``: a data-set spec of :mod:`runtime.data.datasets` (``what``: what the
    command uses it for); without one, the command uses ``fallback``."""
    from .data.datasets import SPEC_FORMS

    p.add_argument(
        "--data",
        default=default,
        help=f"{what}: " + ", ".join(SPEC_FORMS) + f" (default: {default or fallback})",
    )


def add_limit(p: argparse.ArgumentParser, default: int | None = None, of: str = "the test split") -> None:
    """``--limit N``: an evenly spread subset (the ``limit`` of :func:`runtime.data.datasets.load_dataset`)."""
    p.add_argument(
        "--limit",
        type=positive_int,
        default=default,
        help=f"evenly spread subset of {of}" + ("" if default else " (default: all)"),
    )


def add_batch_size(p: argparse.ArgumentParser, default: int | list[int], what: str = "samples per batch") -> None:
    """``--batch-size``; a list default takes several sizes (a benchmark's sweep)."""
    many = isinstance(default, list)
    p.add_argument("--batch-size", type=batch, nargs="+" if many else None, default=default, help=what)


def add_plot(p: argparse.ArgumentParser, what: str) -> None:
    """``--plot FILE.png``: ``what`` drawn as a PNG."""
    p.add_argument("--plot", type=png_path, default=None, help=f"write {what} as a PNG")


def add_repeats(p: argparse.ArgumentParser, what: str, default: int = 5) -> None:
    """``--repeats N`` of the benchmarks (interleaved rounds or timed runs)."""
    p.add_argument("--repeats", type=positive_int, default=default, help=what)


BENCH_STEPS = 20  # the benchmarks' steps per timed run, unless the model has fewer


def add_steps(
    p: argparse.ArgumentParser,
    what: str,
    default: int | list[int] | None = None,
    *,
    flag: str = "--T",
    several: bool = False,
    required: bool = False,
) -> None:
    """A flag of time steps (``--T``, ``--tmax``, ``--budget-T``, ...: a positive integer
    each, :func:`steps`; ``several``: one or more), ``what`` they are for with the default
    said there: one definition for every command's."""
    nargs = "+" if several else None
    p.add_argument(flag, type=steps, nargs=nargs, default=default, required=required, help=what)


def add_timed_steps(p: argparse.ArgumentParser) -> None:
    """``--T``: the steps per timed run of a benchmark (:func:`runtime.bench.timed_steps`)."""
    add_steps(
        p, f"time steps per timed run (default {BENCH_STEPS}, or all of a T-RevSNN's sub-networks when it has fewer)"
    )


def add_seed(p: argparse.ArgumentParser, what: str) -> None:
    """``--seed``: what the seed draws, stated by each command."""
    p.add_argument("--seed", type=seed, default=0, help=f"seed of {what}")


def add_out(p: argparse.ArgumentParser, what: str, default: str | None = None, required: bool = False) -> None:
    """``-o/--out FILE``, in every command that writes one: the file it writes, checked
    writable while parsing (the command itself refuses one that is also its input)."""
    p.add_argument("-o", "--out", type=output_path, default=default, required=required, help=what)


def add_binning(p: argparse.ArgumentParser) -> None:
    """``--binning``: how event streams become frames, when not as the model was trained."""
    p.add_argument("--binning", default=None, help="events: equal or fixed (default: as trained)")


def add_calib_batches(p: argparse.ArgumentParser, default: int | None, when: str, size: str, off: bool = True) -> None:
    """``--calib-batches N``: training batches that re-estimate BatchNorm statistics
    (``when``: for which configurations; ``size``: how many samples a batch holds, which
    differs between commands; ``off``: 0 turns it off, else it is refused)."""
    p.add_argument(
        "--calib-batches",
        type=nonneg_int,
        default=default,
        help=f"BatchNorm models: training batches of {size} to re-estimate the statistics {when}"
        + (" (0: off)" if off else ""),
    )


def add_calib_runs(p: argparse.ArgumentParser, default: int, what: str) -> None:
    """``--calib-runs N``: BatchNorm calibrations with different sample draws (MTT A.6/A.9
    use 3); ``what``: what is done with them."""
    p.add_argument("--calib-runs", type=positive_int, default=default, help=f"BatchNorm models: {what}")


def refuse_unread(reader: str, read: bool, given: dict[str, bool], error: type[Exception] = InputError) -> None:
    """Flags that only ``reader`` reads (``given[flag]``: whether the command line set it),
    given to a run without it (``read`` false): one error, where they would be ignored."""
    flags = [flag for flag, set_ in given.items() if set_]
    if flags and not read:
        raise error(f"only {reader} reads {' and '.join(flags)}; add {reader} or leave them out")


def refuse_threads_for_exact(backend: str | None, flag: str, threads: int | None) -> None:
    """Backend exact runs one thread (fixed-order sums): ``threads`` other than 1 given to it
    under ``flag`` (None: not given) is one error, where it would be ignored."""
    if backend == "exact" and threads not in (None, 1):
        raise InputError(f"{flag} {threads}: backend exact runs one thread (fixed-order sums); leave {flag} out")


def add_in_shape(p: argparse.ArgumentParser, default: list[int]) -> None:
    """``--in-shape C H W``: the input shape of a model built from its name."""
    p.add_argument(
        "--in-shape",
        type=side,
        nargs=3,
        default=default,
        metavar=("C", "H", "W"),
        help="input shape (channels, height, width)",
    )


def add_threads(p: argparse.ArgumentParser, default: int | None, what: str) -> None:
    """``--threads N``, every command's one name for how many threads it runs on (0: all
    cores); ``what``: whose threads, and the default's reason."""
    p.add_argument("--threads", type=threads, default=default, help=what)


def refuse_oversubscribed(threads: int | None, what: str, error: type[Exception]) -> None:
    """A timing with more threads than this process's cores measures their contention (a
    stranger's --threads 1000 took the machine to a load of 540, and its "% of limit" read
    14019): refused, naming the cores."""
    from .limits import available_cores

    if threads and threads > (cores := available_cores()):
        raise error(
            f"--threads {threads}: this process may run on {cores} cores, and a timing on more threads than cores "
            f"measures their contention, not the {what}; expected at most {cores} (0: all)"
        )


def add_ort_threads(p: argparse.ArgumentParser, when: str = "", more: str | None = None) -> None:
    """``--threads`` of the commands that run a model on onnxruntime (``when``: in which
    of the command's modes it applies; ``more``: what else the flag sets)."""
    add_threads(
        p,
        None,
        f"onnxruntime intra-op threads{when} (0: all cores; default: 1 at batch 1, all cores above)"
        + (f"; {more}" if more else ""),
    )


def add_backend(p: argparse.ArgumentParser, when: str = "") -> None:
    """``--backend`` of the commands that run a model clock-driven (``when``: in which of
    the command's modes it applies)."""
    from .session import BACKENDS  # onnxruntime: only for the parsers of commands that run one

    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help=f"clock-driven backend{when}: numba: neuron layers in one-pass numba kernels, the rest on "
        "onnxruntime (bit-identical; faster above batch 1, about even at batch 1); ort: the function bodies "
        "on stock onnxruntime (no numba: less memory); auto (default): numba where the model allows; exact: "
        "every layer in numba with fixed-order float64 sums, one thread: use it when results must be "
        "bit-identical across machines (x86-64 and aarch64 / Raspberry Pi; slower, docs/edge.md)",
    )


def add_transforms(p: argparse.ArgumentParser, what: str) -> None:
    """``--transform FORM``, repeatable, applied in order (:mod:`runtime.data.transforms`);
    ``what`` says which transforms these are to this command."""
    from .data.transforms import TRANSFORM_FORMS

    p.add_argument(
        "--transform",
        action="append",
        default=[],
        help=f"{what}, repeatable, applied in order: " + ", ".join(TRANSFORM_FORMS),
    )


def data_spec(a: argparse.Namespace, protocol: Protocol) -> str:
    """``--data``, or the data the model says it was trained on."""
    from .data.datasets import SPEC_FORMS

    spec = a.data or protocol.data
    if spec is None:
        raise InputError(
            f"{a.model} does not say which data it was trained on; pass --data (one of {', '.join(SPEC_FORMS)})"
        )
    return spec


def model_data(a: argparse.Namespace, protocol: Protocol, split: str = "test", needs: str | None = None) -> Dataset:
    """``split`` of :func:`data_spec`'s data, with the model's transforms, checked to fit
    the model (``a.model``; ``needs``: who reads event streams only): what every command
    that runs a file on a data set reads."""
    from .data.datasets import check_fits, load_dataset, stored_data_error
    from .data.registry import DataError
    from .data.transforms import from_dicts
    from .protocol import data_kind

    spec = data_spec(a, protocol)
    try:
        ds = load_dataset(spec, split, a.limit, from_dicts(protocol.transforms))
    except DataError as e:
        raise (e if a.data else stored_data_error(e, spec, a.model)) from None
    return check_fits(ds, protocol.input_shape, protocol.classes, a.model, needs, data_kind(protocol.input_kind))
