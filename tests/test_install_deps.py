"""make deps [TARGET=t] (tests/install-deps.sh) picks the right packages.

No real apt call: the script runs with DRY_RUN=1 and a PATH whose first
folder holds stand-ins for dpkg-query (nothing installed) and apt-cache
(the apt lists hold exactly the names in FAKE_APT_LISTS), as on a fresh
machine.
"""

import os
import subprocess

import pytest

from uptls import ROOT

SCRIPT = os.path.join(ROOT, "tests", "install-deps.sh")
DEBIAN_12 = ("build-essential pkg-config libssl-dev libevent-dev openssl python3 python3-pytest "
             "nginx-light libnginx-mod-stream haproxy apache2 caddy squid squid-openssl "
             "trafficserver stunnel4 wrk valgrind clang clang-format libclang-rt-dev chromium python3-jsonschema")
TOOLS_AND_OTHER_PROXIES = {"chromium", "valgrind", "clang", "clang-format", "libclang-rt-dev", "wrk", "haproxy",
                           "apache2", "caddy", "squid", "trafficserver", "stunnel4"}


@pytest.fixture()
def fake_apt(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "apt-cache").write_text(
        '#!/bin/sh\n# apt-cache policy NAME: a candidate only for a name in FAKE_APT_LISTS\n'
        '[ "$1" = policy ] || exit 100\n'
        'for p in $FAKE_APT_LISTS; do\n'
        '  [ "$p" = "$2" ] && { echo "$2:"; echo "  Installed: (none)"; '
        'echo "  Candidate: 1.0"; exit 0; }\n'
        'done\nexit 0\n')
    for name in ("apt-get", "npm", "dpkg-deb", "sudo"):
        # Any real install step would stop the test here.
        (bindir / name).write_text(f"#!/bin/sh\necho 'called {name}' >&2\nexit 99\n")
    for f in bindir.iterdir():
        f.chmod(0o755)

    def run(*args, lists=DEBIAN_12):
        env = {**os.environ, "DRY_RUN": "1", "FAKE_APT_LISTS": lists,
               "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        return subprocess.run(["sh", SCRIPT, *args], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL)
    return run


def would_install(r):
    assert r.returncode == 0, r.stdout + r.stderr
    assert "called " not in r.stderr, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("make deps: would install:"))
    return set(line.split(":", 2)[2].split())


def test_lean_nginx_needs_no_chromium_tools_or_other_proxies(fake_apt):
    pkgs = would_install(fake_apt("nginx"))
    assert {"nginx-light", "libssl-dev", "libevent-dev", "python3-pytest"} <= pkgs
    assert not pkgs & TOOLS_AND_OTHER_PROXIES, pkgs & TOOLS_AND_OTHER_PROXIES


@pytest.mark.parametrize("target,own", [("stunnel", "stunnel4"), ("caddy", "caddy"),
                                        ("haproxy", "haproxy"), ("nginx-stream",
                                                                 "libnginx-mod-stream")])
def test_lean_target_installs_its_own_package_only(fake_apt, target, own):
    pkgs = would_install(fake_apt(target))
    assert own in pkgs
    assert not (pkgs & TOOLS_AND_OTHER_PROXIES) - {own}, pkgs


def test_everything_without_target(fake_apt):
    pkgs = would_install(fake_apt())
    assert TOOLS_AND_OTHER_PROXIES - {"squid-openssl"} <= pkgs


def test_missing_name_falls_back_to_its_documented_equivalent(fake_apt):
    lists = DEBIAN_12.replace("nginx-light", "nginx")   # Ubuntu 24.04, Debian 13
    r = fake_apt("nginx", lists=lists)
    pkgs = would_install(r)
    assert "nginx" in pkgs and "nginx-light" not in pkgs
    assert "nginx-light is not in the apt lists; installing its equivalent nginx" in r.stdout


def test_missing_name_without_equivalent_stops_with_one_line(fake_apt):
    r = fake_apt("stunnel", lists=DEBIAN_12.replace("stunnel4", ""))
    assert r.returncode == 1
    assert r.stderr.strip() == "make deps: package stunnel4 is not in this machine's apt lists"
    assert "would install" not in r.stdout


def test_unknown_target_is_one_line(fake_apt):
    r = fake_apt("nginxx")
    assert r.returncode == 2
    assert r.stderr.startswith("make deps: TARGET=nginxx: unknown target")
    assert len(r.stderr.strip().splitlines()) == 1


def test_make_passes_target_only_when_given():
    def recipe(*args):
        # Not the caller's make (make test): its MAKEFLAGS/MAKELEVEL or TARGET.
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TARGET")}
        r = subprocess.run(["make", "--no-print-directory", "-n", "deps", *args],
                           capture_output=True, text=True, cwd=ROOT, timeout=30, env=env,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()
    assert recipe("TARGET=nginx")[-1] == "nginx"
    assert recipe()[-1] == "tests/install-deps.sh"   # default TARGET=reference is not lean


def test_exec_adapter_needs_only_uptls_own_build(fake_apt):
    # TARGET=exec:PATH: the adapter's language and the proxy are the user's.
    pkgs = would_install(fake_apt("exec:/src/my-adapter"))
    assert {"libssl-dev", "libevent-dev", "python3-pytest"} <= pkgs
    assert not pkgs & (TOOLS_AND_OTHER_PROXIES | {"nginx-light"}), pkgs
