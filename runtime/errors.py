"""Errors shared by the clock-driven runtime, the event-driven runtime, the data readers
and the SDK, in a module with no dependencies so that every part can raise them without
import cycles. Each says, in its message, what was expected."""

from __future__ import annotations


class InputError(ValueError):
    """An input the model cannot take; the message says what was expected."""


class ModelError(ValueError):
    """A file that is not a usable flexsnn model; the message says what was expected."""


class RunWarning(RuntimeWarning):
    """A run goes ahead on something its caller may not have meant (the classes below). The
    CLIs collect the ones a command reports into its ``warning:`` lines and ``--json``
    ``warnings``; any other that reaches a command is printed as a ``warning:`` line too,
    not in Python's file:line form (runtime.report.guarded)."""


class TrainedRangeWarning(RunWarning):
    """A run that may stop at a T outside the range the model was trained on (its accuracy
    there was never part of training), or that runs to a horizon other than the T its
    BatchNorm statistics were calibrated at; the run goes ahead. The CLIs report it themselves
    (``warning:`` and ``--json``'s ``warnings``) and silence this one."""


class UnusedFramesWarning(RunWarning):
    """Frames given past the most steps the policy runs: the run never sees them (frames
    binned from a recording into more steps than the policy runs leave the recording's end
    unseen). The run goes ahead on the first frames."""


class AxisOrderWarning(RunWarning):
    """Frames whose second axis, not their first, has the model's trained T, run with no
    policy given (the run length is then the first axis): the batch axis may come first
    (``[B, T, ...]``, torch's and tonic's batched layout). The run goes ahead as
    ``[T, B, ...]``: shapes alone cannot tell."""


class UnfinishedModelWarning(RunWarning):
    """A model file exported from a training run that stopped before its end (a per-epoch
    checkpoint: fewer epochs, perhaps BatchNorm not calibrated): its accuracy is not the
    finished model's. Raised when the file is loaded; the CLIs report it themselves
    (``warning:`` and ``--json``'s ``warnings``) and silence this one."""


class NonFiniteReadoutWarning(RunWarning):
    """Readouts that are NaN or infinite although every input was finite: a value overflowed
    float32 inside the network (inputs far larger than the training data's, e.g. raw counts
    into a multi-spike layer, whose spike count grows with its input). Those samples'
    predictions are arbitrary (the argmax of NaN). The run goes ahead; the CLIs report it
    (``warning:`` and ``--json``'s ``warnings``)."""


class UnseenEventsWarning(RunWarning):
    """Events of a stream after the last fixed bin (``T x dt``): the run never sees them
    (fixed bins cover the first ``T x dt`` µs of a recording). The run goes ahead."""


class StoredPolicyWarning(RunWarning):
    """A data-set run that names no policy takes the model's stored one (calibrate-exit's),
    chosen on the other kind of runs (clock- or event-driven): its accuracy budget was kept
    there, not on these (or the stored one is a cascade, which an event-driven run cannot
    take: the run is whole streams). The run goes ahead; the CLIs report it (``warning:``
    and ``--json``'s ``warnings``)."""


class MissingPackageError(ImportError):
    """An optional package a command needs is not installed (numba, which a runtime-only
    Raspberry Pi install leaves out); the message names it, what needs it and how to
    install it. An ImportError, so code that probes for the package still catches it."""


PIP_NAMES = {"numba": "numba>=0.59"}  # as pyproject.toml pins it


def missing_package(package: str, what: str, error: ImportError) -> MissingPackageError:
    """The error for ``what``, which failed to import ``package`` with ``error``: not
    installed, or installed and failing (numba that lags numpy names the versions it needs:
    that reason is kept, where "install it" would be answered "already satisfied")."""
    pip = PIP_NAMES.get(package, package)
    name = error.name if isinstance(error, ModuleNotFoundError) else None
    if name is not None and name.split(".")[0] == package:
        return MissingPackageError(f"{what} needs {package}, which is not installed; install it: pip install '{pip}'")
    return MissingPackageError(f"{what} needs {package}, which is installed but failed to import: {error} ({pip})")


class DataError(ValueError):
    """A data spec or data folder that cannot be used; the message says what was expected."""
