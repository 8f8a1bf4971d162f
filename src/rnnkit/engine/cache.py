"""The engine's compiled code is cached on disk under a stamp of the whole engine's source.

Numba keeps a function's compiled code until *its own* source file changes (the stamp in the
cache index is a hash of that one file), but the code also holds everything it calls and inlines
from other files: the LSTM's step loop holds ``vector.py``'s arithmetic and ``activations.py``'s
gate functions. After an edit or an update of one of those, a warm cache would go on running the
old code while a cold one compiles the new (numba/numba#1833), so the same call could give two
results. The engine's functions are therefore stamped with a hash of every source file of this
package: any change recompiles them all, once.

Numba finds where to cache a function through its list of cache locators; :class:`EngineLocator`
goes first, and for the engine's files keeps the directory Numba itself would choose (beside the
source, ``NUMBA_CACHE_DIR``, or the user's cache), changing only the stamp.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba.core import caching
from numba.core.caching import _CacheLocator

# The list of locators lives on CacheImpl (named _CacheImpl before Numba 0.62).
_CacheImpl = getattr(caching, "CacheImpl", None) or caching._CacheImpl

ENGINE = Path(__file__).resolve().parent


@functools.cache
def engine_stamp() -> str:
    """SHA-256 of every source file of the engine, names included."""
    h = hashlib.sha256()
    for path in sorted(ENGINE.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class EngineLocator(_CacheLocator):
    """Numba's own locator for a function of the engine, with the engine's stamp."""

    def __init__(self, inner: _CacheLocator) -> None:
        self._inner = inner

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_source_stamp(self):
        return engine_stamp()

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != ENGINE:
            return None                                  # not ours: Numba's next locator decides
        for locator in _CacheImpl._locator_classes:
            if locator is not cls:
                inner = locator.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner)
        return None


def install() -> None:
    """Put :class:`EngineLocator` first in Numba's list (before any engine function is decorated:
    Numba picks a function's locator when caching is enabled for it)."""
    if EngineLocator not in _CacheImpl._locator_classes:
        _CacheImpl._locator_classes.insert(0, EngineLocator)
