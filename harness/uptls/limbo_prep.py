"""Files for the limbo cases a target will run: time check, keys, bundles.

- Time: the proxy verifies at its own clock. A case runs only when every
  certificate and CRL of it is valid at the run's clock exactly when it is
  valid at the case's validation_time (absent: the run's clock), so the
  time checks give the answer they would give then. Otherwise the case is
  unsupported, naming the certificate. (No target is shifted in time: a
  libfaketime run of each target, the issue's optional way, is not done.)
- Keys: a case with peer_certificate_key uses it; one without (older files,
  online cases) is re-keyed by `uptls-certgen -R` (certgen_rekey.c), which
  also proves OpenSSL parses every trusted certificate and CRL (one file a
  proxy cannot load would stop a whole batch's configuration).
"""

import base64
import datetime
import os
import re
import subprocess

from . import BIN, UptlsError
from .limbo import entities, parse_time
from .pki import Pki

PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)-----END \1-----", re.S)


class LimboPki(Pki):
    """The PKI interface the runner and adapters use (pki.Pki), over the
    files of a suite's cases: NAME.pem, NAME.chain.pem, NAME.key, NAME.crl."""

    def __init__(self, out_dir, ents):
        super().__init__(out_dir, {"entities": ents})

    def bundle(self, run_dir, names, suffix):
        if len(names) == 1:  # one case's bundle is already one file
            return self.path(names[0], suffix)
        out = os.path.join(run_dir, "pki", "-".join(names) + "." + suffix)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            for n in names:
                with open(self.path(n, suffix), "rb") as g:
                    f.write(g.read())
        return out


# -- validity, read from the DER itself -------------------------------------------
def _tlv(b, i):
    tag, n = b[i], b[i + 1]
    j = i + 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(b[j:j + k], "big")
        j += k
    if j + n > len(b):
        raise ValueError("truncated DER")
    return tag, j, j + n


def _children(b, start, end):
    out, i = [], start
    while i < end:
        tag, s, e = _tlv(b, i)
        out.append((tag, s, e))
        i = e
    return out


def _asn1_time(tag, raw):
    text = raw.decode("ascii")
    if tag == 0x17:                      # UTCTime YYMMDDHHMMSSZ (RFC 5280 4.1.2.5.1)
        yy = int(text[:2])
        text = ("19" if yy >= 50 else "20") + text
    elif tag != 0x18:                    # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"not a time (tag {tag:#x})")
    return datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(
        tzinfo=datetime.timezone.utc)


def validity(der, crl=False):
    """(notBefore, notAfter) of a certificate; (thisUpdate, nextUpdate or
    None) of a CRL."""
    _, s, e = _tlv(der, 0)
    _, ts, te = _tlv(der, s)
    kids = _children(der, ts, te)
    if crl:
        if kids[0][0] == 0x02:           # version
            kids = kids[1:]
        times = [k for k in kids[2:4] if k[0] in (0x17, 0x18)]
    else:
        if kids[0][0] == 0xA0:
            kids = kids[1:]
        times = _children(der, kids[3][1], kids[3][2])
    t = [_asn1_time(tag, der[a:b]) for tag, a, b in times]
    return t[0], (t[1] if len(t) > 1 else None)


def pem_der(pem):
    m = PEM_RE.search(pem)
    if not m:
        raise ValueError("no PEM block")
    return base64.b64decode("".join(m.group(2).split()))


def _valid_at(window, t):
    lo, hi = window
    return lo <= t and (hi is None or t <= hi)


