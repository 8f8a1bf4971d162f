"""rnnkit.kinds: each cell kind described once, and everything that lists cells derived from it."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
import rnnkit.backend
from rnnkit import kinds
from rnnkit.kernels import GRUKernel, LSTMKernel, RNNKernel


def test_the_kinds_in_the_specs_order_and_most_gates_first():
    assert kinds.NAMES == ("rnn", "lstm", "gru")
    assert kinds.GATED_FIRST == ("lstm", "gru", "rnn")
    assert {k.title: k.name for k in kinds.KINDS.values()} == {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}


@pytest.mark.parametrize("name", kinds.NAMES)
def test_gate_orders_are_permutations_of_the_gates(name):
    kind = kinds.KINDS[name]
    assert sorted(kind.onnx_gates) == sorted(kind.gates) == sorted(kind.keras_gates)
    assert set(kind.sigmoid_gates) <= set(kind.gates) and kind.states[0] == "h"


def test_gate_orders_are_the_formats_own():
    """PyTorch i, f, g, o / r, z, n; ONNX i, o, f, c / z, r, h (as PyTorch's blocks 0 3 1 2 / 1 0 2)."""
    assert kinds.KINDS["lstm"].order(kinds.KINDS["lstm"].onnx_gates) == [0, 3, 1, 2]
    assert kinds.KINDS["gru"].order(kinds.KINDS["gru"].onnx_gates) == [1, 0, 2]
    assert kinds.KINDS["gru"].order(kinds.KINDS["gru"].keras_gates) == [1, 0, 2]
    assert kinds.KINDS["lstm"].gate("f", 5) == slice(5, 10)


@pytest.mark.parametrize("name,options", [
    ("rnn", {"nonlinearity": "relu"}), ("lstm", {"proj_size": 2, "peephole": True}), ("gru", {"reset_after": False}),
])
def test_layers_and_cells_take_their_parameters_from_the_kind(name, options):
    kind = kinds.KINDS[name]
    layer = kinds.layer_class(name)(3, 4, rng=0, **options)
    checked = kind.check_options(options)
    assert [(n, p.shape) for n, p in layer.named_parameters()] == \
        [(f"{field}_l0", shape) for field, shape in kind.param_shapes(3, 4, True, checked)]
    assert layer.options == checked and all(getattr(layer, k) == v for k, v in checked.items())
    cell_options = {k: v for k, v in options.items() if not kind.option(k).layers_only}
    cell = kinds.cell_class(name)(3, 4, rng=0, **cell_options)
    assert [(n, p.shape) for n, p in cell.named_parameters()] == kind.param_shapes(3, 4, True, cell.options)
    assert type(layer).__name__ == kind.title and type(cell).__name__ == kind.title + "Cell"


def test_each_kernel_has_engine_jobs_registered_against_it():
    for kernel in (LSTMKernel(4, 0, False), GRUKernel(4, False), RNNKernel(4, "relu")):
        jobs = kinds.jobs_for(kernel)
        assert jobs.kernel is kernel and kinds.kind_of_kernel(kernel).forms[0].kernel is type(kernel)


def test_options_are_checked_before_any_kernel_is_built():
    with pytest.raises(TypeError, match="proj_size must be an integer >= 0, got str 'x'"):
        rnnkit.LSTM(3, 4, proj_size="x")
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        rnnkit.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="GRUCell has no option 'peephole'"):
        kinds.KINDS["gru"].check_options({"peephole": True}, cell=True)
    assert kinds.option_problems("gru", {"peephole": True}) == ["peephole applies to the lstm cell only, got cell 'gru'"]
    with pytest.raises(ValueError, match="cell must be one of lstm, gru, rnn, got 'tcn'"):
        kinds.kind("tcn")


def test_backend_use_moves_every_layer_and_restores_the_default():
    default = rnnkit.backend.current()
    with rnnkit.backend.use("numpy") as chosen:
        assert rnnkit.backend.current() is chosen is rnnkit.backend.NUMPY
        from rnnkit.engine import matmul
        a = np.arange(6.0).reshape(2, 3)
        np.testing.assert_array_equal(matmul(a, a, trans_b=True), a @ a.T)
    assert rnnkit.backend.current() is default
    with pytest.raises(ValueError, match="backend must be 'engine' or 'numpy', got 'gpu'"):
        with rnnkit.backend.use("gpu"):
            pass
