"""The recurrent layers' regularising options that the language model, the estimators and the
diagnostics pass through: ``layer_norm``, ``recurrent_dropout``, ``zoneout`` (the spec's names).

Each is handed to the layer's constructor only when it is not at its default (its value when
off), so a plain model is built exactly as before; a non-default value for a layer whose
constructor has no such argument (a version of rnnkit without the option, or a cell kind that
lacks it) is reported by name before anything is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from rnnkit.ranges import PROBABILITY_BELOW_1

LAYER_FLAGS = {"layer_norm": False, "recurrent_dropout": 0.0, "zoneout": 0.0}     # name -> value when off


def layer_accepts(cell: str, flag: str) -> bool:
    """Whether rnnkit's layer of kind ``cell`` ("lstm", "gru", "rnn") takes the argument ``flag``."""
    from rnnkit.kinds import KINDS, layer_class
    return KINDS[cell].option(flag) is not None or flag in inspect.signature(layer_class(cell)).parameters


def set_flags(values: Mapping) -> dict:
    """The LAYER_FLAGS of ``values`` that are not at their defaults (what the layers are given)."""
    return {flag: values[flag] for flag, off in LAYER_FLAGS.items() if flag in values and values[flag] != off}


def flag_problems(cell, values: Mapping, name: Callable[[str], str] = str) -> list[str]:
    """What is wrong with the LAYER_FLAGS in ``values`` (any subset) for layers of kind ``cell``:
    their types and ranges, and a non-default value the layer has no argument for."""
    from rnnkit.kinds import KINDS
    problems = []
    for flag, off in LAYER_FLAGS.items():
        if flag not in values:
            continue
        value = values[flag]
        if isinstance(off, bool) and not isinstance(value, bool):
            problems.append(f"{name(flag)} must be true or false, got {value!r}")
        elif not isinstance(off, bool) and (p := PROBABILITY_BELOW_1.problem(name(flag), value)) is not None:
            problems.append(p)
        elif value != off and cell in KINDS and not layer_accepts(cell, flag):
            problems.append(f"{name(flag)} needs recurrent layers with the {flag} option, which this version of "
                            f"rnnkit's {KINDS[cell].title} does not have")
    return problems
