"""The PKI: built by uptls-certgen from fixtures/pki.toml, cached by content.

uptls-certgen itself skips the build when the description and its own
binary are unchanged (DIR/.stamp), so calling build() at every run costs a
few milliseconds once the PKI exists.
"""

import json
import os
import subprocess
import threading

from . import BIN, PKI_FILE, PKI_OUT, UptlsError


class Pki:
    def __init__(self, out_dir, manifest):
        self.dir = out_dir
        self.entities = manifest["entities"]

    def path(self, name, suffix):
        """Path of an entity's file: suffix is pem, key, chain.pem, crl or pass."""
        if name not in self.entities:
            raise UptlsError(f"no PKI entity '{name}' in {os.path.relpath(PKI_FILE)}")
        return os.path.join(self.dir, f"{name}.{suffix}")

    def entity(self, name):
        return self.entities[name]

    def bundle(self, run_dir, names, suffix):
        """Concatenate entities' files (CA lists, CRL lists) into one run file."""
        out = os.path.join(run_dir, "pki", "-".join(names) + "." + suffix)
        if not os.path.exists(out):
            os.makedirs(os.path.dirname(out), exist_ok=True)
            data = b"".join(open(self.path(n, suffix), "rb").read() for n in names)
            tmp = out + f".{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, out)
        return out


def build(pki_file=PKI_FILE, out_dir=PKI_OUT, certgen=None):
    certgen = certgen or os.path.join(BIN, "uptls-certgen")
    if not os.access(certgen, os.X_OK):
        raise UptlsError(f"{certgen} not built: run 'make' first")
    r = subprocess.run([certgen, "-i", pki_file, "-o", out_dir],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise UptlsError(f"uptls-certgen failed (exit {r.returncode}):\n"
                         f"{(r.stderr or r.stdout).strip()}")
    try:
        with open(os.path.join(out_dir, "manifest.json")) as f:
            return Pki(out_dir, json.load(f))
    except (OSError, ValueError) as e:
        raise UptlsError(f"{out_dir}/manifest.json unreadable after uptls-certgen: {e}") from None
