"""Atomic file output: write to a temporary file beside the target, fsync, then rename.

A crash, an exception, SIGINT or SIGTERM never leaves a half-written artifact at the
target path (nor a stray temporary file beside it), a reader never sees a partial file,
and :func:`check_output` refuses an output path that would overwrite an input.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def json_loads(text: str | bytes) -> Any:
    """``json.loads``; a crafted file nested deeper than the parser's recursion (a
    RecursionError traceback from every reader) is the ValueError each reader already turns
    into its one error line."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("its JSON is nested too deeply to read (a damaged or crafted file)") from None


def not_a_file(path: str | Path) -> str:
    """Why ``path``, which is no regular file, cannot be read as one (for messages)."""
    p = Path(path)
    return "is a folder" if p.is_dir() else "is not a regular file" if p.exists() else "does not exist"


class OutputPathError(ValueError):
    """An output path that cannot be written; the message says why."""


# the data folders and files this process has read (runtime.data.load_dataset registers
# them): every write checks against them, so a data set named inside a model file (a
# resumed run's, an ONNX file's own) is as safe as one given with --data
_read: set[Path] = set()
_written: set[Path] = set()  # what this process wrote (fit rewrites its checkpoint every epoch)


_interrupted = threading.Event()
_terminated = threading.Event()  # the remembered interrupt was SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM in a command, handled as Ctrl-C is (the partial work kept, fit's note on how
    to resume) but ending with its own status, 143: the default disposition killed the
    process without a word."""


@contextlib.contextmanager
def interrupts_remembered() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as ever (SIGTERM: :class:`Terminated`, one), and is
    remembered: raised inside a finaliser or weakref callback, Python prints it as "Exception
    ignored" and goes on (2 of 8 Ctrl-C during `export --format nir` were lost so, the export
    finished with exit 0). Once one came, :func:`write_atomic` publishes nothing and
    :func:`raise_if_interrupted` raises it again. Main thread only, and only over Python's own
    handlers (a caller's stays)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def on_int(signum: int, frame: object) -> None:
        _interrupted.set()
        raise KeyboardInterrupt

    def on_term(signum: int, frame: object) -> None:
        _terminated.set()
        _interrupted.set()
        raise Terminated

    def unraisable(u: sys.UnraisableHookArgs) -> None:
        if u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
            return  # remembered: said once, as "interrupted", not as a traceback
        old_hook(u)

    _interrupted.clear()
    _terminated.clear()
    old, old_hook = signal.signal(signal.SIGINT, on_int), sys.unraisablehook
    old_term = signal.signal(signal.SIGTERM, on_term) if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else None
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        sys.unraisablehook = old_hook


def raise_if_interrupted() -> None:
    """Raise the remembered Ctrl-C or SIGTERM (see :func:`interrupts_remembered`) that
    something swallowed."""
    if _interrupted.is_set():
        raise Terminated if _terminated.is_set() else KeyboardInterrupt


def reading(*paths: Path) -> None:
    """Note inputs this process reads; no output may land on them (:func:`write_atomic`)."""
    _read.update(p.resolve() for p in paths)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # same inode: the same file, a hard link or a symlink to it
    except OSError:
        return a.resolve() == b.resolve()  # one of them does not exist yet


def place_problem(path: str | Path) -> str | None:
    """What stops ``path`` from being written as a file whatever else holds: a name ending
    in a separator, a folder that does not exist (said with the command that makes it:
    docs' `--out runs/x.pt` failed in a fresh clone), or a folder in its place; None when
    neither."""
    if str(path).endswith(("/", os.sep)):  # Path() drops it: "m.onnx/" would read as the file m.onnx
        return f"cannot write {path}: it names a folder (ends in {os.sep}); expected a file name"
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return f"cannot write {out}: folder {parent} does not exist (create it first: mkdir -p {parent})"
    if out.is_dir():
        return f"cannot write {out}: it is a folder; expected a file name"
    return None


def check_output(
    path: str | Path | None,
    *inputs: str | Path | None,
    what: str = "output",
    kind: tuple[str, str] | None = None,
) -> Path:
    """Refuse, before any work: an empty output path, one ending in a separator (a folder
    name), a missing or unwritable folder, a folder, device, FIFO or socket as target (the
    rename would replace it: as root, ``-o /dev/null`` replaced /dev/null), a path that
    resolves to any of ``inputs`` (same file, hard link or symlink) or to an existing file
    inside an input that is a folder (a data set's), and with ``kind`` (``(".onnx", "an
    ONNX file")``: the suffix and name of what is written) a suffix naming another of the
    product's kinds (:func:`_check_suffix`); returns the path."""
    if path is None or not str(path).strip():
        raise OutputPathError(f"{what} path is empty; expected a file name")
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    problem = place_problem(path)  # as given: Path() drops a trailing separator
    if problem is not None:
        raise OutputPathError(problem)
    if out.exists() and not out.is_file():
        raise OutputPathError(
            f"cannot write {out}: it is not a regular file (a device, FIFO or socket), which writing would "
            "replace; expected a file path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {out}: folder {parent} is not writable")
    for src in inputs:
        if src is None or not str(src):
            continue
        if _same_file(out, Path(src)):
            raise OutputPathError(
                f"{what} {out} is the input {src}; writing it would destroy the input (choose another output path)"
            )
        if out.exists() and Path(src).is_dir() and out.resolve().is_relative_to(Path(src).resolve()):
            raise OutputPathError(
                f"{what} {out} is a file of the input folder {src}; writing it would destroy it (choose "
                "another output path)"
            )
    if kind is not None:
        _check_suffix(out, *kind)
    return out


# what each of the product's suffixes names, for an output whose suffix says another kind
PRODUCT_SUFFIXES = {
    ".pt": "a checkpoint (or a TorchScript file)",
    ".onnx": "an ONNX file",
    ".nir": "a NIR graph",
    ".pt2": "a torch.export file",
    ".json": "a JSON file (--json output, a Speck description)",
    ".npz": "a NumPy archive (a data set of one's own, parity inputs and results)",
    ".png": "a PNG plot (--plot)",
    # the event-camera recordings the product reads: never an output of its own
    ".raw": "an event-camera recording (Prophesee EVT 2.0/3.0)",
    ".dat": "an event-camera recording (Prophesee DAT)",
    ".aedat4": "an event-camera recording (iniVation AEDAT4)",
}


def _check_suffix(path: str | Path, expected: str, what: str) -> None:
    """Refuse writing ``what`` to a path whose suffix names another of the product's kinds
    (calibrate-exit --out m.pt replaced a checkpoint with an ONNX file that every reader then
    took for one); any other suffix is the user's choice."""
    suffix = Path(path).suffix.lower()
    if suffix in PRODUCT_SUFFIXES and not str(path).lower().endswith(expected):
        raise OutputPathError(
            f"cannot write {what} to {path}: {suffix} names {PRODUCT_SUFFIXES[suffix]}; expected a {expected} path"
        )


@contextlib.contextmanager
def _cleanup_on_signals(tmp: Path) -> Iterator[None]:
    """Turn SIGTERM into an exception (so the temporary file is removed like on SIGINT) and
    make a file-size limit (``ulimit -f``) an OSError instead of killing the process: each
    only over the default disposition, which would kill the process mid-write. A handler of
    the caller's stays (an app embedding the SDK: its own SIGTERM handler was bypassed and
    SystemExit(143) came out of a library call), as for SIGINT. Signal handlers can only be
    set from the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        tmp.unlink(missing_ok=True)
        raise SystemExit(128 + signum)

    replaced: dict[signal.Signals, Callable[[int, Any], Any] | int] = {signal.SIGTERM: on_term}
    if hasattr(signal, "SIGXFSZ"):
        replaced[signal.SIGXFSZ] = signal.SIG_IGN
    default = [sig for sig in replaced if signal.getsignal(sig) == signal.SIG_DFL]
    old = {sig: signal.signal(sig, replaced[sig]) for sig in default}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


def _defer_interrupts() -> set[int | signal.Signals] | None:
    """Block SIGINT and SIGTERM (they stay pending); returns the mask to restore, None where
    signals cannot be blocked (Windows)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)


def _resume_interrupts(mask: set[int | signal.Signals] | None) -> None:
    """Restore ``mask``; a signal that waited runs its handler here (Python checks for
    pending signals as the mask changes)."""
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


STALE_S = 600  # a temporary file untouched this long has no writer: every write takes seconds


def _remove_stale_temporaries(parent: Path, name: str, suffix: str) -> None:
    """Remove the temporary files of ``name`` left by a writer that no longer runs: SIGKILL
    (the kernel's OOM killer's signal) runs no cleanup, and each left a hidden copy as large
    as the artifact. Only files of the exact form this module writes
    (``.{name}.tmp.{pid}.{8 characters}{suffix}``), untouched for :data:`STALE_S` and whose
    pid runs nowhere here: a writer in another PID namespace, container or host sharing the
    folder has a pid this process cannot see, but it touches its file while it writes."""
    form = re.compile(rf"\.{re.escape(name)}\.tmp\.(\d+)\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    now = time.time()
    for tmp in parent.glob(f".{glob.escape(name)}.tmp.*"):
        m = form.fullmatch(tmp.name)
        if m is None or int(m.group(1)) <= 0:
            continue  # not of this module's form (a user's file): not ours to judge
        try:
            if now - tmp.stat().st_mtime < STALE_S:
                continue
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except OSError:
            pass  # it runs (as another user), or it went already: keep


def write_serialized(path: str | Path, dump: Callable[[IO[bytes]], None]) -> Path:
    """:func:`write_atomic` of what ``dump`` writes to a file object, serialised in memory
    first: torch's C++ writers (torch.save, torch.jit.save, torch.export.save) abort the
    process or raise an unnamed error on a full disk or a size limit, and np.savez appends
    ``.npz`` to a file name; Python's own write reports either as :class:`OutputPathError`."""
    buf = io.BytesIO()
    dump(buf)
    return write_atomic(path, lambda tmp: tmp.write_bytes(buf.getbuffer()))


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)``, fsync, then rename ``tmp_path`` to ``path``; returns ``path``.

    A write that fails for lack of space or a size limit is an :class:`OutputPathError`
    naming the path; nothing is left behind.
    """
    path = check_output(path, *(() if Path(path).resolve() in _written else sorted(_read)))
    parent = path.parent if str(path.parent) else Path(".")
    _remove_stale_temporaries(parent, path.name, path.suffix)
    # keep the suffix: some writers (torch.export.save, matplotlib) look at it; the
    # writer's pid in the name tells a later run whether the file is still being written
    prefix = f".{path.name}.tmp.{os.getpid()}."
    # Ctrl-C and SIGTERM wait from the temporary's creation until the try that removes it
    # holds its name: one that came in between left it behind (a SIGTERM during fit's
    # every-epoch checkpoint, now and then)
    deferred = _defer_interrupts()
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=parent)
    except OSError as e:
        _resume_interrupts(deferred)
        raise OutputPathError(f"cannot write {path}: {e.strerror or e}") from None
    tmp = Path(tmp_name)
    try:  # from its creation on: a Ctrl-C before the write left an empty temporary file
        os.close(fd)
        _resume_interrupts(deferred)  # one that waited is raised here, and the temporary removed
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the artifact is an ordinary file
        with _cleanup_on_signals(tmp):
            try:
                write(tmp)
                with open(tmp, "rb") as f:  # the bytes reach the disk before the name does
                    os.fsync(f.fileno())
            except OSError as e:
                raise OutputPathError(f"cannot write {path}: {e.strerror or e}") from None
            except RuntimeError as e:  # torch.save reports a failed write as RuntimeError
                if "write" not in str(e).lower() and "file" not in str(e).lower():
                    raise
                raise OutputPathError(f"cannot write {path}: {str(e).splitlines()[0]}") from None
            raise_if_interrupted()  # a Ctrl-C swallowed on the way: the output is not published
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself is durable once the folder is synced
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    _written.add(path.resolve())
    return path
