"""Gradient mode: whether a forward call keeps what its backward pass needs.

Inside ``with rnnkit.no_grad():`` layers run inference only: they store no cache, so memory does
not grow with the sequence and ``backward`` afterwards is an error.
"""

from __future__ import annotations

import contextvars

# A context variable (not a global) so that threads and async tasks each have their own mode.
_GRAD_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("rnnkit_grad_enabled", default=True)


def is_grad_enabled() -> bool:
    """True unless called inside :func:`no_grad`."""
    return _GRAD_ENABLED.get()


class no_grad:  # noqa: N801 - named like the function it replaces, and like torch.no_grad
    """Context manager for inference: forward calls inside keep nothing for backward.

    A class rather than a generator-based context manager: entering and leaving costs ~0.3 µs
    instead of ~1.5 µs, which matters around one streaming step of a small cell (a few µs).
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _GRAD_ENABLED.set(False)

    def __exit__(self, *exc) -> None:
        _GRAD_ENABLED.reset(self._token)
