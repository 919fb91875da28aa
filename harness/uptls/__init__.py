"""uptls: a conformance harness for a reverse proxy's upstream TLS.

The driver loads scenarios (scenarios/**/*.toml), builds the PKI with
uptls-certgen, starts mock backends (uptls-backend) and the target proxy
through its adapter, sends requests, reads what the backends observed on
the wire, and gives each scenario a verdict.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The result file's vocabulary (verdicts, fail kinds, TLS names) is the
# package reports/uptls_vocab, shared with the report writers, which run
# without the driver (see its docstring). A caller that put only harness/
# on the path (soak/soak.py) finds it all the same.
if os.path.join(ROOT, "reports") not in sys.path:
    sys.path.append(os.path.join(ROOT, "reports"))
# UPTLS_BIN_DIR: where uptls-certgen, uptls-backend and uptls-proxy are
# taken from (make asan points it at the sanitizer builds, build/asan/bin);
# UPTLS_PKI_OUT: where the PKI is built (so such a run keeps its own).
BIN = os.environ.get("UPTLS_BIN_DIR") or os.path.join(ROOT, "bin")
SCENARIO_DIR = os.path.join(ROOT, "scenarios")
PKI_FILE = os.path.join(ROOT, "fixtures", "pki.toml")
PKI_OUT = os.environ.get("UPTLS_PKI_OUT") or os.path.join(ROOT, "fixtures", "out")


class UptlsError(Exception):
    """A problem the user must fix, with a message that names what and where."""
