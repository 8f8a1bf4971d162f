"""The recurrent cell kinds — RNN, LSTM, GRU — each described once, as data.

A :class:`CellKind` says everything that differs from one kind of cell to another (the spec,
/work/shared/spec/cells.md, gives the equations):

- its name (``"lstm"``: the ``cell`` of configurations and the command line) and title (``LSTM``:
  the layer, ``LSTMCell``, ``torch.nn.LSTM``, ONNX's ``LSTM`` operator);
- the gates, as PyTorch stacks their row blocks, which of them are sigmoids, and the order of the
  same blocks in ONNX and in Keras; the names of the state's parts (``h``, ``c``);
- its options (``peephole``, ``reset_after``, ...): default, check, the parameters a value adds,
  and whether PyTorch and ONNX's operator can express it;
- its implementations: the NumPy reference kernel (:mod:`rnnkit.kernels`) and the engine module
  whose jobs are registered against that kernel (:func:`register_jobs`), one :class:`Form` for
  the kind itself and one for each option value that needs kernels of its own.

Every list of cells in rnnkit is derived from :data:`KINDS`: the layers and cells, the command
lines' choices, the ONNX exporter and importer, rnnkit.torch, the language model and the sequence
estimators, the diagnostics and the benchmark. A new variant of a cell — say a layer-normalised
LSTM — is one :class:`Option` (its name, default, check and parameters), one :class:`Form`
(its reference kernel and the engine module that registers jobs for it) and those kernels.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rnnkit.checks import check_choice
from rnnkit.ranges import NONNEGATIVE_INT, PROBABILITY_BELOW_1

Shapes = list[tuple[str, tuple[int, ...]]]          # (field, shape) of a cell's parameters


def _no_params(value, hidden_size: int) -> Shapes:
    return []


@dataclass(frozen=True)
class Option:
    """One constructor argument of a kind beyond those every recurrent layer has."""

    name: str                                 # the argument, the layer's attribute, the config key
    default: Any
    check: Callable[[str, Any], Any]          # (name, value) -> the value as the layer keeps it, or an
                                              # error naming the option (a Range's check)
    params: Callable[[Any, int], Shapes] = _no_params   # (value, H) -> the parameters it adds
    layers_only: bool = False                 # an option of a stack (proj_size), not of a cell
    torch_lacks: str = ""                     # why torch.nn has no equivalent of a non-default value
    operator: bool = True                     # ONNX's recurrent operator computes a non-default value
    requires: tuple[tuple[str, Any], ...] = ()  # a non-default value needs these values of other options
    constants: tuple[tuple[str, float], ...] = ()  # parameters that start at a constant (LN gains at 1)
    kernel: bool = True                       # passed to the kernels (False: the layer draws masks from it)
    training_only: bool = False               # acts in training mode only: eval mode is the plain cell


@dataclass(frozen=True)
class Form:
    """The two implementations of one form of a kind: the NumPy reference kernel and the engine
    module whose jobs are registered against that kernel (imported on first use)."""

    kernel: type                              # kernel(hidden_size, **options)
    engine: str                               # module that calls register_jobs(kernel)
    when: tuple[tuple[str, Any], ...] = ()    # option values this form is for; (): the kind's own


@dataclass(frozen=True)
class CellKind:
    name: str                                 # "lstm"
    title: str                                # "LSTM": LSTM, LSTMCell, torch.nn.LSTM, ONNX's LSTM
    gates: tuple[str, ...]                    # PyTorch's row blocks of W_ih, W_hh, b_ih, b_hh
    gate_labels: tuple[str, ...]              # what each is ("forget gate")
    sigmoid_gates: tuple[str, ...]            # the gates that are σ(·) (the others: tanh or φ)
    states: tuple[str, ...]                   # the parts of the state: ("h",) or ("h", "c")
    onnx_gates: tuple[str, ...]               # the same blocks in ONNX's order (PyTorch's names)
    keras_gates: tuple[str, ...]              # ... and in Keras'
    options: tuple[Option, ...]
    forms: tuple[Form, ...]

    @property
    def num_gates(self) -> int:
        return len(self.gates)

    def labels(self) -> dict[str, str]:
        """Each gate's and state part's name in words: {"f": "forget gate f", "c": "cell state c", ...}."""
        return {name: f"{label} {name}" for name, label in
                [*zip(self.gates, self.gate_labels), *((s, STATE_LABELS[s]) for s in self.states)]}

    def gate(self, name: str, hidden_size: int) -> slice:
        """The rows of gate ``name`` in a stacked (G·H, ·) weight or (G·H,) bias."""
        k = self.gates.index(name)
        return slice(k * hidden_size, (k + 1) * hidden_size)

    def order(self, gates: tuple[str, ...]) -> list[int]:
        """PyTorch's block indices in the order of ``gates`` (``onnx_gates``, ``keras_gates``)."""
        return [self.gates.index(g) for g in gates]

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def check_options(self, given: Mapping[str, Any], cell: bool = False) -> dict[str, Any]:
        """Every option of the kind (of a single cell with ``cell``), checked; defaults for the
        missing ones."""
        own = [o for o in self.options if not (cell and o.layers_only)]
        unknown = sorted(set(given) - {o.name for o in own})
        if unknown:
            raise TypeError(f"{self.title}{'Cell' if cell else ''} has no option {unknown[0]!r}; its options: "
                            f"{', '.join(o.name for o in own) or 'none'}")
        values = {o.name: o.check(o.name, given.get(o.name, o.default)) for o in own}
        problems = self.combination_problems(values)
        if problems:
            raise ValueError(problems[0])
        return values

    def combination_problems(self, values: Mapping[str, Any], name: Callable[[str], str] = str) -> list[str]:
        """Options whose values cannot go together ("layer_norm=True cannot be combined with
        zoneout=0.1 in GRU ..."); ``name`` words a key (``--zoneout``, ``model.zoneout``)."""
        problems = []
        for o in self.options:
            if values.get(o.name, o.default) == o.default:
                continue
            for other, needed in o.requires:
                if other in values and values[other] != needed:
                    problems.append(f"{name(o.name)}={values[o.name]!r} cannot be combined with {name(other)}="
                                    f"{values[other]!r} in {self.title}: the spec defines it only with "
                                    f"{name(other)}={needed!r}")
        return problems

    def param_constants(self, options: Mapping[str, Any]) -> dict[str, float]:
        """The parameters these options add that start at a constant (field -> value); the others
        are drawn from U(−1/√H, 1/√H)."""
        return {field: value for o in self.options if options.get(o.name, o.default) != o.default
                for field, value in o.constants}

    def output_size(self, hidden_size: int, options: Mapping[str, Any]) -> int:
        """H_out, the size of h: the projection's P when the LSTM has one, else H."""
        return options.get("proj_size") or hidden_size

    def state_sizes(self, hidden_size: int, options: Mapping[str, Any]) -> tuple[int, ...]:
        """Sizes of the state's parts: h has H_out, the LSTM's cell c always H."""
        return tuple(self.output_size(hidden_size, options) if s == "h" else hidden_size for s in self.states)

    def param_shapes(self, input_size: int, hidden_size: int, bias: bool, options: Mapping[str, Any]) -> Shapes:
        """(field, shape) of one cell's parameters (one layer, one direction), in PyTorch's order."""
        GH = self.num_gates * hidden_size
        shapes = [("weight_ih", (GH, input_size)), ("weight_hh", (GH, self.output_size(hidden_size, options)))]
        if bias:
            shapes += [("bias_ih", (GH,)), ("bias_hh", (GH,))]
        for o in self.options:
            if o.name in options:
                shapes += o.params(options[o.name], hidden_size)
        return shapes

    def form(self, options: Mapping[str, Any]) -> Form:
        """The form for these options: the one whose ``when`` they match most closely."""
        matching = [f for f in self.forms if all(options.get(k) == v for k, v in f.when)]
        return max(matching, key=lambda f: len(f.when))

    def kernel(self, hidden_size: int, options: Mapping[str, Any]):
        """The reference kernel of one cell with these (checked) options: those passed to kernels,
        less those that choose the form (``layer_norm``: the form is their value)."""
        chooses = {k for f in self.forms for k, _ in f.when}
        return self.form(options).kernel(hidden_size, **{o.name: options[o.name] for o in self.options
                                                         if o.kernel and o.name in options and o.name not in chooses})

    def torch_lacks(self, options: Mapping[str, Any], training: bool = False) -> str | None:
        """Why torch.nn has no equivalent of a cell with these options ("has peephole ..."), or None.
        A training-only option (recurrent dropout) lacks one in training mode only: in eval mode
        the cell is the plain one, which torch.nn has."""
        return next((o.torch_lacks for o in self.options if o.torch_lacks and options.get(o.name, o.default)
                     != o.default and (training or not o.training_only)), None)

    def torch_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options torch.nn's namesake takes as arguments (those it has an equivalent of)."""
        return {o.name: options[o.name] for o in self.options if not o.torch_lacks and o.name in options}

    def operator_computes(self, options: Mapping[str, Any]) -> bool:
        """Whether ONNX's recurrent operator computes a cell with these options (in eval mode, the
        mode of an exported graph: a training-only option is the plain cell there)."""
        return all(o.operator or o.training_only or options.get(o.name, o.default) == o.default
                   for o in self.options)


