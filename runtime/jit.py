"""numba's ``njit`` with its on-disk cache, wherever a cache can be written.

numba keeps compiled kernels beside their source (``__pycache__``) or, where that is
read-only, in the user's cache folder. Where both are read-only (a system-wide install on a
read-only root, a service user without a writable home: a Raspberry Pi image) every
``cache=True`` function raised "cannot cache function ...: no locator available" when it
was defined, a traceback instead of a run. There the cache goes to a folder of this user's
under the temporary directory instead (``NUMBA_CACHE_DIR``, when set, is numba's first
choice and is kept). Imported only where numba is: importing it imports numba.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])


def fallback_cache_dir() -> Path:
    """Where the cache goes when numba finds no place of its own: one folder per user."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"flexsnn-numba-cache-{uid}"


def cached_njit(**options: Any) -> Callable[[F], F]:
    """``numba.njit(cache=True, **options)``, falling back to :func:`fallback_cache_dir`
    where numba has no writable cache location."""

    def decorate(fn: F) -> F:
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError as e:
            if "no locator available" not in str(e):
                raise
        # numba's first locator (UserProvidedCacheLocator) reads it at each definition
        numba.config.CACHE_DIR = str(fallback_cache_dir())  # type: ignore[attr-defined]
        return numba.njit(cache=True, **options)(fn)

    return decorate
