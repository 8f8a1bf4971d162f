import sys
from pathlib import Path

import pytest

import rnnkit.compiled

# Let test modules import the shared helpers (helpers.py, reference.py) beside them.
sys.path.insert(0, str(Path(__file__).parent))

# The modules that prove the layers correct run twice: once with every loop compiled (whatever its
# size), once with every loop in NumPy, so both implementations of each cell meet the same oracles.
BOTH_LOOPS = {"test_gradcheck", "test_torch_parity", "test_reference", "test_stepwise"}


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__ in BOTH_LOOPS:
        metafunc.parametrize("loop_path", ["compiled", "numpy"], indirect=True)


@pytest.fixture(autouse=True)
def loop_path(request, monkeypatch):
    """In BOTH_LOOPS modules: force one loop implementation; elsewhere: leave the size rule alone."""
    path = getattr(request, "param", None)
    if path == "compiled" and not rnnkit.compiled.enabled():
        pytest.fail("the compiled loops are unavailable (Numba missing or RNNKIT_JIT=0)")
    if path is not None:
        monkeypatch.setattr(rnnkit.compiled, "MAX_STEP_MACS", 1 << 62 if path == "compiled" else -1)
    return path