# -- the options ----------------------------------------------------------------------------------

def _as_bool(name: str, value) -> bool:
    return bool(value)


NONLINEARITIES = ("tanh", "relu")


def _nonlinearity(name: str, value) -> str:
    return check_choice(name, value, NONLINEARITIES)


PROJ_SIZE = Option("proj_size", 0, NONNEGATIVE_INT.check, layers_only=True, operator=False,
                   params=lambda P, H: [("weight_hr", (P, H))] if P else [])
PEEPHOLE = Option("peephole", False, _as_bool,
                  params=lambda on, H: [(f"weight_c{g}", (H,)) for g in "ifo"] if on else [],
                  torch_lacks="has peephole connections (weight_ci/cf/co); PyTorch's nn.{name} has none")
RESET_AFTER = Option("reset_after", True, _as_bool,
                     torch_lacks="is Cho's original GRU (reset_after=False: the reset gate acts before the "
                                 "recurrent product); PyTorch's nn.{name} computes only the reset-after form")
NONLINEARITY = Option("nonlinearity", "tanh", _nonlinearity)


# Dropout inside the recurrence (rnnkit.inner_dropout): masks the layer draws, no kernels of their own.
RECURRENT_DROPOUT = Option(
    "recurrent_dropout", 0.0, PROBABILITY_BELOW_1.check, kernel=False, training_only=True,
    torch_lacks="has recurrent_dropout (a mask on the state entering W_hh in training mode), which PyTorch's "
                "nn.{name} lacks; in eval mode it is the plain layer: call .eval() before converting")
