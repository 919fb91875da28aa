"""make repro: a folder a maintainer runs without uptls (harness/uptls/repro.py,
harness/repro/lib.sh). run.sh exits 0 when the target behaves as documented,
1 when the finding reproduces, 2 when it cannot run; it is run here from a
fresh environment in another directory, after the folder was moved."""

import os
import shutil
import subprocess

import pytest

from uptls import ROOT

SESSION = "session/locations-do-not-share-verification"
IP_SAN = "name/ip-upstream-ip-san-accepted"


def make_repro(target, scenario, out):
    return subprocess.run(["make", "-s", "repro", f"TARGET={target}", f"SCENARIO={scenario}",
                           f"OUT={out}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def run_sh(folder, tmp_path, **env):
    """run.sh as a maintainer runs it: another directory, a bare environment."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "TMPDIR": str(work)}
    r = subprocess.run(["sh", str(folder / "run.sh")], cwd=elsewhere, env={**base, **env},
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    r.out = r.stdout + r.stderr
    assert not left_running(str(work)), left_running(str(work))
    assert os.listdir(work) == []  # its run folder removed
    return r


def left_running(token):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def made(target, scenario, tmp_path):
    """make repro into tmp_path, then move the folder: nothing may depend on where it was made."""
    out = tmp_path / "made"
    r = make_repro(target, scenario, out)
    assert r.returncode == 0, r.stdout + r.stderr
    moved = tmp_path / "attached-to-a-bug-report"
    shutil.move(str(out), str(moved))
    return moved


def test_nginx_session_finding_reproduces(tmp_path):
    folder = made("nginx", SESSION, tmp_path)
    readme = (folder / "README.md").read_text()
    assert "critical" in readme and "known deviation" in readme and "RFC 8446" in readme
    # Only the backend's key: no key of any other entity.
    assert sorted(p.name for p in (folder / "pki").glob("*.key")) == ["server-untrusted.key"]
    r = run_sh(folder, tmp_path)
    assert r.returncode == 1, r.out
    # The location trusting only root-a resumed the session and reached the
    # backend whose chain runs to root-b.
    step2 = r.out.split("step 2:")[1].split("step 3:")[0]
    assert "resumed true" in step2 and "received /u/" in step2
    assert "FAIL  result refused" in step2 and "UNEXPECTED ACCEPT" in step2
    assert "FINDING REPRODUCED" in r.out


def test_reference_conforms_on_the_same_scenario(tmp_path):
    folder = made("reference", SESSION, tmp_path)
    assert (folder / "bin" / "uptls-proxy").exists()
    r = run_sh(folder, tmp_path)
    assert r.returncode == 0, r.out
    assert "FAIL" not in r.out and "CONFORMS" in r.out


@pytest.mark.parametrize("target,code", [("nginx", 1), ("reference", 0)])
def test_name_family(tmp_path, target, code):
    # nginx matches no IP SAN (a listed deviation): the IP-literal upstream is refused.
    r = run_sh(made(target, IP_SAN, tmp_path), tmp_path)
    assert r.returncode == code, r.out
    if code:
        assert "FAIL  result accepted" in r.out


def test_cannot_run_is_exit_2(tmp_path):
    folder = made("nginx", IP_SAN, tmp_path)
    r = run_sh(folder, tmp_path, TARGET_BIN="/nonexistent/nginx")
    assert r.returncode == 2 and "COULD NOT RUN: no target binary at /nonexistent/nginx" in r.out


@pytest.mark.parametrize("args,message", [
    (("nginx", "trust/no-such-thing"), "no such scenario"),
    (("haproxy", "chain-depth/depth1-refuses-2-intermediates"), "is unsupported on haproxy"),
])
def test_make_repro_refuses_with_one_line(tmp_path, args, message):
    r = make_repro(*args, tmp_path / "out")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("uptls repro:")]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.tmp-*"))


def test_run_sh_checks_every_expectation_key():
    # A key the driver checks and run.sh does not would make a folder that
    # cannot fail on it: every scenario expectation key is one of lib.sh's.
    import re
    from uptls.repro import CHECKED, LIB
    from uptls.scenario import EXPECT_KEYS
    assert set(EXPECT_KEYS) <= CHECKED
    body = open(LIB).read().split("expect() {", 1)[1].split("\n}\n", 1)[0]
    labels = set()
    for m in re.finditer(r"^    ([a-z_|]+)\)", body, re.M):
        labels |= set(m.group(1).split("|"))
    assert CHECKED - {"offered_versions_default"} == labels
