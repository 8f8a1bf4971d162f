"""The errors a user of the command line meets, and the one place that words them.

A :class:`UserError` is the user's to fix — a bad option, an unusable file, a run directory that
cannot be used — and its message says which option or file, what was expected, what was found and
what to do. :func:`user_message` decides which exceptions are the user's: every ``UserError``, a
file the operating system will not let us read or write, and running out of memory. The command
line prints that message as one line, ``rnnkit CMD: error: ...``, and exits with code 2; any other
exception is a bug in rnnkit and keeps its traceback.

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
EXIT_INTERRUPTED = 130        # Ctrl-C: 128 + SIGINT, as a shell reports it


class UserError(ValueError):
    """Bad options, unusable input files, or a run directory that cannot be used."""


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
    errno.EISDIR: "expected a file, found a directory",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "expected a directory, found a file",
    errno.ENAMETOOLONG: "shorten the path",
    errno.ELOOP: "the path has a loop of symbolic links",
}


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug (a traceback)."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, MemoryError):
        detail = str(exc) or "no details"
        return f"out of memory ({detail}); choose smaller sizes (hidden units, batch, sequence length)"
    if isinstance(exc, OSError) and exc.filename is not None:
        what = exc.strerror or type(exc).__name__
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        advice = _OS_ADVICE.get(exc.errno)
        return f"{target}: {what.lower()}" + (f" ({advice})" if advice else "")
    return None
