"""The argument parser of every rnnkit command: errors in two lines, as git words them.

An option the parser refuses is reported by the command it belongs to, in one line naming the
option and what was wrong, then one line pointing at the command's help::

    rnnkit train: error: unknown option --hiden (did you mean --hidden?)
    see 'rnnkit train --help'

Options are spelled out in full (never abbreviated), so a mistyped or shortened option fails loudly
and a new option never changes an old command; the closest spelling is suggested. An option with a
fixed set of values (``choices=``) names the values it accepts. ``rnnkit`` alone lists the commands
with their one-line summaries.
"""

from __future__ import annotations

import argparse
import difflib

from rnnkit.distributed import launcher_rank
from rnnkit.errors import EXIT_USAGE


def closest(word: str, candidates) -> str | None:
    """The candidate spelled most like ``word`` (difflib's ratio of at least 0.6), or None."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(word: str, candidates) -> str:
    best = closest(word, candidates)
    return f" (did you mean {best}?)" if best else ""


class Parser(argparse.ArgumentParser):
    """Every rnnkit parser (the subcommands' too, which argparse makes of the same class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    # Under mpiexec every process parses the same command line: the first one alone prints the
    # usage, the help and the errors; the others exit with the same code, silently.
    def print_usage(self, file=None) -> None:
        if launcher_rank() == 0:
            super().print_usage(file)

    def print_help(self, file=None) -> None:
        if launcher_rank() == 0:
            super().print_help(file)

    def exit(self, status: int = 0, message: str | None = None):
        super().exit(status, message if launcher_rank() == 0 else None)

    def error(self, message: str):
        """One line naming the problem and one pointing at the help; exit code 2 (no usage block)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nsee '{self.prog} --help'\n")

    def parse_known_args(self, args=None, namespace=None):
        """Arguments this parser does not know are its own error (argparse would hand them to the
        top-level parser, which reports them with its own usage and no suggestion)."""
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self._unknown(extras))
        return namespace, extras

    def _unknown(self, extras: list[str]) -> str:
        options = [s for action in self._actions for s in action.option_strings]
        for arg in extras:
            if arg.startswith("-") and len(arg) > 1:
                name = arg.split("=", 1)[0]
                return f"unknown option {name}{_did_you_mean(name, options)}"
        return f"unexpected argument{'s' if len(extras) > 1 else ''} {' '.join(map(repr, extras))}"

    def _check_value(self, action, value):
        """A value outside ``choices``: the accepted values and the closest one, in rnnkit's words."""
        if action.choices is None or value in action.choices:
            return
        names = [str(c) for c in action.choices]
        if isinstance(action, argparse._SubParsersAction):
            raise argparse.ArgumentError(None, f"unknown command {value!r}{_did_you_mean(str(value), names)}")
        raise argparse.ArgumentError(
            action, f"must be one of {', '.join(names)}, got {value!r}{_did_you_mean(str(value), names)}")


class TopParser(Parser):
    """``rnnkit``: its help is the list of commands, each with its one-line summary."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands: argparse._SubParsersAction | None = None

    def add_commands(self, **kwargs) -> argparse._SubParsersAction:
        # the commands' own parsers are plain Parsers: argparse would make them TopParsers (the
        # class of their parent), whose help is a list of commands they do not have
        kwargs.setdefault("parser_class", Parser)
        self.commands = self.add_subparsers(**kwargs)
        return self.commands

    def format_help(self) -> str:
        rows = [(a.dest, a.help or "") for a in self.commands._choices_actions] if self.commands else []
        width = max((len(name) for name, _ in rows), default=0)
        lines = [f"usage: {self.prog} COMMAND [options]", "", self.description or "", "", "commands:"]
        lines += [f"  {name:<{width}}  {summary}" for name, summary in rows]
        lines += ["", f"see '{self.prog} COMMAND --help' for the options of a command"]
        return "\n".join(lines) + "\n"
