"""uptls-certgen -R: re-keyed chains keep every byte but the keys and signatures."""

import base64
import os
import subprocess

import pytest

from uptls import BIN
from uptls.limbo_prep import _children, _tlv, pem_der, PEM_RE

from helpers import built, pki


def _tbs_fields(der):
    """The TBSCertificate's fields as (tag, content) and the outer signature algorithm."""
    _, s, e = _tlv(der, 0)
    parts = _children(der, s, e)
    fields = [(t, der[a:b]) for t, a, b in _children(der, parts[0][1], parts[0][2])]
    return fields, der[parts[1][1]:parts[1][2]]


def _rekey(tmp_path, body):
    req = tmp_path / "in"
    req.write_text(body)
    r = subprocess.run([os.path.join(BIN, "uptls-certgen"), "-R", str(req), "-o", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return dict(ln.split(" ", 1) for ln in r.stdout.splitlines())


def _case(name, mode, **roles):
    out = [f"case {name} {mode}"]
    for role, pems in roles.items():
        for p in pems:
            out += [role, p.strip()]
    return "\n".join(out + ["end"]) + "\n"


def _read(p, ent, suffix="pem"):
    with open(p.path(ent, suffix)) as f:
        return f.read()


@pytest.mark.parametrize("leaf, inter", [("server-d1", "int-a1"), ("server-rsa", None)])
def test_rekey_keeps_fields(tmp_path, leaf, inter):
    built()
    p = pki()
    if leaf not in p.entities:
        pytest.skip(f"no {leaf} in fixtures/pki.toml")
    inters = [_read(p, inter)] if inter else []
    st = _rekey(tmp_path, _case("c1", "rekey", peer=[_read(p, leaf)], untrusted=inters,
                                trusted=[_read(p, "root-a")],
                                crl=[_read(p, p.entity(leaf)["issuer_name"], "crl")]))
    assert st == {"c1": "ok"}
    chain = (tmp_path / "c1.chain.pem").read_text()
    new = [pem_der(m.group(0)) for m in PEM_RE.finditer(chain)]
    old = [pem_der(_read(p, leaf))] + [pem_der(x) for x in inters]
    for o, n in zip(old, new):
        (of, oalg), (nf, nalg) = _tbs_fields(o), _tbs_fields(n)
        spki = 6 if of[0][0] == 0xA0 else 5        # after the optional [0] version
        assert oalg == nalg                          # same signature algorithm
        assert len(of) == len(nf)
        for i, (a, b) in enumerate(zip(of, nf)):
            if i == spki:
                assert a != b                        # a new key ...
                ao, bo = _children(a[1], 0, len(a[1])), _children(b[1], 0, len(b[1]))
                assert a[1][ao[0][1]:ao[0][2]] == b[1][bo[0][1]:bo[0][2]]  # ... same type
                assert len(a[1]) == len(b[1])        # ... and size
            else:
                assert a == b, f"TBS field {i} changed"
    # the new chain verifies, its key matches, the CRL is signed by the new root
    r = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "c1.trust.pem"),
                        "-untrusted", str(tmp_path / "c1.chain.pem"), "-crl_check",
                        "-CRLfile", str(tmp_path / "c1.crl"), str(tmp_path / "c1.chain.pem")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    k = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "c1.key"), "-pubout"],
                       capture_output=True, text=True).stdout
    c = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=chain,
                       capture_output=True, text=True).stdout
    assert k and k == c


def test_rekey_refuses_a_bad_signature(tmp_path):
    built()
    p = pki()
    leaf = _read(p, "server-d0")
    der = bytearray(pem_der(leaf))
    der[-1] ^= 1
    bad = ("-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(bytes(der)).decode()
           + "-----END CERTIFICATE-----\n")
    st = _rekey(tmp_path, _case("c1", "rekey", peer=[bad], trusted=[_read(p, "root-a")])
                + _case("c2", "check", peer=[leaf], trusted=["-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                             "-----END CERTIFICATE-----"]))
    assert st["c1"].startswith("unsupported") and "signature" in st["c1"]
    assert st["c2"].startswith("unsupported") and "trusted" in st["c2"]
    assert not (tmp_path / "c1.key").exists()


# -- the pki.toml keys the certificate-gap scenarios use ----------------------------
def _x509_text(path):
    return subprocess.run(["openssl", "x509", "-in", path, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout


def _pubkey(path):
    return subprocess.run(["openssl", "x509", "-in", path, "-noout", "-pubkey"],
                          capture_output=True, text=True, check=True).stdout


def test_pki_gap_entities():
    built()
    p = pki()
    assert "ecdsa-with-SHA1" in _x509_text(p.path("server-sha1", "pem"))
    assert "Public-Key: (1024 bit)" in _x509_text(p.path("server-rsa1024", "pem"))
    # a cross-certificate: root-x's subject and key, root-dst's signature
    assert _pubkey(p.path("root-x-cross", "pem")) == _pubkey(p.path("root-x", "pem"))
    cross = _x509_text(p.path("root-x-cross", "pem"))
    assert "Issuer: O = uptls, CN = uptls root-dst" in cross
    assert "Subject: O = uptls, CN = uptls root-x" in cross
    assert _read(p, "server-cross", "chain.pem").count("BEGIN CERTIFICATE") == 3
    assert _read(p, "client-via-int-leaf-only", "chain.pem").count("BEGIN CERTIFICATE") == 1


@pytest.mark.parametrize("extra, message", [
    ('key_of = "nobody"', "key_of"),
    ('key_of = "b"\nkey_type = "rsa1024"', "key_of"),
    ('signature_hash = "md5"', "signature_hash"),
    ('chain_leaf_only = "yes"', "chain_leaf_only"),
])
def test_pki_gap_keys_are_checked(tmp_path, extra, message):
    built()
    src = tmp_path / "p.toml"
    src.write_text(f'[entity.a]\nkind = "ca"\ncn = "a"\n{extra}\n\n[entity.b]\nkind = "ca"\ncn = "b"\n')
    r = subprocess.run([os.path.join(BIN, "uptls-certgen"), "-i", str(src), "-o",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and f"{src}:" in r.stderr and message in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
