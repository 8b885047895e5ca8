#!/usr/bin/env bash
# Prepare this machine for userphoto, by purpose. Idempotent and quick when nothing changed.
#
#   scripts/setup.sh run    what serving needs (`make run`): a virtualenv with userphoto and its
#                           runtime dependencies; no test extras, no npm, no test servers
#   scripts/setup.sh test   everything the test suite uses (`make test`, `.ci/run`; the default):
#                           the run set-up plus the test extras, the Debian packages of the test
#                           servers (when root) and the test OpenID provider (npm ci)
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=${1:-test}
case "$purpose" in
  run | test) ;;
  *) echo "usage: scripts/setup.sh [run|test]" >&2; exit 2 ;;
esac
VENV=${VENV:-.venv}

# Installs missing Debian packages when root; otherwise says which are missing and why.
apt_install() {
  local why=$1; shift
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "note: missing system packages (${missing[*]}); $why" >&2
    echo "      install them as root, or run this script as root" >&2
  fi
}

# --- run: the service itself -------------------------------------------------------------------
# Every runtime dependency comes as a wheel, except python-ldap (the syncrepl (RFC 4533) client)
# where pip finds none for this Python: then it is built, with libldap2-dev + libsasl2-dev and a
# compiler. Only asked for when Debian's tools are there (other systems bring their own).
if command -v dpkg-query >/dev/null; then
  apt_install "pip may need them to build python-ldap" libldap2-dev libsasl2-dev gcc python3-dev
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# One stamp per purpose: `make run` after `make test` installs nothing, and the reverse adds
# only the test extras.
stamp="$VENV/.installed-$purpose"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  if [ "$purpose" = run ]; then
    "$VENV/bin/pip" install -q -e .
  else
    "$VENV/bin/pip" install -q -e '.[test]'
  fi
  touch "$stamp"
fi
[ "$purpose" = run ] && exit 0

# --- test: the servers and tools the tests run against ----------------------------------------
# Real slapd and Samba AD DC for directory code, Chromium for the web pages, nginx-light + wrk
# and vipsthumbnail as benchmark references and the deploy tests' proxy. Installed with
# --no-install-recommends, so what Samba only *recommends* but provisioning a DC needs is listed
# here: samba-dsdb-modules (samba_secrets, ...) and samba-vfs-modules (acl_xattr).
APT_PACKAGES=(slapd ldap-utils samba samba-ad-provision chromium nginx-light wrk libvips-tools
              iproute2 util-linux samba-dsdb-modules samba-vfs-modules
              curl)  # curl: the deploy test uploads through nginx the way the field report did
# systemd-analyze checks the units in docs/deploy/. (The test OpenID provider needs Node.js >= 20
# with npm, which the machine brings: Debian's own nodejs is 18, too old for oidc-provider 9.)
APT_PACKAGES+=(systemd)
# PostgreSQL for the scale-out store (usually running before the tests start).
APT_PACKAGES+=(postgresql)
apt_install "tests that need them will be skipped (and fail under CI=true)" "${APT_PACKAGES[@]}"

# The OpenID provider the sign-in tests run (npm oidc-provider, pinned by tests/oidc/package-lock.json).
oidc=tests/oidc
if [ ! -d "$oidc/node_modules" ] || [ "$oidc/package-lock.json" -nt "$oidc/node_modules" ]; then
  if command -v npm >/dev/null; then
    (cd "$oidc" && npm ci --no-audit --no-fund --loglevel=error) && touch "$oidc/node_modules"
  else
    echo "note: npm is missing; the OpenID Connect tests need Node.js 20 and npm" >&2
  fi
fi
