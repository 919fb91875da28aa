"""Throwaway PKIs for the component tests, made with the openssl CLI.

The scenarios' PKI is fixtures/pki.toml, built by uptls-certgen; the tests
of certgen, the backend and the proxy must not depend on the program under
test to make their certificates, so they make their own here: EC P-256,
valid from now for a few days, one `openssl req` per certificate.

    pki = Pki(folder)
    pki.ca("root")                                   # root.pem, root.key
    pki.ca("int", issuer="root")
    pki.leaf("server", "int", chain=("int",))        # server.pem/.key/.chain.pem
    pki.leaf("client", "root", san=None, client=True)

Files are named NAME.pem (the certificate), NAME.key (its key, PEM,
unencrypted) and, for a leaf, NAME.chain.pem (it and the chain given).
Exact validity dates and CRLs need `openssl ca` and its database
(ca_command, leaf_until).
"""

import subprocess
import time
from pathlib import Path

SAN = "DNS:localhost"
DAYS = 3


def utc(t):
    """A time.time() value as openssl ca's dates take it."""
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


def openssl(*args, cwd):
    """Run the openssl CLI in cwd; a failure raises with openssl's own message."""
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


class Pki:
    def __init__(self, folder):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)

    def openssl(self, *args):
        return openssl(*args, cwd=self.dir)

    def path(self, name, kind="pem"):
        return self.dir / f"{name}.{kind}"

    def ca(self, name, issuer=None, subject=None):
        """A CA certificate: self-signed (a root) without issuer."""
        self._cert(name, issuer, subject, ["basicConstraints=critical,CA:TRUE",
                                           "keyUsage=critical,keyCertSign,cRLSign"])

    def leaf(self, name, issuer=None, san=SAN, client=False, chain=(), subject=None,
             chain_file=None):
        """An end-entity certificate for a server (serverAuth, the SAN given)
        or a client (clientAuth). issuer None: self-signed. Writes
        NAME.chain.pem (or chain_file): it, then the chain's certificates."""
        ext = ["basicConstraints=CA:FALSE",
               f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
        if san:
            ext.append(f"subjectAltName={san}")
        self._cert(name, issuer, subject, ext)
        text = self.path(name).read_text()
        for c in chain:
            text += self.path(c).read_text()
        (self.dir / (chain_file or f"{name}.chain.pem")).write_text(text)

    def ca_command(self, db, issuer):
        """The start of an `openssl ca -batch` command signing (or revoking,
        or writing CRLs) as issuer, with a database of its own named db
        (made empty on first use)."""
        d = self.dir / f"{db}-ca"
        if not d.is_dir():
            d.mkdir()
            (d / "index.txt").write_text("")
            (d / "serial").write_text("1000\n")
            (d / "crlnumber").write_text("1000\n")
        (self.dir / f"{db}-ca.cnf").write_text(
            f"[ca]\ndefault_ca = c\n[c]\ndatabase = {db}-ca/index.txt\n"
            f"new_certs_dir = {db}-ca\nserial = {db}-ca/serial\n"
            f"crlnumber = {db}-ca/crlnumber\ndefault_md = sha256\n"
            "policy = p\nunique_subject = no\n[p]\ncommonName = supplied\n")
        return ["ca", "-batch", "-config", f"{db}-ca.cnf", "-cert", f"{issuer}.pem",
                "-keyfile", f"{issuer}.key"]

    def leaf_until(self, name, issuer, not_after, san=SAN):
        """A server leaf valid from a minute ago until not_after (a
        time.time() value, to the second): NAME.key, NAME.chain.pem."""
        ext = self.path(name, "ext")
        ext.write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                       f"subjectAltName={san}\n")
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={name}")
        self.openssl(*self.ca_command(name, issuer), "-in", f"{name}.csr",
                     "-out", f"{name}.chain.pem", "-notext", "-extfile", ext.name,
                     "-startdate", utc(time.time() - 60), "-enddate", utc(not_after))

    def encrypt_key(self, name, out, password):
        """NAME.key encrypted (AES-256) with password into the file out."""
        self.openssl("pkey", "-in", f"{name}.key", "-aes256", "-passout", f"pass:{password}",
                     "-out", out)

    def _cert(self, name, issuer, subject, ext):
        # Our own config: the extensions are exactly these (plus the key
        # identifiers openssl adds), none from the system's openssl.cnf.
        cnf = self.path(name, "cnf")
        cnf.write_text("[req]\ndistinguished_name = dn\n[dn]\n[ext]\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
                       + "".join(line + "\n" for line in ext))
        args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-config", cnf.name, "-extensions", "ext", "-utf8",
                "-subj", subject or f"/CN={name}", "-days", str(DAYS),
                "-keyout", f"{name}.key", "-out", f"{name}.pem"]
        if issuer:
            args += ["-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key"]
        self.openssl(*args)
