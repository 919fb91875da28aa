#!/bin/sh
# Installs what uptls needs (make deps [TARGET=t]).
#
#   sh tests/install-deps.sh           everything: every target and the test
#                                      tools (make test, make fuzz, asan, valgrind)
#   sh tests/install-deps.sh TARGET    only what building uptls and running
#                                      make conformance TARGET=TARGET need
#   DRY_RUN=1 sh tests/install-deps.sh [TARGET]
#                                      print what would be installed; runs
#                                      no apt-get, npm or dpkg-deb
#
# Idempotent: what is already installed is skipped. Package installs must not
# start a system service (nginx/apache2 on port 80, caddy on 80/2019, squid
# on 3128, trafficserver on 8080): a policy-rc.d that denies service starts
# is in place while apt-get runs.
#
# Not from apt as such:
# - squid-openssl conflicts with squid (the GnuTLS build, from apt): its .deb
#   is fetched with apt-get download and unpacked with dpkg-deb -x into
#   build/deps/squid-openssl (binary: build/deps/squid-openssl/usr/sbin/squid,
#   for TARGET_BIN); its run-time Depends come from apt.
# - node-http-proxy: npm http-proxy 1.18.1 into harness/node-http-proxy
#   (npm ci from the committed package-lock.json; no global install), run by
#   the node on PATH. Debian's nodejs is installed only when there is no
#   node at all (it conflicts with e.g. the nodesource nodejs).
#
# A package name the apt lists lack falls back to its documented equivalent
# (nginx-light -> nginx: Ubuntu 24.04 and Debian 13 ship one nginx package,
# the light/full/extras flavours were dropped), else the script stops with
# one line naming it.
set -eu
cd "$(dirname "$0")/.."

ALL_TARGETS="reference nginx nginx-stream haproxy apache caddy squid squid-openssl
             node-http-proxy trafficserver stunnel"
BASE="build-essential pkg-config libssl-dev libevent-dev openssl python3 python3-pytest"
# libclang-rt-dev: the libFuzzer and sanitizer runtimes for clang (make
# fuzz), only a Recommends of clang, which --no-install-recommends skips.
# python3-jsonschema: the adapter protocol's and LimboResult's schema tests.
TEST_TOOLS="wrk valgrind clang clang-format libclang-rt-dev chromium python3-jsonschema"
SQUID_OPENSSL_DIR=build/deps/squid-openssl
NODE_DIR=harness/node-http-proxy

# The apt packages a target needs beyond BASE.
target_pkgs() {
    case "$1" in
        reference|squid-openssl|node-http-proxy) ;;
        nginx) echo nginx-light ;;
        nginx-stream) echo nginx-light libnginx-mod-stream ;;
        haproxy) echo haproxy ;;
        apache) echo apache2 ;;
        caddy) echo caddy ;;
        squid) echo squid ;;
        trafficserver) echo trafficserver ;;
        stunnel) echo stunnel4 ;;
    esac
}

# The documented equivalent of a package name, where there is one.
fallback() {
    case "$1" in
        nginx-light) echo nginx ;;
    esac
}

say() { echo "make deps: $*"; }

if [ $# -gt 1 ]; then
    echo "usage: sh tests/install-deps.sh [TARGET]" >&2
    exit 2
fi
TARGET=${1:-}
# TARGET=exec:PATH (an adapter of your own): uptls' own build only; the
# adapter's language and the proxy are yours to install.
case "$TARGET" in exec|exec:*) TARGET=reference ;; esac
if [ -n "$TARGET" ]; then
    case " $(echo $ALL_TARGETS) " in
        *" $TARGET "*) ;;
        *) echo "make deps: TARGET=$TARGET: unknown target (known: $(echo $ALL_TARGETS))" >&2
           exit 2 ;;
    esac
    targets=$TARGET
    pkgs="$BASE $(target_pkgs "$TARGET")"
else
    targets=$ALL_TARGETS
    pkgs="$BASE $TEST_TOOLS"
    for t in $ALL_TARGETS; do pkgs="$pkgs $(target_pkgs "$t")"; done
