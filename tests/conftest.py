import sys
from pathlib import Path

import pytest

import rnnkit.engine
import rnnkit.scan
import rnnkit.stack

# Let test modules import the shared helpers (helpers.py, reference.py) beside them.
sys.path.insert(0, str(Path(__file__).parent))

# The modules that prove the layers correct run twice: once on the engine (compiled), once on the
# NumPy reference, so both implementations of each cell meet the same oracles.
BOTH_PATHS = {"test_gradcheck", "test_torch_parity", "test_reference", "test_stepwise"}


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__ in BOTH_PATHS:
        metafunc.parametrize("implementation", ["engine", "numpy"], indirect=True)


@pytest.fixture(autouse=True)
def implementation(request, monkeypatch):
    """In BOTH_PATHS modules: force one implementation; elsewhere: the default choice."""
    path = getattr(request, "param", None)
    if path == "engine" and not rnnkit.engine.enabled():
        pytest.fail("the engine is unavailable (Numba missing or RNNKIT_ENGINE=0)")
    if path is not None:
        chosen = rnnkit.engine if path == "engine" else rnnkit.scan
        monkeypatch.setattr(rnnkit.stack, "implementation", lambda: chosen)
    return path
