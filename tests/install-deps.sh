#!/bin/sh
# Installs the Debian/Ubuntu packages uptls needs (make deps). libclang-rt-dev:
# the libFuzzer and sanitizer runtimes for clang (make fuzz), only a
# Recommends of clang, which --no-install-recommends skips. Idempotent:
# apt-get skips what is already there. Package installs must not start the
# system's nginx/apache2 on port 80 for us: a policy-rc.d that denies
# service starts is in place only while apt-get runs.
set -eu
PKGS="build-essential pkg-config libssl-dev libevent-dev openssl python3 python3-pytest python3-jsonschema
      nginx-light libnginx-mod-stream haproxy apache2 wrk valgrind clang libclang-rt-dev chromium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "make deps: all packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "make deps: installing$missing"
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created_policy=1
fi
trap '[ -n "$created_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