ZONEOUT = Option(
    "zoneout", 0.0, PROBABILITY_BELOW_1.check, kernel=False, operator=False,
    torch_lacks="has zoneout (in eval mode h_t = p·h_{{t-1}} + (1 − p)·h̃_t), which PyTorch's nn.{name} lacks")
INNER_DROPOUT = (RECURRENT_DROPOUT, ZONEOUT)
# The layer-normalised kernels and engine jobs take no inner-dropout masks: refused together.
NO_INNER_DROPOUT = (("recurrent_dropout", 0.0), ("zoneout", 0.0))


def layer_norm_option(gates: int, cell_state: bool, requires: tuple[tuple[str, Any], ...] = ()) -> Option:
    """``layer_norm=True`` (the spec's layer-normalised cells): gains γ_ih, γ_hh (G·H) on the two
    products and, with a cell state, LN of c_t with gain γ_c and shift β_c (H); gains start at 1,
    the shift at 0."""
    def params(on, H):
        if not on:
            return []
        shapes = [("ln_weight_ih", (gates * H,)), ("ln_weight_hh", (gates * H,))]
        return shapes + ([("ln_weight_c", (H,)), ("ln_bias_c", (H,))] if cell_state else [])
    return Option("layer_norm", False, _as_bool, params=params, requires=requires, operator=False,
                  constants=(("ln_weight_ih", 1.0), ("ln_weight_hh", 1.0))
                  + ((("ln_weight_c", 1.0), ("ln_bias_c", 0.0)) if cell_state else ()),
                  torch_lacks="is layer-normalised (layer_norm=True); torch.nn has no layer-normalised {name}")


# -- the kinds ------------------------------------------------------------------------------------

STATE_LABELS = {"h": "hidden state", "c": "cell state"}

def _kinds() -> dict[str, CellKind]:
    from rnnkit.kernels.gru import GRUKernel, LayerNormGRUKernel
    from rnnkit.kernels.lstm import LayerNormLSTMKernel, LSTMKernel
    from rnnkit.kernels.rnn import LayerNormRNNKernel, RNNKernel
    ln = (("layer_norm", True),)
    kinds = [                                 # in the spec's order
        CellKind("rnn", "RNN", gates=("h",), gate_labels=("hidden state",), sigmoid_gates=(), states=("h",),
                 onnx_gates=("h",), keras_gates=("h",),
                 options=(NONLINEARITY, *INNER_DROPOUT, layer_norm_option(1, False, NO_INNER_DROPOUT)),
                 forms=(Form(RNNKernel, "rnnkit.engine.rnn"), Form(LayerNormRNNKernel, "rnnkit.engine.ln_rnn", ln))),
        CellKind("lstm", "LSTM", gates=("i", "f", "g", "o"),
                 gate_labels=("input gate", "forget gate", "candidate", "output gate"),
                 sigmoid_gates=("i", "f", "o"), states=("h", "c"),
                 onnx_gates=("i", "o", "f", "g"), keras_gates=("i", "f", "g", "o"),
                 options=(PROJ_SIZE, PEEPHOLE, *INNER_DROPOUT,
                          layer_norm_option(4, True, (("proj_size", 0), ("peephole", False), *NO_INNER_DROPOUT))),
                 forms=(Form(LSTMKernel, "rnnkit.engine.lstm"), Form(LayerNormLSTMKernel, "rnnkit.engine.ln_lstm", ln))),
        CellKind("gru", "GRU", gates=("r", "z", "n"), gate_labels=("reset gate", "update gate", "candidate"),
                 sigmoid_gates=("r", "z"), states=("h",),
                 onnx_gates=("z", "r", "n"), keras_gates=("z", "r", "n"),
                 options=(RESET_AFTER, *INNER_DROPOUT, layer_norm_option(3, False, (("reset_after", True), *NO_INNER_DROPOUT))),
                 forms=(Form(GRUKernel, "rnnkit.engine.gru"), Form(LayerNormGRUKernel, "rnnkit.engine.ln_gru", ln))),
    ]
    return {k.name: k for k in kinds}


