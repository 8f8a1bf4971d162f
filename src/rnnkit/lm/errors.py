"""Errors of the language-model commands: unusable text and unusable run directories.

``UserError`` lives in :mod:`rnnkit.errors` (shared by every command) and is re-exported here.
"""

from rnnkit.errors import DamagedFile, FileError, Note, UserError

__all__ = ["CheckpointError", "CorpusError", "DamagedCheckpoint", "MismatchedCheckpoint", "Note", "UserError"]


class CorpusError(UserError):
    """A problem with the user's text."""


class CheckpointError(FileError):
    """A run directory without a usable checkpoint (a :class:`FileError` of its files, refined)."""


class DamagedCheckpoint(CheckpointError, DamagedFile):
    """A checkpoint file that cannot be read: not readable, empty, truncated, not safetensors,
    damaged metadata, or weights that are not finite numbers."""


class MismatchedCheckpoint(CheckpointError):
    """Weights that do not fit the run's config.json and vocab.json (or the run being resumed)."""
