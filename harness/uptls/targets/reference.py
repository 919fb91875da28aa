"""uptls-proxy, the reference proxy: the proxy_ssl_* directives as documented.

It reads the same nginx configuration the nginx adapter renders (the
subset it supports), so one renderer serves both; what differs is the
binary, its version line, and the fault switches the harness's own tests
turn on to prove that each scenario can fail.
"""

import os
import re
import subprocess

from .. import BIN
from .base import TargetStartError
from .nginx import NginxTarget


class ReferenceTarget(NginxTarget):
    name = "reference"
    binary_name = "uptls-proxy"

    def find_binary(self):
        path = self.target_bin or os.path.join(BIN, "uptls-proxy")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise TargetStartError(f"{path}: uptls-proxy is not built (run 'make') "
                                   "or TARGET_BIN points at nothing executable")
        self.binary = os.path.abspath(path)
        return self.binary

    def version_info(self):
        r = subprocess.run([self.binary, "-v"], capture_output=True, text=True, timeout=10)
        text = (r.stderr + r.stdout).strip()
        m = re.search(r"version (\S+)", text)
        ssl = re.search(r"(OpenSSL \d\S*)", text)
        return {"name": self.name, "version": m.group(1) if m else "?", "binary": self.binary,
                "openssl": ssl.group(1) if ssl else "?", "detail": text,
                "faults": list(self.faults)}

    def documented_default_protocols(self):
        # uptls-proxy implements the current nginx documentation.
        return NginxTarget.documented_default_protocols_for((9, 9, 9))

    def http_preamble(self, run_dir):
        return []

    def argv(self, conf_path):
        argv = [self.binary, "-p", self.run_dir, "-c", conf_path]
        for f in self.faults:
            argv += ["--fault", f]
        return argv