KINDS: dict[str, CellKind] = _kinds()
NAMES: tuple[str, ...] = tuple(KINDS)          # rnn, lstm, gru: the spec's order
# lstm, gru, rnn: the order the language model and the benchmark offer them, most gates first
# (the gated cells are the ones that model text).
GATED_FIRST: tuple[str, ...] = tuple(sorted(NAMES, key=lambda n: -KINDS[n].num_gates))
BY_TITLE: dict[str, CellKind] = {k.title: k for k in KINDS.values()}


def kind(name: str) -> CellKind:
    """The kind called ``name`` ("lstm", "gru", "rnn"), or a ValueError listing them."""
    return KINDS[check_choice("cell", name, GATED_FIRST)]


def kind_of_kernel(kernel) -> CellKind:
    for k in KINDS.values():
        if any(isinstance(kernel, f.kernel) for f in k.forms):
            return k
    raise TypeError(f"not a kernel of any cell kind: {type(kernel).__name__}")


def option_problems(cell: str, values: Mapping[str, Any], name: Callable[[str], str] = str) -> list[str]:
    """Options given a non-default value for a kind that does not have them: "peephole applies to
    the lstm cell only, got cell 'gru'" (``name`` words a key: ``--peephole``, ``model.peephole``);
    else the values that cannot go together (:meth:`CellKind.combination_problems`)."""
    if not isinstance(cell, str) or cell not in KINDS:
        return []
    problems = []
    for option in {o.name: o for k in KINDS.values() for o in k.options}.values():
        value = values.get(option.name, option.default)
        if KINDS[cell].option(option.name) is None and value != option.default:
            owners = [k.name for k in KINDS.values() if k.option(option.name) is not None]
            problems.append(f"{name(option.name)} applies to the {' and '.join(owners)} cell only, "
                            f"got {name('cell')} {cell!r}")
    return problems or KINDS[cell].combination_problems(values, name)


# -- the classes and engine jobs registered against the kinds --------------------------------------

_CLASSES: dict[tuple[str, bool], type] = {}          # (kind name, is a single cell) -> class
_JOBS: dict[type, Callable] = {}                     # reference kernel class -> its engine jobs (class or factory)


def register_class(cls: type, kind_: CellKind, cell: bool) -> None:
    """Called for RNN/LSTM/GRU and their cells as they are defined (``RecurrentBase``, ``CellBase``)."""
    _CLASSES[(kind_.name, cell)] = cls


def layer_class(name: str) -> type:
    """rnnkit.RNN / LSTM / GRU for ``name``."""
    import rnnkit.layers  # noqa: F401  (defining the layers registers them)
    return _CLASSES[(kind(name).name, False)]


def cell_class(name: str) -> type:
    """rnnkit.RNNCell / LSTMCell / GRUCell for ``name``."""
    import rnnkit.cells  # noqa: F401
    return _CLASSES[(kind(name).name, True)]


def register_jobs(kernel_class: type) -> Callable[[type], type]:
    """Decorator, in an engine module: the engine's jobs of ``kernel_class``'s cells (a class, or a
    function of the kernel that returns the jobs of its form)."""
    def decorate(jobs: type) -> type:
        _JOBS[kernel_class] = jobs
        return jobs
    return decorate


def jobs_for(kernel):
    """The engine's jobs of a reference kernel (its module imported on first use)."""
    cls = type(kernel)
    if cls not in _JOBS:
        k = kind_of_kernel(kernel)
        importlib.import_module(next(f.engine for f in k.forms if f.kernel is cls))
    return _JOBS[cls](kernel)
