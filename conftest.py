# Puts the driver (harness/), the report writers (reports/) and the shared
# test infrastructure (tests/: testpki, helpers) on sys.path for every pytest
# run in this repository.
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
for sub in ("harness", "reports", "tests"):
    p = os.path.join(ROOT, sub)
    if p not in sys.path:
        sys.path.insert(0, p)
