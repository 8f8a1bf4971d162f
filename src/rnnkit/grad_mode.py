"""Gradient mode: whether a forward call keeps what its backward pass needs.

Inside ``with rnnkit.no_grad():`` layers run inference only: they store no cache, so memory does
not grow with the sequence and ``backward`` afterwards is an error.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

# A context variable (not a global) so that threads and async tasks each have their own mode.
_GRAD_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("rnnkit_grad_enabled", default=True)


def is_grad_enabled() -> bool:
    """True unless called inside :func:`no_grad`."""
    return _GRAD_ENABLED.get()


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager for inference: forward calls inside keep nothing for backward."""
    token = _GRAD_ENABLED.set(False)
    try:
        yield
    finally:
        _GRAD_ENABLED.reset(token)
