"""The errors a user of rnnkit meets, and the one place that words them.

A :class:`UserError` is the user's to fix — a bad option or argument, unusable text or data, a
file or run directory that cannot be used — and its message says which option or file, what was
expected, what was found and what to do. :func:`user_message` decides which exceptions are the
user's: every ``UserError``, a file the operating system will not let us read or write, and
running out of memory. The command line prints that message as one line,
``rnnkit CMD: error: ...``, and exits with code 2 (74 for a :class:`WriteFailed`: a file that could
not be written once the work had started); any other exception is a bug in rnnkit and keeps its
traceback.

The kinds of UserError more than one module raises or catches live here, one family each:

- files rnnkit wrote: :class:`FileError`, :class:`DamagedFile`, :class:`WriteFailed`, and the
  language model's checkpoints, :class:`CheckpointError` and its refinements;
- the user's data: :class:`CorpusError` (the language model's text), :class:`DataError` (the
  estimators' data files and bundled sets);
- the estimators' arguments and training: :class:`InputError`, :class:`TrainingDiverged`.

An error one module alone raises is defined beside it (``RunLocked`` in :mod:`rnnkit.lm.runlock`,
``MPIUnavailable`` in :mod:`rnnkit.distributed`, ...). The ONNX export's argument errors, which
are not the command line's, are :mod:`rnnkit.onnx.errors`.

:class:`Note` is a warning category for what the user should know while a command goes on (for
example that a damaged checkpoint was passed over for the other one); the command line prints it
as ``rnnkit CMD: note: ...``, and a Python caller sees an ordinary warning. :class:`Caution`, a
kind of Note, is for figures that would mislead without it; it prints as ``rnnkit CMD: warning:``.

An option the parser refuses is worded by :mod:`rnnkit.cli_parser`: the same ``error:`` line,
then one line pointing at the command's help.
"""

from __future__ import annotations

import errno

# The command line's exit codes (every process of an MPI job ends with the same one).
EXIT_FAILED = 1               # the command could not finish (diverged training, a bug)
EXIT_USAGE = 2                # a UserError, or a bad option (argparse's code)
EXIT_WRITE = 74               # a WriteFailed: a file could not be written (sysexits.h's EX_IOERR)
EXIT_INTERRUPTED = 130        # Ctrl-C: 128 + SIGINT, as a shell reports it


class UserError(ValueError):
    """Bad options, unusable input files, or a run directory that cannot be used."""


class FileError(UserError):
    """A file rnnkit wrote that cannot be read back: not readable, not UTF-8, not JSON
    (:mod:`rnnkit.files`; the language model's run directories refine it)."""


class DamagedFile(FileError):
    """A safetensors file that cannot be read: empty, truncated, not safetensors, damaged
    metadata or a tensor type NumPy cannot hold."""


class WriteFailed(UserError, OSError):
    """A file that could not be written (no space, no permission, a read-only file system, a
    directory that vanished): the message names the file, says what is intact and what to do.
    The command exits with :data:`EXIT_WRITE`, so that a script can tell it from a bad option.
    An OSError too, so that a Python caller's ``except OSError`` still catches a failed write."""
    exit_code = EXIT_WRITE


class CheckpointError(FileError):
    """A run directory without a usable checkpoint (a :class:`FileError` of its files, refined)."""


class DamagedCheckpoint(CheckpointError, DamagedFile):
    """A checkpoint file that cannot be read: not readable, empty, truncated, not safetensors,
    damaged metadata, or weights that are not finite numbers."""


class MismatchedCheckpoint(CheckpointError):
    """Weights that do not fit the run's config.json and vocab.json (or the run being resumed)."""


class CorpusError(UserError):
    """A problem with the user's text (the language model's corpus)."""


class DataError(UserError):
    """A data file, or the name of a bundled data set, that cannot be used; the message names the
    file (and line) or the name, and says what was expected and what was found."""


class InputError(UserError):
    """Bad input to an estimator — X, y, a history, extra series or a hyperparameter; the
    message names the argument, what was expected and what was found. A ``ValueError``, as
    scikit-learn's conventions and ``check_estimator`` expect."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss was not finite from the first epoch on: no weights worth keeping (also a
    ``FloatingPointError``, what NumPy raises for invalid arithmetic when asked to)."""


class Note(UserWarning):
    """Something the user should know that does not stop the command."""


class Caution(Note):
    """A result the user may misread: the command finishes, but its figures need this caveat
    (text the model mostly never saw, a run that overfits). Printed as ``rnnkit CMD: warning:``."""


# What to do about the operating-system errors a user can cause, by errno.
_OS_ADVICE = {
    errno.ENOENT: "check the path",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOSPC: "the disk is full; free some space",
    errno.EDQUOT: "the disk quota is used up; free some space",
    errno.EFBIG: "over this process's file size limit, ulimit -f: raise it",
    errno.EISDIR: "expected a file, found a directory",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "expected a directory, found a file",
    errno.ENAMETOOLONG: "shorten the path",
    errno.ELOOP: "the path has a loop of symbolic links",
}


def exit_code(exc: BaseException) -> int:
    """The exit code of an error the user can fix: 2, or the error's own (:class:`WriteFailed`: 74)."""
    return getattr(exc, "exit_code", EXIT_USAGE)


def os_problem(exc: OSError) -> str:
    """What an operating-system error says, in lower case, with what to do about it."""
    what = (exc.strerror or str(exc) or type(exc).__name__).lower()
    advice = _OS_ADVICE.get(exc.errno)
    return what + (f" ({advice})" if advice else "")


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug (a traceback)."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, MemoryError):
        detail = str(exc) or "no details"
        return f"out of memory ({detail}); choose smaller sizes (hidden units, batch, sequence length)"
    if isinstance(exc, OSError) and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        return f"{target}: {os_problem(exc)}"
    return None
