"""Errors of :func:`rnnkit.onnx.export` that name the argument at fault.

Each carries ``argument`` ("opset", "lengths"), so the command line names its option (``--opset``,
``--lengths``) without reading the message; Python callers see an ordinary ``ValueError`` or
``TypeError``.
"""

from __future__ import annotations


class ExportArgumentError(Exception):
    """A value export's argument ``argument`` cannot take."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


class ExportValueError(ExportArgumentError, ValueError):
    """A value of the right type that this module's export cannot take."""


class ExportTypeError(ExportArgumentError, TypeError):
    """A value of the wrong type."""
