"""The language model's errors, under the import path they had; they live in :mod:`rnnkit.errors`."""

from rnnkit.errors import CheckpointError, CorpusError, DamagedCheckpoint, MismatchedCheckpoint, Note, UserError

__all__ = ["CheckpointError", "CorpusError", "DamagedCheckpoint", "MismatchedCheckpoint", "Note", "UserError"]
