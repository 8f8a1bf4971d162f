import sys
from pathlib import Path

import pytest

import rnnkit.backend
import rnnkit.engine

# Let test modules import the shared helpers (helpers.py, reference.py) beside them.
sys.path.insert(0, str(Path(__file__).parent))

BACKENDS = ("engine", "numpy")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "both_backends: run each test twice, on the engine (compiled) and on the NumPy reference, "
                   "so that both implementations of each cell meet the same oracles")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def backend(request):
    """Under the both_backends marker (``pytestmark = pytest.mark.both_backends``): everything on one
    backend for the test (rnnkit.backend.use); elsewhere the default choice (None)."""
    name = getattr(request, "param", None)
    if name is None:
        yield None
        return
    if name == "engine" and not rnnkit.engine.enabled():
        pytest.fail("the engine is unavailable (Numba missing or RNNKIT_ENGINE=0)")
    with rnnkit.backend.use(name):
        yield name


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    """The engine on one thread, or two sharing even tiny steps (helpers.engine_threads)."""
    from helpers import engine_threads
    with engine_threads(request.param):
        yield request.param