fi
want_squid_openssl=""
want_node=""
for t in $targets; do
    case "$t" in
        squid-openssl) want_squid_openssl=1 ;;
        node-http-proxy) want_node=1 ;;
    esac
done
if [ -n "$want_node" ] && ! { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }; then
    pkgs="$pkgs nodejs npm"
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
available() {
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
    [ -n "$c" ] && [ "$c" != "(none)" ]
}
# The packages of the list not installed (a package whose equivalent is
# installed counts as installed).
missing_of() {
    out=""
    for p in "$@"; do
        f=$(fallback "$p")
        installed "$p" || { [ -n "$f" ] && installed "$f"; } || out="$out $p"
    done
    echo $out
}

missing=$(missing_of $pkgs)
unpack_squid_openssl=""
if [ -n "$want_squid_openssl" ] && [ ! -x "$SQUID_OPENSSL_DIR/usr/sbin/squid" ]; then
    unpack_squid_openssl=1
fi
npm_ci=""
if [ -n "$want_node" ] && ! [ "$NODE_DIR/node_modules/.package-lock.json" -nt "$NODE_DIR/package-lock.json" ]; then
    npm_ci=1
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
dry=${DRY_RUN:-}

if [ -n "$missing" ] || [ -n "$unpack_squid_openssl" ]; then
    [ -n "$dry" ] || $SUDO apt-get update -qq
fi
# Names the apt lists lack: the documented equivalent, or stop.
resolved=""
for p in $missing; do
    if available "$p"; then
        resolved="$resolved $p"
        continue
    fi
    f=$(fallback "$p")
    if [ -n "$f" ] && available "$f"; then
        say "$p is not in the apt lists; installing its equivalent $f"
        resolved="$resolved $f"
        continue
    fi
    echo "make deps: package $p is not in this machine's apt lists${f:+ (nor its equivalent $f)}" >&2
    exit 1
done
resolved=$(echo $resolved)

if [ -n "$dry" ]; then
    say "would install:${resolved:+ $resolved}"
    [ -z "$unpack_squid_openssl" ] || say "would unpack squid-openssl into $SQUID_OPENSSL_DIR"
    [ -z "$npm_ci" ] || say "would run npm ci in $NODE_DIR"
    exit 0
fi

# A command run with a policy-rc.d that denies every service start in place
# (removed afterwards when this script put it there).
with_policy() {
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        created_policy=1
        trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    rc=0
    "$@" || rc=$?
    if [ -n "$created_policy" ]; then
        $SUDO rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    return $rc
}

if [ -n "$resolved" ]; then
    say "installing $resolved"
    # shellcheck disable=SC2086
    with_policy $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $resolved
else
    say "all packages present"
fi

if [ -n "$unpack_squid_openssl" ]; then
    say "unpacking squid-openssl into $SQUID_OPENSSL_DIR"
    dl=build/deps/.download
    rm -rf "$dl" "$SQUID_OPENSSL_DIR.tmp"
    mkdir -p "$dl"
    (cd "$dl" && apt-get download -qq squid-openssl 2>/dev/null) || {
        echo "make deps: package squid-openssl is not in this machine's apt lists" >&2
        exit 1
    }
    deb=$(ls "$dl"/squid-openssl_*.deb)
    # Its run-time Depends (libraries, squid-common's error pages and
    # helpers), so the unpacked binary runs; apt-get satisfy installs only
    # what is not satisfied yet.
    for field in Pre-Depends Depends; do
        dep=$(dpkg-deb -f "$deb" "$field")
        [ -z "$dep" ] || with_policy $SUDO env DEBIAN_FRONTEND=noninteractive apt-get satisfy -y -qq \
            --no-install-recommends "$dep" >/dev/null
    done
    dpkg-deb -x "$deb" "$SQUID_OPENSSL_DIR.tmp"
    rm -rf "$SQUID_OPENSSL_DIR" "$dl"
    mv "$SQUID_OPENSSL_DIR.tmp" "$SQUID_OPENSSL_DIR"
fi

if [ -n "$npm_ci" ]; then
    say "npm ci in $NODE_DIR (http-proxy 1.18.1, from package-lock.json)"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
