"""Errors a user of the command line meets, reported as one plain message and a non-zero exit."""


class UserError(ValueError):
    """Bad options, unusable text, or a run directory that cannot be used."""


class CorpusError(UserError):
    """A problem with the user's text."""


class CheckpointError(UserError):
    """A run directory without a usable checkpoint."""
