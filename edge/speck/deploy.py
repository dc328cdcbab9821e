"""Writing the configuration to a Speck devkit through sinabs and samna.

samna on the public registry is a stub whose ``__init__`` downloads and installs the real
package when imported, and ``sinabs.backend.dynapcnn`` imports samna at module top. So
nothing here imports either until :func:`missing` has found, by reading files only, that
the real samna (and sinabs, torch) are installed; :func:`deploy` then imports them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backend import Plan
from .quantize import QuantNet
from .sinabs_model import sinabs_sequential

REAL_SAMNA = (
    "the real samna from SynSense's index: pip install --force-reinstall samna "
    "--index-url https://gitlab.com/api/v4/projects/27423070/packages/pypi/simple"
)
STUB_MARKS = ("PYPI_SAMNA", "install_real_samna")


class DeployError(RuntimeError):
    """Deployment impossible here; the message says what is missing."""


def is_stub(origin: str | None) -> bool:
    """True if the samna package at ``origin`` (its ``__init__.py``) is the registry stub."""
    if not origin or not Path(origin).is_file():
        return False
    text = Path(origin).read_text(errors="replace")
    return any(mark in text for mark in STUB_MARKS)


def missing(find_spec: Callable[[str], Any] = importlib.util.find_spec) -> str | None:
    """What is missing for :func:`deploy` (None: nothing), found without importing it."""
    lacking = [p for p in ("torch", "sinabs") if find_spec(p) is None]
    if lacking:
        return f"{' and '.join(lacking)} not installed; --deploy needs them: pip install 'flexsnn[edge]' (after torch)"
    spec = find_spec("samna")
    if spec is None:
        return f"samna is not installed; --deploy needs {REAL_SAMNA}"
    if is_stub(spec.origin):
        return (
            f"the samna installed at {Path(spec.origin).parent} is the public registry's stub, which tries to "
            f"download the real package when imported (not done here); --deploy needs {REAL_SAMNA}"
        )
    return None


def deploy(qnet: QuantNet, plan: Plan, device_index: int = 0) -> str:
    """Configure the first connected devkit of ``plan.chip`` with the mapped network;
    returns the device id. :class:`DeployError` if anything needed is missing."""
    if not plan.fits:
        raise DeployError("the network does not fit the chip (see --check); nothing deployed")
    why = missing()
    if why:
        raise DeployError(why)
    import samna  # the real one: checked above

    chip = plan.chip
    seen = [d.device_type_name for d in samna.device.get_unopened_devices()]
    if chip.samna_device not in seen:
        raise DeployError(f"no {chip.samna_device} ({chip.name}) connected; samna sees {seen or 'no devices'}")
    from sinabs.backend.dynapcnn import DynapcnnNetwork  # imports samna: only now

    net = DynapcnnNetwork(
        sinabs_sequential(qnet, batch_size=1),
        input_shape=tuple(qnet.net.input_shape),
        discretize=False,
        dvs_input=False,
    )
    device = f"{chip.name}:{device_index}"
    # sinabs numbers the conv -> IF -> pool groups 0, 1, ... in order: our layers; watch the readout
    net.to(device=device, layer2core_map=dict(enumerate(plan.cores)), monitor_layers=[len(plan.cores) - 1])
    return device