def time_unsupported(case, now):
    """None, or why the case cannot be verified at the run's clock."""
    when = parse_time(case.validation_time) if case.validation_time else now
    if when == now:
        return None
    objs = [("peer certificate", case.peer_certificate, False)]
    objs += [(f"untrusted intermediate #{i}", p, False)
             for i, p in enumerate(case.untrusted_intermediates, 1)]
    objs += [(f"trusted certificate #{i}", p, False) for i, p in enumerate(case.trusted_certs, 1)]
    objs += [(f"CRL #{i}", p, True) for i, p in enumerate(case.crls, 1)]
    for what, pem, crl in objs:
        try:
            win = validity(pem_der(pem), crl)
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            return f"{what}: its validity cannot be read ({e}), so the time cannot be checked"
        if _valid_at(win, when) != _valid_at(win, now):
            lo, hi = (w.strftime("%Y-%m-%dT%H:%M:%SZ") if w else "none" for w in win)
            then, at_now = ("valid" if _valid_at(win, t) else "not valid" for t in (when, now))
            return (f"validation_time {when:%Y-%m-%dT%H:%M:%SZ}: the {what} ({lo} .. {hi}) is "
                    f"{then} then but {at_now} at the run's clock ({now:%Y-%m-%dT%H:%M:%SZ}); the "
                    "target verifies at its own clock and uptls does not shift it")
    return None


# -- files -------------------------------------------------------------------------
def _write(path, text, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _nl(pem):
    return pem if pem.endswith("\n") else pem + "\n"


def prepare(cases, out_dir, certgen=None):
    """Write every case's files into out_dir; return (LimboPki, {case id:
    why it cannot run}). The cases given are the ones left to run."""
    certgen = certgen or os.path.join(BIN, "uptls-certgen")
    if not os.access(certgen, os.X_OK):
        raise UptlsError(f"{certgen} not built: run 'make' first")
    os.makedirs(out_dir, exist_ok=True)
    lines, bad = [], {}
    for c in cases:
        block = [f"case {c.slug} {'check' if c.peer_certificate_key else 'rekey'}"]
        for role, pems in (("peer", [c.peer_certificate]), ("untrusted", c.untrusted_intermediates),
                           ("trusted", c.trusted_certs), ("crl", c.crls)):
            for p in pems:
                m = PEM_RE.search(p)
                if not m:
                    bad[c.id] = f"a {role} entry holds no PEM block"
                    break
                block += [role, f"-----BEGIN {m.group(1)}-----", *m.group(2).split(),
                          f"-----END {m.group(1)}-----"]
        if c.id not in bad:
            lines += block + ["end"]
    req = os.path.join(out_dir, "rekey.in")
    _write(req, "\n".join(lines) + "\n")
    r = subprocess.run([certgen, "-R", req, "-o", out_dir], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise UptlsError(f"uptls-certgen -R failed (exit {r.returncode}): {r.stderr.strip()}")
    status = {}
    for ln in r.stdout.splitlines():
        slug, _, rest = ln.partition(" ")
        status[slug] = rest
    ents, why = {}, dict(bad)
    for c in cases:
        if c.id in bad:
            continue
        st = status.get(c.slug, "unsupported uptls-certgen said nothing about it")
        if st != "ok":
            why[c.id] = st.removeprefix("unsupported ").strip() + (
                "" if c.peer_certificate_key else " (re-keying: the suite has no peer key)")
            continue
        s = c.slug
        if c.peer_certificate_key:
            _write(f"{out_dir}/{s}-trust.pem", "".join(_nl(p) for p in c.trusted_certs))
            _write(f"{out_dir}/{s}-peer.chain.pem",
                   "".join(_nl(p) for p in [c.peer_certificate] + c.untrusted_intermediates))
            _write(f"{out_dir}/{s}-peer.key", _nl(c.peer_certificate_key), 0o600)
            _write(f"{out_dir}/{s}-crl.crl", "".join(_nl(p) for p in c.crls))
        else:
            for old, new in (("trust.pem", "trust.pem"), ("chain.pem", "peer.chain.pem"),
                             ("key", "peer.key"), ("crl", "crl.crl")):
                os.replace(f"{out_dir}/{s}.{old}", f"{out_dir}/{s}-{new}")
        ents.update(entities(c))
    return LimboPki(out_dir, ents), why
