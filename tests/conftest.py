import sys
from pathlib import Path

# Let test modules import the shared helpers (helpers.py, reference.py) beside them.
sys.path.insert(0, str(Path(__file__).parent))
