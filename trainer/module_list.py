"""``ModuleListOf[M]``: an ``nn.ModuleList`` whose entries the type checker knows.

torch types a ModuleList's entries as ``nn.Module``, so a list of layers loses their own
methods (``step``, ``n_states``) to ``nn.Module.__getattr__``'s ``Tensor | Module``. At
run time ``ModuleListOf`` *is* ``nn.ModuleList`` (not a subclass: module trees, reprs,
state dicts and pickles stay as they were); only the checker sees a list of ``M``, with
the entry type taken from the modules it is built from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from torch import nn

M = TypeVar("M", bound=nn.Module)

if TYPE_CHECKING:

    class ModuleListOf(nn.ModuleList, Generic[M]):
        def __init__(self, modules: Iterable[M] | None = None) -> None: ...

        @overload
        def __getitem__(self, idx: slice) -> ModuleListOf[M]: ...

        @overload
        def __getitem__(self, idx: int) -> M: ...

        def __getitem__(self, idx: int | slice) -> M | ModuleListOf[M]: ...

        def __iter__(self) -> Iterator[M]: ...

else:
    ModuleListOf = nn.ModuleList
