"""Shared CLI output: aligned tables for people, one JSON object for programs, and
the single-line error with exit status 2 for bad input."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn


def fail(message: str) -> NoReturn:
    """One clear line on stderr, exit status 2 (bad input), no traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless one ("1 thread", "2 threads")."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


@functools.cache
def cpu_name() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo's "model name", or on a Raspberry Pi,
    whose ARM cores have none, its "Model" line; elsewhere what the platform says; None:
    unknown). Float results depend on it, not only on the library versions: torch picks its
    kernels by the CPU's instruction set (a stranger's AVX-512 machine moved a published
    loss in the 4th decimal)."""
    import platform

    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                found.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return found.get("model name") or found.get("Model") or platform.processor() or None


def versions(*packages: str) -> dict[str, str | None]:
    """Installed versions (None: not installed), read from package metadata, so that a
    benchmark reports numba's without importing it; and Python's, the machine's and its CPU's."""
    import platform
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_name()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def versions_text(v: dict[str, str | None]) -> str:
    """:func:`versions` as one line for a benchmark's footer ("python 3.11.7, machine
    x86_64, cpu ..., numpy 2.4.6"), the missing ones left out."""
    return ", ".join(f"{k} {value}" for k, value in v.items() if value)


def interrupted(e: BaseException | None = None) -> NoReturn:
    """Ctrl-C (or SIGTERM, ``e`` a :class:`runtime.fileio.Terminated`): one line and the
    shell's status for the signal (128 + 2, 128 + 15), no traceback; outputs are written
    atomically, so none is left half-written (fit keeps the checkpoint of its last finished
    epoch, for --resume)."""
    from .fileio import Terminated

    term = isinstance(e, Terminated)
    print("interrupted (SIGTERM)" if term else "interrupted", file=sys.stderr)
    raise SystemExit(143 if term else 130) from None


def start(cli_module: str) -> None:
    """``python -m PACKAGE``: import ``cli_module`` and run its ``main``. Its imports (torch,
    onnx: seconds) and argument parsing come before :func:`guarded`: a Ctrl-C there ends as
    one in the command does, not in a traceback of whatever module was loading."""
    import importlib

    try:
        importlib.import_module(cli_module).main()
    except KeyboardInterrupt as e:
        interrupted(e)


def guarded(errors: tuple[type[BaseException], ...], main: Callable[[], Any]) -> Any:
    """Run ``main``; turn the listed user-facing errors, refused output paths, resource
    limits and a missing optional package into :func:`fail`. A MemoryError the estimates
    did not foresee is one line too; Ctrl-C and a reader that closed the pipe end the
    command without a traceback."""
    from .errors import MissingPackageError
    from .fileio import OutputPathError, interrupts_remembered, raise_if_interrupted
    from .limits import ResourceError

    handled: tuple[type[BaseException], ...] = (*errors, OutputPathError, ResourceError, MissingPackageError)
    try:
        with interrupts_remembered(), warnings.catch_warnings():
            warnings.showwarning = _warning_lines(warnings.showwarning)
            result = main()
            raise_if_interrupted()  # one swallowed on the way (a finaliser's): still exit 130
        sys.stdout.flush()  # a reader that went away (`| head`) shows here, not at exit
        return result
    except BrokenPipeError:
        # stop quietly, as Unix tools do; stdout to devnull so the interpreter's own flush
        # at exit does not raise again (the recipe of Python's signal module docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except KeyboardInterrupt as e:
        interrupted(e)
    except handled as e:
        fail(str(e))
    except MemoryError:
        fail("out of memory: the request does not fit in this machine's memory; use a smaller batch, T or model")
    except OSError as e:  # numba writes its compile cache on a kernel's first call, in any command
        if not _raised_in(e, "numba.core.caching"):
            raise
        fail(
            f"numba could not write its compile cache ({e.strerror or e}: a file-size limit, ulimit -f, or a full "
            "disk); raise the limit, free space or set NUMBA_CACHE_DIR to a folder with a few MB free"
        )
    except RuntimeError as e:  # torch's CPU allocator and onnxruntime report a failed allocation this way
        if not any(m in str(e) for m in ("can't allocate memory", "not enough memory", "Failed to allocate memory")):
            raise
        fail(f"out of memory ({str(e).splitlines()[0][:120]}); use a smaller batch, T or model")


def _warning_lines(shown: Callable[..., None]) -> Callable[..., None]:
    """Python's warning display in a command: a :class:`runtime.errors.RunWarning` that no
    command collected as one ``warning:`` line (a raw file:line form came out of
    calibrate-exit and pi-bench); any other as ``shown`` (Python's display) shows it."""
    from .errors import RunWarning

    def show(message: Warning | str, category: type[Warning], *where: Any, **kw: Any) -> None:
        if issubclass(category, RunWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *where, **kw)

    return show


def _raised_in(e: BaseException, module: str) -> bool:
    """Whether a frame of ``e``'s traceback runs code of ``module``."""
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == module:
            return True
        tb = tb.tb_next
    return False


def shown(text: str) -> str:
    """``text`` (a file name) as a plot can draw it: bytes of a name that are not UTF-8
    (Python keeps them as lone surrogates) become U+FFFD; matplotlib raised on them."""
    return os.fsencode(text).decode("utf-8", "replace")


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


def pct(x: float) -> str:
    """A fraction as percent with one decimal (what a person compares)."""
    return f"{100 * x:.1f}"


def sci(x: float) -> str:
    """Operation counts: three significant digits."""
    return f"{x:.3g}"


def energy_note() -> str:
    """What every energy figure is, with the energies :mod:`runtime.cost` uses (imported
    here, not at the top: this module loads before a CLI's imports, onnx among them)."""
    from .cost import E_AC_PJ, E_MAC_PJ

    return f"energy: an estimate from 45 nm MAC/AC energies ({E_MAC_PJ:g} / {E_AC_PJ:g} pJ), not a measurement"


def print_warnings(notes: Sequence[str | None]) -> list[str]:
    """Print each note on stderr (``warning: ...``), once, and return them for ``--json``."""
    kept = list(dict.fromkeys(n for n in notes if n))
    for n in kept:
        print(f"warning: {n}", file=sys.stderr)
    return kept


@contextlib.contextmanager
def noting(notes: list[str], *categories: type[Warning]) -> Iterator[None]:
    """Warnings of ``categories`` raised inside, as notes for :func:`print_warnings`
    (``warning:`` lines and the ``--json`` list, not Python's file:line form); others pass
    on as raised, each shown once as Python's default filter would."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    registry: dict[Any, Any] = {}
    for w in caught:
        if issubclass(w.category, categories):
            notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, registry=registry)


def print_run(title: str, figures: Mapping[str, str], notes: Sequence[str] = ()) -> None:
    """One run's summary for a person: the title, one row of figures under their names
    (units in the names), the energy footnote and any further notes."""
    print(title)
    print(table(list(figures), [list(figures.values())]))
    for note in (f"* {energy_note()}", *notes):
        print(note)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def json_text(obj: dict[str, Any]) -> str:
    """``obj`` as strict JSON: a figure with no finite value (a spike difference whose
    reference layer never fired: x / 0) is ``null``. json.dumps wrote ``Infinity`` and
    ``NaN``, which JavaScript's JSON.parse and other strict readers refuse."""

    def finite(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):  # numpy's float64 is a float too
            return None
        return v

    return json.dumps(finite(obj), allow_nan=False)


def emit_json(obj: dict[str, Any]) -> None:
    print(json_text(obj))
